"""The Apple function: ``settings``, ``verifier`` (JWS to a pinned root), ``notifications``
(a verified notification -> a ``LedgerEvent``, pure), ``function``."""
