"""Reconciliation: catching what notifications missed (Google's voided purchases, Apple's failed
notifications) and answering the stores' refund requests by the operator's policy. Used by the
``reconcile`` function, and read by the admin API. docs/reconcile.md."""
