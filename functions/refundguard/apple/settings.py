"""The Apple function's settings, read once at start-up; a bad one stops it (``ConfigError``).

- ``APPLE_BUNDLE_IDS``: comma-separated bundle ids (required);
- ``APPLE_ENVIRONMENTS``: ``Production`` (default), ``Sandbox`` or both, comma-separated;
- ``APPLE_APP_APPLE_ID``: the app's Apple id, digits; required when Production is enabled;
- ``APPLE_ROOT_CERTS``: comma-separated paths to DER or PEM root certificates; relative paths are
  resolved against the functions' source root (the directory of ``main.py``, ``/workspace`` on Cloud
  Functions). With Production enabled, at least one must be Apple Root CA - G3, recognised by
  its pinned SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .. import config, logs
from ..config import ConfigError
from .verifier import ENVIRONMENTS, PRODUCTION, AppleVerifier

#: SHA-256 of Apple Root CA - G3's DER (https://www.apple.com/certificateauthority/AppleRootCA-G3.cer).
APPLE_ROOT_CA_G3_SHA256 = "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"
TRUSTED_PRODUCTION_FINGERPRINTS = frozenset({APPLE_ROOT_CA_G3_SHA256})
#: The functions' source root (``functions/``): where ``main.py`` lives.
SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class AppleSettings:
    bundle_ids: tuple[str, ...]
    environments: tuple[str, ...]
    app_apple_id: int | None
    roots: tuple[x509.Certificate, ...]
    root_paths: tuple[Path, ...]

    def verifier(self) -> AppleVerifier:
        return AppleVerifier(
            self.roots,
            bundle_ids=self.bundle_ids,
            environments=self.environments,
            app_apple_id=self.app_apple_id,
        )


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def load_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates in a DER file or a PEM file (one or several)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"APPLE_ROOT_CERTS: cannot read {path}: {exc.strerror or exc}") from None
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ConfigError(f"APPLE_ROOT_CERTS: {path} is not a DER or PEM certificate") from None
    for cert in certs:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (x509.ExtensionNotFound, ValueError):
            bc = None
        if bc is None or not bc.ca:
            raise ConfigError(f"APPLE_ROOT_CERTS: {path} is not a CA certificate")
    return certs


def _resolve(raw: str, base_dir: Path) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base_dir / path


def load_settings(
    env: Mapping[str, str],
    *,
    base_dir: Path = SOURCE_ROOT,
    trusted_production_fingerprints: Collection[str] = TRUSTED_PRODUCTION_FINGERPRINTS,
) -> AppleSettings:
    """Read and validate the settings. ``trusted_production_fingerprints`` is for tests only."""
    bundle_ids = config.csv_list(env, "APPLE_BUNDLE_IDS", required=True)
    environments = config.csv_list(env, "APPLE_ENVIRONMENTS", default=PRODUCTION)
    if not environments:
        environments = (PRODUCTION,)
    unknown = [e for e in environments if e not in ENVIRONMENTS]
    if unknown:
        raise ConfigError(
            "APPLE_ENVIRONMENTS may list Production and Sandbox (exact case), not "
            f"{', '.join(unknown)};"
            " Xcode and LocalTesting data is not signed by Apple and is never accepted"
        )
    production = PRODUCTION in environments

    raw_id = env.get("APPLE_APP_APPLE_ID", "").strip()
    app_apple_id: int | None = None
    if raw_id:
        if not (raw_id.isascii() and raw_id.isdigit()):
            raise ConfigError(
                f"APPLE_APP_APPLE_ID must be the app's numeric Apple ID, not {raw_id!r}"
            )
        app_apple_id = int(raw_id)
    elif production:
        raise ConfigError(
            "APPLE_APP_APPLE_ID must be set (App Store Connect > App Information > Apple ID) when"
            " APPLE_ENVIRONMENTS includes Production"
        )

    paths = tuple(
        _resolve(p, base_dir) for p in config.csv_list(env, "APPLE_ROOT_CERTS", required=True)
    )
    roots: list[x509.Certificate] = []
    for path in paths:
        roots.extend(load_certificates(path))
    trusted = {f.lower().replace(":", "") for f in trusted_production_fingerprints}
    prints = [fingerprint(root) for root in roots]
    if production:
        if not trusted.intersection(prints):
            raise ConfigError(
                "APPLE_ROOT_CERTS must include Apple Root CA - G3 (SHA-256 "
                f"{APPLE_ROOT_CA_G3_SHA256}) when APPLE_ENVIRONMENTS includes Production; "
                f"found {', '.join(prints) or 'no certificate'}"
            )
        others = [p for p in prints if p not in trusted]
        if others:
            logs.warning(
                "APPLE_ROOT_CERTS trusts roots other than Apple Root CA - G3",
                function="apple_notifications",
                fingerprints=others,
            )
    return AppleSettings(bundle_ids, environments, app_apple_id, tuple(roots), paths)
