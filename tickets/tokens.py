"""The one place ticket tokens are made: at creation, at seeding and at rotation.

Tokens are random (version 4) UUIDs from the operating system's CSPRNG. ``new_tokens``
draws a whole batch from one ``os.urandom`` call: at a million rows the per-call overhead
of ``uuid.uuid4()`` is measurable (see docs/decisions.md), and the bits are the same.
"""

from __future__ import annotations

import os
import uuid

_TOKEN_BYTES = 16


def new_tokens(count: int) -> list[uuid.UUID]:
    """Return ``count`` fresh random version-4 UUIDs."""
    raw = bytearray(os.urandom(_TOKEN_BYTES * count))
    # RFC 4122 section 4.4: version 4 in the high nibble of byte 6, variant 10 in byte 8.
    raw[6::_TOKEN_BYTES] = bytes((b & 0x0F) | 0x40 for b in raw[6::_TOKEN_BYTES])
    raw[8::_TOKEN_BYTES] = bytes((b & 0x3F) | 0x80 for b in raw[8::_TOKEN_BYTES])
    view = bytes(raw)
    return [uuid.UUID(bytes=view[i : i + _TOKEN_BYTES]) for i in range(0, len(view), _TOKEN_BYTES)]


def new_token() -> uuid.UUID:
    """The model field's default: one fresh token."""
    return new_tokens(1)[0]
