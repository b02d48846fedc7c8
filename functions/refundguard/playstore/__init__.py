"""Google Play, as a library the functions use: ``envelope`` and ``rtdn`` (a Pub/Sub delivery of
an RTDN -> a ``LedgerEvent``, pure), ``api`` (the Play Developer API client) with ``credentials``
and ``resources`` (its answers, parsed), ``verify`` (what an answer means for an event, pure) and
``judge`` (asking the API about an event). Imports only the core and the HTTP transport; takes
its credentials as arguments."""
