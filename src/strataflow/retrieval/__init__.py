"""Retrieval: retriever stages over collections' documents and their execution."""
