"""The ``reconcile_worker`` function: one page of a fanned-out reconciliation run per message."""
