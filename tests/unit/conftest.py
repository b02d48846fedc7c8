"""The unit layer needs no emulator: pure modules, parsers, the verifier, the Terraform checks,
and the store-API clients against their local HTTP stand-ins (fixtures in ``tests/conftest.py``)."""
