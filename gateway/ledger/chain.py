"""The ledger's records: a hash chain per machine, each record signed with Ed25519.

A record is::

    {"seq": 7, "machine_id": "printer-1", "kind": "session", "ts": 1764480000.0,
     "body": {...}, "prev_hash": "<hash of record 6>", "key_id": "<16 hex>",
     "hash": "<sha256 hex>", "signature": "<ed25519 hex>"}

* ``hash`` is SHA-256 of the canonical JSON (keys sorted, no spaces, UTF-8, no
  NaN) of every field except ``hash`` and ``signature``; ``signature`` is the
  gateway's Ed25519 signature of the 32 hash bytes.
* ``seq`` counts from 1 without gaps; record 1's ``prev_hash`` is 64 zeros.
* ``kind``: ``session`` and ``job`` (a closed session or job, the metering
  capability's figures), ``correction`` (a refund or a failed print not billed:
  ``body.corrects`` names the earlier record's ``seq`` and ``hash``; records are
  never edited).

So an edited record fails its hash (or its signature, if the hash was redone);
a deleted or reordered record breaks the next record's ``prev_hash`` or the
``seq`` count; a truncated tail shows only against a head kept elsewhere (the
retained ``ledger/head`` on the broker, the membership system's last record),
which :func:`verify_chain` takes as ``expected_head``.

Pure: no clock, no I/O; signing and checking are computations on given keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.ledger.errors import LedgerFormatError

GENESIS = "0" * 64
KINDS = frozenset({"session", "job", "correction"})
SIGNED_FIELDS = ("seq", "machine_id", "kind", "ts", "body", "prev_hash", "key_id")


def canonical(value: Any) -> bytes:
    """The one JSON text of ``value`` that hashes are taken of."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    machine_id: str
    kind: str
    ts: float
    body: dict[str, Any]
    prev_hash: str
    key_id: str
    hash: str
    signature: str

    def signed_part(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SIGNED_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return {**self.signed_part(), "hash": self.hash, "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any) -> Record:
        """A record from its JSON form; anything missing or mistyped is a format error."""
        if not isinstance(data, dict):
            raise LedgerFormatError("a record is not a JSON object")
        types: dict[str, tuple[type, ...]] = {
            "seq": (int,),
            "machine_id": (str,),
            "kind": (str,),
            "ts": (int, float),
            "body": (dict,),
            "prev_hash": (str,),
            "key_id": (str,),
            "hash": (str,),
            "signature": (str,),
        }
        for name, allowed in types.items():
            value = data.get(name)
            if not isinstance(value, allowed) or isinstance(value, bool):
                kind = allowed[0].__name__
                raise LedgerFormatError(f"a record's {name!r} is missing or not {kind}")
        if not math.isfinite(data["ts"]):
            raise LedgerFormatError("a record's 'ts' is not a finite number")
        return cls(
            seq=data["seq"],
            machine_id=data["machine_id"],
            kind=data["kind"],
            ts=float(data["ts"]),
            body=data["body"],
            prev_hash=data["prev_hash"],
            key_id=data["key_id"],
            hash=data["hash"],
            signature=data["signature"],
        )


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 of the raw public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def record_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def make_record(
    prev: Record | tuple[int, str] | None,
    *,
    machine_id: str,
    kind: str,
    ts: float,
    body: dict[str, Any],
    key: Ed25519PrivateKey,
) -> Record:
    """The record after ``prev`` (a record, or its ``(seq, hash)``; None for the first)."""
    if kind not in KINDS:
        raise LedgerFormatError(f"unknown record kind {kind!r} (use {', '.join(sorted(KINDS))})")
    if isinstance(prev, Record):
        prev = (prev.seq, prev.hash)
    seq, prev_hash = (1, GENESIS) if prev is None else (prev[0] + 1, prev[1])
    fields = {
        "seq": seq,
        "machine_id": machine_id,
        "kind": kind,
        "ts": float(ts),
        "body": json.loads(canonical(body)),  # what a reader will see after a round trip
        "prev_hash": prev_hash,
        "key_id": key_id(key.public_key()),
    }
    digest = record_hash(fields)
    signature = key.sign(bytes.fromhex(digest)).hex()
    return Record(**fields, hash=digest, signature=signature)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`verify_chain`: ``first_bad`` is the position (1-based) of
    the first record that fails, with the reason; ``ok`` when there is none."""

    ok: bool
    count: int
    first_bad: int | None = None
    seq: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.count} records, chain and signatures intact"
        where = f"record #{self.first_bad}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"BAD: {where}: {self.reason}"


def _bad(position: int, record: Record | None, reason: str, count: int) -> Verdict:
    return Verdict(False, count, position, record.seq if record else None, reason)


def verify_chain(
    records: Sequence[Record],
    public_key: Ed25519PublicKey,
    *,
    expected_head: tuple[int, str] | None = None,
) -> Verdict:
    """Check seq, links, hashes, signatures and corrections; name the first bad record."""
    kid = key_id(public_key)
    seen: dict[int, str] = {}
    prev: Record | None = None
    n = len(records)
    for i, r in enumerate(records, start=1):
        expected_seq = 1 if prev is None else prev.seq + 1
        if r.seq != expected_seq:
            missing = "missing" if r.seq > expected_seq else "out of order or repeated"
            return _bad(i, r, f"seq {r.seq} where {expected_seq} was due (records {missing})", n)
        if r.prev_hash != (GENESIS if prev is None else prev.hash):
            return _bad(i, r, "prev_hash does not match the record before it "
                        "(a record was deleted, reordered or edited)", n)
        if record_hash(r.signed_part()) != r.hash:
            return _bad(i, r, "its contents do not match its hash (the record was edited)", n)
        if r.key_id != kid:
            return _bad(i, r, f"signed by key {r.key_id}, not by this gateway's key {kid}", n)
        try:
            public_key.verify(bytes.fromhex(r.signature), bytes.fromhex(r.hash))
        except (InvalidSignature, ValueError):
            return _bad(i, r, "its signature is not valid for this gateway's key", n)
        if r.kind not in KINDS:
            return _bad(i, r, f"unknown kind {r.kind!r}", n)
        if r.kind == "correction":
            ref = r.body.get("corrects")
            if not isinstance(ref, dict) or seen.get(ref.get("seq", -1)) != ref.get("hash"):
                why = "a correction that does not name an earlier record's seq and hash"
                return _bad(i, r, why, n)
        if prev is not None and r.machine_id != prev.machine_id:
            return _bad(i, r, f"machine {r.machine_id!r} in a chain of {prev.machine_id!r}", n)
        seen[r.seq] = r.hash
        prev = r
    if expected_head is not None:
        head_seq, head_hash = expected_head
        last_seq = prev.seq if prev is not None else 0
        if last_seq < head_seq:
            return Verdict(False, n, n + 1, last_seq + 1,
                           f"records {last_seq + 1} to {head_seq} are missing (the published "
                           f"head is seq {head_seq})")
        if head_seq > 0 and seen.get(head_seq) != head_hash:
            return Verdict(False, n, head_seq, head_seq,
                           "does not match the published head's hash (the chain was rewritten)")
    return Verdict(True, n)
