"""Alerts: a saved retriever, a condition on its results, a cooldown, and webhooks to notify."""
