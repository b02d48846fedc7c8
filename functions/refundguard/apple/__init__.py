"""The Apple function: ``settings``, ``verifier`` (JWS through PyJWT) with ``chain`` (x5c to a
pinned root) and ``errors``, ``notifications`` (a verified notification -> a ``LedgerEvent``,
pure), ``function``."""
