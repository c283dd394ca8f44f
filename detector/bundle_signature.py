"""Signed bundles: an HMAC-SHA256 of ``manifest.json`` in ``manifest.sig``, made with a shared key.

The manifest lists the SHA-256 of every other file of the bundle, so a signature over its exact
bytes covers the whole bundle: an edited threshold, limit, scaler or model breaks it. The trainer
signs with a key file (``centinela train --signing-key-file``); ``centinela detect`` given the same
key (``bundle_key`` / ``bundle_key_file``, see docs/service.md) refuses an unsigned bundle or one
whose signature does not match, at start and at every hot reload. HMAC rather than Ed25519: the
standard library has it and no new dependency is needed; the price is that whoever can verify can
also sign, so the key belongs to the deployment, like the Kafka credentials.

``manifest.sig`` (JSON)::

    {"format": 1, "algorithm": "HMAC-SHA256", "key_id": "3fa2…", "signature": "<64 hex>"}

``key_id`` (the first 16 hex digits of SHA-256 over a fixed label and the key) names the key without
revealing it, so a refusal can say "signed with key 3fa2…, verifying with 9b1c…". Keys are read,
never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson

from detector.errors import BundleError, ConfigError

SIGNATURE = "manifest.sig"
ALGORITHM = "HMAC-SHA256"
SIGNATURE_FORMAT = 1
MIN_KEY_BYTES = 16
_KEY_ID_LABEL = b"centinela bundle key id\x00"


def key_from_text(text: str, where: str) -> bytes:
    """A key given as text (a file's content or a setting), surrounding whitespace removed; at
    least ``MIN_KEY_BYTES`` bytes, else ``ConfigError`` naming ``where`` (never the key)."""
    key = text.strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where}: a bundle key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return key


def read_key_file(path: Path, where: str) -> bytes:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{where}: cannot read the key file {path}: {reason or error}") from error
    return key_from_text(text, f"{where} ({path})")


def key_id(key: bytes) -> str:
    return hashlib.sha256(_KEY_ID_LABEL + key).hexdigest()[:16]


def signature_file(manifest_bytes: bytes, key: bytes) -> bytes:
    """The content of ``manifest.sig`` for these exact manifest bytes."""
    digest = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    body = {"format": SIGNATURE_FORMAT, "algorithm": ALGORITHM, "key_id": key_id(key), "signature": digest}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


def verify(root: Path, manifest_bytes: bytes, signature: bytes | None, key: bytes) -> None:
    """Nothing if ``signature`` (the bytes of ``manifest.sig``, None when absent) is this key's
    signature of ``manifest_bytes``; else ``BundleError`` naming what failed."""
    if signature is None:
        raise BundleError(
            f"bundle {root}: unsigned (no {SIGNATURE}) and a verification key is set; "
            "sign it with centinela train --signing-key-file"
        )
    try:
        fields = orjson.loads(signature)
    except orjson.JSONDecodeError as error:
        raise BundleError(f"bundle {root}: {SIGNATURE} is not valid JSON: {error}") from error
    if not isinstance(fields, dict) or fields.get("format") != SIGNATURE_FORMAT:
        raise BundleError(f"bundle {root}: {SIGNATURE} is not a format-{SIGNATURE_FORMAT} signature")
    if fields.get("algorithm") != ALGORITHM:
        raise BundleError(
            f"bundle {root}: {SIGNATURE} uses {fields.get('algorithm')!r}; this build verifies {ALGORITHM}"
        )
    claimed = fields.get("signature")
    if not isinstance(claimed, str):
        raise BundleError(f"bundle {root}: {SIGNATURE} has no signature")
    expected = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    if hmac.compare_digest(claimed.encode(), expected.encode()):
        return
    signer, ours = fields.get("key_id"), key_id(key)
    if signer != ours:
        raise BundleError(
            f"bundle {root}: signed with another key (key id {str(signer)[:16]!r}, "
            f"the verification key is {ours!r})"
        )
    raise BundleError(
        f"bundle {root}: the signature does not match manifest.json: "
        "the manifest was edited after it was signed"
    )
