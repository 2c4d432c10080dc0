"""Events: the outbox every change writes to, webhooks that subscribe to it, and what they deliver."""
