"""Cura's app-key pairing, as a pure state machine (tokens and times are passed in).

The OctoPrint "Application Keys" plugin protocol, which Cura's OctoPrint plugin
(``OctoPrintOutputDevice``/``DiscoverOctoPrintAction``) speaks:

- ``GET /plugin/appkeys/probe`` answers 204 when pairing is supported;
- ``POST /plugin/appkeys/request`` ``{"app": "Cura"}`` answers 201 with
  ``{"app_token": T}`` and a ``Location`` to poll;
- ``GET /plugin/appkeys/request/T`` answers 202 while the request waits, 200
  ``{"api_key": K}`` once approved, 404 once denied or expired.

Here the request is approved on the machine's touchscreen by the member badged in
there, and the key issued is that member's own key (label = the app's name).  The
key is handed out on the first poll after approval and then forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

MAX_PENDING = 8
MAX_APP = 64


class PairingState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    COLLECTED = "collected"


@dataclass(frozen=True, slots=True)
class Pairing:
    token: str
    app: str
    requested_at: float
    expires_at: float
    state: PairingState = PairingState.PENDING
    member_id: str | None = None
    member_name: str | None = None
    api_key: str | None = None


def clean_app(app: object) -> str | None:
    """The app's name as shown on the touchscreen, or None when unusable."""
    if not isinstance(app, str):
        return None
    text = "".join(ch for ch in app if ch.isprintable()).strip()
    return text[:MAX_APP] or None


class PairingBook:
    """Open pairing requests of one machine."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._requests: dict[str, Pairing] = {}

    def expire(self, now: float) -> None:
        for token, p in list(self._requests.items()):
            # A collected key is never handed out twice; a denied request stays (and
            # answers 404) until it would have expired.
            if now >= p.expires_at or p.state is PairingState.COLLECTED:
                del self._requests[token]

    def request(self, token: str, app: str, now: float) -> Pairing:
        self.expire(now)
        pending = [p for p in self._requests.values() if p.state is PairingState.PENDING]
        if len(pending) >= MAX_PENDING:
            oldest = min(pending, key=lambda p: p.requested_at)
            del self._requests[oldest.token]
        p = Pairing(token, app, now, now + self.timeout)
        self._requests[token] = p
        return p

    def pending(self, now: float) -> list[Pairing]:
        self.expire(now)
        return sorted(
            (p for p in self._requests.values() if p.state is PairingState.PENDING),
            key=lambda p: p.requested_at,
        )

    def get(self, token: str, now: float) -> Pairing | None:
        self.expire(now)
        return self._requests.get(token)

    def approve(
        self, token: str, member_id: str, member_name: str, api_key: str, now: float
    ) -> Pairing | None:
        p = self.get(token, now)
        if p is None or p.state is not PairingState.PENDING:
            return None
        p = replace(
            p,
            state=PairingState.APPROVED,
            member_id=member_id,
            member_name=member_name,
            api_key=api_key,
        )
        self._requests[token] = p
        return p

    def deny(self, token: str, now: float) -> bool:
        p = self.get(token, now)
        if p is None or p.state is not PairingState.PENDING:
            return False
        self._requests[token] = replace(p, state=PairingState.DENIED)
        return True

    def collect(self, token: str, now: float) -> Pairing | None:
        """The request as its poller sees it; an approved key is handed out once."""
        p = self.get(token, now)
        if p is None:
            return None
        if p.state is PairingState.APPROVED:
            self._requests[token] = replace(p, state=PairingState.COLLECTED, api_key=None)
        return p
