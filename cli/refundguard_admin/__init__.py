"""The refundguard admin CLI: ``refundguard-admin`` / ``python -m refundguard_admin``."""
