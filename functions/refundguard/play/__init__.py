"""The Play function: ``settings``, ``envelope`` and ``rtdn`` (a Pub/Sub delivery -> a
``LedgerEvent``, pure), ``function``."""
