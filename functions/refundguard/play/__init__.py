"""Google Play Real-time Developer Notifications."""
