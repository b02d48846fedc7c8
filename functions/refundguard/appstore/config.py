"""What the App Store libraries read from the environment: the pinned roots (``APPLE_ROOT_CERTS``,
relative paths against the functions' source root), the environments and the app's Apple ID."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path

from cryptography import x509

from ..config import ConfigError, Settings
from .verifier import ENVIRONMENTS, PRODUCTION

#: SHA-256 of Apple Root CA - G3's DER (https://www.apple.com/certificateauthority/AppleRootCA-G3.cer).
APPLE_ROOT_CA_G3_SHA256 = "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"
TRUSTED_PRODUCTION_FINGERPRINTS = frozenset({APPLE_ROOT_CA_G3_SHA256})
#: The functions' source root (``functions/``): where ``main.py`` lives.
SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent


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


def read_environments(settings: Settings) -> tuple[str, ...]:
    """``APPLE_ENVIRONMENTS`` (default Production): the ones listed that Apple signs (an unknown
    one is a problem recorded, and left out)."""
    listed = settings.csv("APPLE_ENVIRONMENTS", default=PRODUCTION) or (PRODUCTION,)
    unknown = [e for e in listed if e not in ENVIRONMENTS]
    if unknown:
        settings.problem(
            "APPLE_ENVIRONMENTS may list Production and Sandbox (exact case), not "
            f"{', '.join(unknown)}; Xcode and LocalTesting data is not signed by Apple and is "
            "never accepted"
        )
    return tuple(e for e in listed if e in ENVIRONMENTS) or (PRODUCTION,)


def read_app_apple_id(settings: Settings, *, required: bool) -> int | None:
    """``APPLE_APP_APPLE_ID``: the app's numeric Apple ID; ``required`` when Production is on."""
    raw_id = settings.raw("APPLE_APP_APPLE_ID")
    if raw_id:
        if raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18:
            return int(raw_id)
        settings.problem(
            f"APPLE_APP_APPLE_ID must be the app's numeric Apple ID, not {raw_id[:40]!r}"
        )
    elif required:
        settings.problem(
            "APPLE_APP_APPLE_ID must be set (App Store Connect > App Information > Apple ID) when"
            " APPLE_ENVIRONMENTS includes Production"
        )
    return None


def read_roots(
    settings: Settings,
    *,
    production: bool,
    base_dir: Path = SOURCE_ROOT,
    trusted: Collection[str] = TRUSTED_PRODUCTION_FINGERPRINTS,
) -> tuple[tuple[x509.Certificate, ...], list[str]]:
    """``APPLE_ROOT_CERTS``: the pinned roots, and the fingerprints of those that are not Apple's.
    With ``production``, Apple Root CA - G3 must be among them (problems recorded)."""
    roots: list[x509.Certificate] = []
    for raw in settings.csv("APPLE_ROOT_CERTS", required=True):
        roots.extend(
            settings.check(lambda raw=raw: load_certificates(_resolve(raw, base_dir))) or []
        )
    trusted_prints = {f.lower().replace(":", "") for f in trusted}
    prints = [fingerprint(root) for root in roots]
    if production and roots and not trusted_prints.intersection(prints):
        settings.problem(
            "APPLE_ROOT_CERTS must include Apple Root CA - G3 (SHA-256 "
            f"{APPLE_ROOT_CA_G3_SHA256}) when APPLE_ENVIRONMENTS includes Production; "
            f"found {', '.join(prints)}"
        )
    return tuple(roots), [p for p in prints if p not in trusted_prints]
