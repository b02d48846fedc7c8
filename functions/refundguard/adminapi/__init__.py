"""The admin API of the ``admin`` and ``admin_console`` functions: ``settings``, ``routes``,
``actions`` (admin events, pure), ``orders`` (look-ups), ``reconciliation`` (runs, refund
requests, consumption) and ``handler`` (authentication, dispatch, the audit line)."""
