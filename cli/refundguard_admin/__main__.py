"""``python -m refundguard_admin``."""

from .cli import main

raise SystemExit(main())
