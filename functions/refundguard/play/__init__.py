"""The ``play_notifications`` function: ``settings`` and ``function`` (a Pub/Sub push -> the
ingestion path). The Play store library is ``playstore``."""
