"""HTTP: one thin router module per resource. Parse, call a service, present the result."""
