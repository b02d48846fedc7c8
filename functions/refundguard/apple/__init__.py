"""The ``apple_notifications`` function: ``settings`` and ``function`` (a signed notification ->
the ingestion path). The App Store library is ``appstore``."""
