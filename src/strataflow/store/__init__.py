"""Metadata storage: SQLAlchemy tables, sessions and migrations (SQLite or PostgreSQL)."""
