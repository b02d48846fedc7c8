"""refundguard's developer tools: test PKIs and token issuers, emulators, proxies and local settings
shared by ``tests/``, ``bench/``, ``scripts/`` and ``make run``. Never deployed."""
