"""The admin function: look up, re-grant and revoke entitlements, authenticated and audited.

``function.create_handler(env)`` builds the HTTP handler; ``auth`` verifies Google-signed ID tokens
and the allow-list; ``api`` routes and answers. See docs/admin.md.
"""
