"""The admin function: ``settings``, ``actions`` (routes and admin events, pure), ``function``."""
