"""The Apple path: App Store Server Notifications V2, verified, mapped to ledger events.

- ``verifier``: the JWS / x5c verifier and its one exception (``AppleVerificationError``);
- ``settings``: the function's environment variables, validated at start-up;
- ``notifications``: a verified notification -> a ``LedgerEvent`` (pure);
- ``function``: ``create_handler(env)``, the HTTP entry point's handler.

Nothing here is imported by the other functions; importing this package imports nothing.
"""
