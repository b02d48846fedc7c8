"""The Apple path: App Store Server Notifications V2, verified, mapped to ledger events.

- ``verifier``: the JWS (PyJWT) and notification verifier, ``AppleVerifier``;
- ``chain``: the x5c chain check against pinned roots, and its cache;
- ``errors``: the verifier's one exception, ``AppleVerificationError``, and its statuses;
- ``settings``: the function's environment variables, validated at start-up;
- ``notifications``: a verified notification -> a ``LedgerEvent`` (pure);
- ``function``: ``create_handler(env)``, the HTTP entry point's handler.

Nothing here is imported by the other functions; importing this package imports nothing.
"""
