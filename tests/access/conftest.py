"""Hostile access list bodies for the source tests (``hostile_bodies`` fixture).

Each is a body some source could deliver, with a phrase the refusal must contain.
Found from outside: JSON nested 100,000 deep raised ``RecursionError`` through the
HTTP source and took the access service (and the relay) down with it.
"""

from __future__ import annotations

import functools
import json
import zlib

import pytest

MB = 1024 * 1024
HEAD = b'{"version": 1, "generated_at": "2024-05-01T00:00:00Z", "count": 1, "members": '


def deep(levels: int = 100_000) -> bytes:
    return HEAD + b"[" * levels + b"]" * levels + b"}"


def deep_objects(levels: int = 100_000) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


def gzip_bytes(chunks: int, chunk: bytes) -> bytes:
    """gzip of ``chunk * chunks``, built in steps (never the whole thing in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(chunk) for _ in range(chunks)]
    out.append(packer.flush())
    return b"".join(out)


@functools.cache
def gzip_bomb() -> bytes:
    """About 100 kB that inflate to 100 MB of spaces."""
    return gzip_bytes(100, b" " * MB)


@functools.cache
def fifty_mb() -> bytes:
    """A syntactically plausible list of 50 MB."""
    filler = {"id": "m-x", "name": "x" * 1000}
    one = json.dumps(filler).encode()
    n = 50 * MB // (len(one) + 2)
    return HEAD + b"[" + b", ".join([one] * n) + b"]}"


def cut_short() -> bytes:
    whole = gzip_bytes(1, bytes(range(256)) * 400)
    return whole[: len(whole) // 2]


def with_count(count: bytes) -> bytes:
    return HEAD.replace(b'"count": 1', b'"count": ' + count) + b"[]}"


@pytest.fixture(scope="session")
def hostile_bodies() -> dict[str, tuple[bytes, str]]:
    """name -> (body, a phrase the refusal must contain)."""
    return {
        "nested 100,000 deep": (deep(), "nested too deeply"),
        "objects nested 100,000 deep": (deep_objects(), "nested too deeply"),
        "a number of 100,000 digits": (with_count(b"9" * 100_000), "100000 digits"),
        "a float beyond range": (with_count(b"1e999999"), "out of range"),
        "NaN": (with_count(b"NaN"), "not a JSON number"),
        "invalid UTF-8": (HEAD + b'[{"id": "m-1", "name": "\xff\xfe\xc3"}]}', "not UTF-8"),
        "a gzip bomb": (gzip_bomb(), "larger than"),
        "gzip cut short": (cut_short(), "cut short"),
        "50 MB": (fifty_mb(), "larger than"),
        "binary noise": (bytes(range(256)) * 64, "not UTF-8"),
        "empty": (b"", "not valid JSON"),
    }
