"""The ``reconcile`` function: the scheduled (or admin-triggered) entry of ``reconciliation``."""
