"""The ``admin`` function: the admin API (``adminapi``) for the CLI, behind Cloud Run IAM."""
