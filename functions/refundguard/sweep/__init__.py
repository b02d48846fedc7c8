"""The events sweep: ``settings`` and ``function`` (publishes what the outbox still holds)."""
