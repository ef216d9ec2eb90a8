"""The ledger capability's exceptions."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error."""


class LedgerFormatError(LedgerError):
    """A record or file is not in the ledger's format; the message says where."""


class LedgerKeyError(LedgerError):
    """The signing key cannot be read or made; the message says what to check."""
