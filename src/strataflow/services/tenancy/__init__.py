"""Who may do what, and where: organizations and API keys, scopes, namespaces, tasks."""
