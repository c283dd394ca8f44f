"""Fitting a dead letter under the dead-letter topic's size limit.

A dead letter carries the refused message as it came, so an operator can read it. A message can be
refused precisely because it is large: a 1 MB reading is ``too_large`` for the parser, and its dead
letter (the same bytes plus our headers) is then too large for a producer with librdkafka's default
``message.max.bytes`` (1,000,000) or for a topic whose ``max.message.bytes`` is smaller than the
readings topic's. Producing it as it is fails (``MSG_SIZE_TOO_LARGE``); before this existed the
service exited, and again after every restart, on the same message: one poison pill stopped a line.

``fit_dead_letter`` keeps every dead letter under ``limit`` bytes: a message that would not fit is
stored truncated to what fits, with headers that say so (``centinela.truncated = true``), how large
it was (``centinela.original.size``, and ``centinela.original.key_size`` when the key was cut too)
and its SHA-256 digest (``centinela.original.sha256``), so the truncated copy can be matched
against the producer's logs; the reason headers the service set stay. The broker adapter reads the
limit at start (``stream.kafka_io.KafkaBroker``).
"""

from __future__ import annotations

import hashlib

from stream.ports import Headers

TRUNCATED = "centinela.truncated"
ORIGINAL_SIZE = "centinela.original.size"
ORIGINAL_KEY_SIZE = "centinela.original.key_size"
ORIGINAL_SHA256 = "centinela.original.sha256"

# What a record costs beyond its key, value and header bytes (record and batch framing, varints,
# ~100 bytes) with room to spare; librdkafka and the broker count slightly differently.
RECORD_OVERHEAD = 1024
# A key longer than this is cut too when the message has to be truncated (keys are station ids).
MAX_KEPT_KEY = 256
# A limit below this leaves no room for the headers: the adapter never uses one (see ``usable_limit``).
MIN_LIMIT = 4096


def message_size(key: bytes | None, value: bytes | None, headers: Headers | None) -> int:
    """Key, value and header bytes plus the record overhead: what counts against the size limits."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, header in headers or ():
        size += len(name.encode()) + len(header)
    return size


def usable_limit(*limits: int | None) -> int:
    """The smallest known limit (the producer's ``message.max.bytes``, the topic's
    ``max.message.bytes``), never below ``MIN_LIMIT``."""
    known = [limit for limit in limits if limit is not None and limit > 0]
    return max(MIN_LIMIT, min(known)) if known else 1_000_000


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Headers | None, limit: int
) -> tuple[bytes | None, bytes | None, Headers | None]:
    """``(key, value, headers)`` unchanged when they fit in ``limit`` bytes; else truncated as the
    module docstring says, and guaranteed to fit (``message_size(...) <= limit``)."""
    if message_size(key, value, headers) <= limit:
        return key, value, headers
    original = value or b""
    ours = [(name, header) for name, header in headers or () if name.startswith("centinela.")]
    theirs = [(name, header) for name, header in headers or () if not name.startswith("centinela.")]
    added: Headers = [
        (TRUNCATED, b"true"),
        (ORIGINAL_SIZE, str(len(original)).encode()),
        (ORIGINAL_SHA256, hashlib.sha256(original).hexdigest().encode()),
    ]
    if key is not None and len(key) > MAX_KEPT_KEY:
        added.append((ORIGINAL_KEY_SIZE, str(len(key)).encode()))
        key = key[:MAX_KEPT_KEY]
    # The producer's own headers go first when room is short: ours say why the message is here.
    kept: Headers = [*theirs, *ours, *added]
    if message_size(key, b"", kept) > limit // 2:
        added.append(("centinela.original.headers_dropped", str(len(theirs)).encode()))
        kept = [*ours, *added]
    if message_size(key, b"", kept) > limit:  # our own headers are short; cut them if they are not
        kept = [(name, header[:128]) for name, header in kept]
    room = max(0, limit - message_size(key, b"", kept))
    return key, original[:room], kept
