"""The reconciler: catches what notifications missed (Google's voided purchases, Apple's failed
notifications) and answers the stores' refund requests by the operator's policy.
docs/reconcile.md."""
