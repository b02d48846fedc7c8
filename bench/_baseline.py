"""The "before" of the benchmarks: ``functions/`` at a git commit (by default 43c6dde, the
hand-written JWS verifier, before PyJWT did that work), extracted with ``git archive`` into a
temporary directory and measured in a subprocess whose PYTHONPATH points there. Nothing is copied
into the tree."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The commit the benchmarks compare against; REFUNDGUARD_BENCH_BASELINE names another.
BASELINE = os.environ.get("REFUNDGUARD_BENCH_BASELINE", "43c6dde")
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def baseline_functions(commit: str = BASELINE) -> Iterator[Path | None]:
    """``<tmp>/functions`` as of ``commit`` (BASELINE by default), or None (after a printed note)
    when git or the commit is not available, e.g. in a shallow clone or an unpacked archive."""
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
            check=True,
            capture_output=True,
        )
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "functions"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        print(
            f"  note: git commit {commit} is not available (no git history here, e.g. a shallow "
            "clone): 'before' is skipped"
        )
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=f"refundguard-{commit}-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        yield Path(tmp) / "functions"


def env_with(functions: Path) -> dict[str, str]:
    """The environment for a subprocess that imports ``refundguard`` from ``functions``: PYTHONPATH
    comes before the editable install's path entries."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(functions), env.get("PYTHONPATH")]))
    return env
