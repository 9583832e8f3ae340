from __future__ import annotations

import uuid

import pytest

from tickets import tokens
from tickets.tokens import new_token, new_token_hexes, new_tokens


def _is_random_v4(token: uuid.UUID) -> bool:
    return token.version == 4 and token.variant == uuid.RFC_4122


def test_new_tokens__count_and_kind() -> None:
    made = new_tokens(1_000)
    assert len(made) == 1_000
    assert all(isinstance(t, uuid.UUID) and _is_random_v4(t) for t in made)


def test_new_tokens__all_distinct_within_and_across_batches() -> None:
    first, second = new_tokens(5_000), new_tokens(5_000)
    assert len(set(first) | set(second)) == 10_000


def test_new_tokens__zero_is_an_empty_list() -> None:
    assert new_tokens(0) == []
    assert new_token_hexes(0) == []


@pytest.mark.parametrize("fill", [b"\x00", b"\xff", b"\xaa", b"\x55"])
def test_new_tokens__version_and_variant_bits_whatever_the_random_bytes(
    monkeypatch: pytest.MonkeyPatch, fill: bytes
) -> None:
    monkeypatch.setattr(tokens.os, "urandom", lambda n: fill * n)
    for token in new_tokens(3):
        assert _is_random_v4(token)
        # Only the 6 fixed bits differ from the random input.
        raw = token.bytes
        assert raw[:6] == fill * 6 and raw[7] == fill[0] and raw[9:] == fill * 7
        assert raw[6] >> 4 == 0x4 and raw[6] & 0x0F == fill[0] & 0x0F
        assert raw[8] >> 6 == 0b10 and raw[8] & 0x3F == fill[0] & 0x3F


def test_new_tokens__draws_from_the_os_csprng_once_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = tokens.os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(tokens.os, "urandom", counting)
    new_tokens(250)
    assert calls == [250 * 16]


def test_new_token_hexes__same_kind_of_token_as_text() -> None:
    hexes = new_token_hexes(500)
    assert len(hexes) == len(set(hexes)) == 500
    for text in hexes:
        assert len(text) == 32 and text == text.lower()
        assert _is_random_v4(uuid.UUID(hex=text))


def test_new_token__one_fresh_v4_uuid_per_call() -> None:
    first, second = new_token(), new_token()
    assert _is_random_v4(first) and _is_random_v4(second)
    assert first != second
