"""The App Store, as a library the functions use: ``verifier`` (JWS through PyJWT) with
``chain`` (x5c to a pinned root) and ``errors``, ``notifications`` (a verified notification -> a
``LedgerEvent``, pure), ``api`` (the App Store Server API client, thin) with ``credentials`` and
``resources``, ``verified`` (its signed answers verified), ``config`` (roots and environments
read from settings). Imports only the core and the HTTP transport; takes its credentials as
arguments."""
