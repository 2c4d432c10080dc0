"""The rules of the system: plain Python over the store, raising domain errors."""
