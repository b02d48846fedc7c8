"""``admin_console``: the admin console, a web page and the admin API on one origin."""
