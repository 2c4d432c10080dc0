"""Saved retrievers: create, read, patch, delete, and executing one."""
