"""The one place ticket tokens are made: at creation, at seeding and at rotation.

Tokens are random (version 4) UUIDs from the operating system's CSPRNG. A batch is drawn
from one ``os.urandom`` call and stamped with the version and variant bits by a byte
translation, not a Python call per row: at a million rows ``uuid.uuid4()`` in a loop costs
seconds (docs/decisions.md). ``new_tokens`` gives ``UUID`` objects; ``new_token_hexes``
gives the same kind of tokens as text, which is what a bulk write sends anyway.
"""

from __future__ import annotations

import os
import uuid

_SIZE = 16
# RFC 9562 (4122) section 5.4: version 4 in the high nibble of byte 6, variant 0b10 in the
# two high bits of byte 8.
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_RFC = bytes((b & 0x3F) | 0x80 for b in range(256))


def _random_v4(count: int) -> bytes:
    raw = bytearray(os.urandom(_SIZE * count))
    raw[6::_SIZE] = raw[6::_SIZE].translate(_VERSION_4)
    raw[8::_SIZE] = raw[8::_SIZE].translate(_VARIANT_RFC)
    return bytes(raw)


def new_tokens(count: int) -> list[uuid.UUID]:
    """Return ``count`` fresh random version-4 UUIDs."""
    raw = _random_v4(count)
    return [uuid.UUID(bytes=raw[i : i + _SIZE]) for i in range(0, len(raw), _SIZE)]


def new_token_hexes(count: int) -> list[str]:
    """The same tokens as ``new_tokens``, as 32 lowercase hex digits each: the text form
    PostgreSQL's uuid input and Django's SQLite storage both take, made without a Python
    object per token (about 10x cheaper than ``new_tokens`` per row)."""
    h = _random_v4(count).hex()
    return [h[i : i + 2 * _SIZE] for i in range(0, len(h), 2 * _SIZE)]


def new_token() -> uuid.UUID:
    """The model field's default: one fresh token."""
    return new_tokens(1)[0]
