"""Collections: sources and their DAG, what they read and write (schema), create/patch/delete."""
