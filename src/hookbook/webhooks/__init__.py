"""Webhook delivery: registry, outbox, retry policy, sender and worker."""
