"""Start the Firestore emulator for a benchmark (the same code the tests use)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "functions", ROOT / "tests", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from conftest import find_emulator_jar, start_emulator  # noqa: E402


def emulator():  # -> conftest.FirestoreEmulator
    jar = find_emulator_jar()
    if jar is None:
        raise SystemExit("Firestore emulator not found: install the Google Cloud SDK emulator")
    return start_emulator(jar, Path(tempfile.mkdtemp()) / "firestore.log")
