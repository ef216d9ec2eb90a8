"""USB badge readers that act as a keyboard: the UID is typed, then Enter.

:class:`KeystrokeDecoder` is pure: evdev key names in, UIDs out.
:class:`KeyboardReader` reads the device with python-evdev (Linux only, imported
when a keyboard reader is opened) and grabs it exclusively, so that the typed
UID never reaches the kiosk browser or a login prompt.

Many of these readers type the card number in decimal (often 10 digits, the
32-bit number printed on the card); with ``format="decimal"`` it is converted
to hex, zero-padded to at least 8 digits, so "0008844356" becomes "0086F444".
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, Literal

from gateway.access.errors import AccessError
from gateway.access.readers.base import BadgeReader, RejectedFrame
from gateway.backoff import Backoff

log = logging.getLogger(__name__)

KeyboardFormat = Literal["hex", "decimal"]

KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2  # evdev key event values (linux/input.h)

_DIGIT_KEYS = {f"KEY_{d}": d for d in "0123456789"} | {f"KEY_KP{d}": d for d in "0123456789"}
_HEX_LETTER_KEYS = {f"KEY_{c}": c for c in "ABCDEF"}
_ENTER_KEYS = frozenset({"KEY_ENTER", "KEY_KPENTER"})
# Readers that type upper-case letters press shift around them: not part of the UID.
_IGNORED_KEYS = frozenset({"KEY_LEFTSHIFT", "KEY_RIGHTSHIFT", "KEY_CAPSLOCK", "KEY_NUMLOCK"})
_MAX_CHARS = 32


class KeystrokeDecoder:
    """Pure decoder of key-down events into UIDs.

    Key-up and auto-repeat events are ignored.  A key outside the format spoils
    the UID being typed (it is rejected at Enter), and a pause longer than
    ``key_timeout`` between keys abandons a partial UID (a lost Enter).
    """

    def __init__(self, format: KeyboardFormat = "hex", *, key_timeout: float = 0.5) -> None:
        self.format = format
        self.key_timeout = key_timeout
        self._keys = _DIGIT_KEYS if format == "decimal" else _DIGIT_KEYS | _HEX_LETTER_KEYS
        self._chars: list[str] = []
        self._spoilt: str | None = None  # reason, once the UID being typed is bad
        self._last: float | None = None

    def feed(self, keycode: str, t: float, value: int = KEY_DOWN) -> str | RejectedFrame | None:
        """One key event; returns a UID or a rejection when a UID ends, else ``None``."""
        if value != KEY_DOWN or keycode in _IGNORED_KEYS:
            return None
        timed_out = self._typing and self._last is not None and t - self._last > self.key_timeout
        result: str | RejectedFrame | None = None
        if timed_out:
            self._reset()
            result = RejectedFrame("partial UID abandoned: no Enter in time")
        self._last = t
        if keycode in _ENTER_KEYS:
            return self._finish() if result is None else result
        if self._spoilt is None:  # once spoilt, the rest of the UID is skipped
            char = self._keys.get(keycode)
            if char is None:
                self._spoilt = f"unexpected key for a {self.format} UID"
            elif len(self._chars) == _MAX_CHARS:
                self._spoilt = f"more than {_MAX_CHARS} characters"
            else:
                self._chars.append(char)
        return result

    @property
    def _typing(self) -> bool:
        return bool(self._chars) or self._spoilt is not None

    def _reset(self) -> None:
        self._chars = []
        self._spoilt = None

    def _finish(self) -> str | RejectedFrame:
        chars, spoilt = "".join(self._chars), self._spoilt
        self._reset()
        if spoilt is not None:
            return RejectedFrame(spoilt)
        if not chars:
            return RejectedFrame("Enter without a UID")
        if self.format == "decimal":
            number = int(chars)
            digits = max(8, (number.bit_length() + 3) // 4)
            return f"{number:0{digits + digits % 2}X}"
        return chars


def _import_evdev() -> ModuleType:
    try:
        return importlib.import_module("evdev")
    except ImportError as err:
        raise AccessError(
            "keyboard badge readers need python-evdev, which is not installed; install it with "
            "`pip install evdev` (Linux only; needs gcc and the kernel headers, or "
            "`apt install python3-evdev`)"
        ) from err


class KeyboardReader(BadgeReader):
    """A USB keyboard-emulating reader, grabbed so its keystrokes reach nothing else.

    ``device`` is an event device path (``/dev/input/event3``), a glob such as
    ``/dev/input/by-id/usb-*-event-kbd``, or the device's name as the kernel
    reports it (``evtest`` lists them).  A lost device is looked for again
    with the shared backoff.
    """

    def __init__(
        self,
        name: str = "keyboard",
        *,
        device: str,
        format: KeyboardFormat = "hex",
        key_timeout: float = 0.5,
        repeat_suppress: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, repeat_suppress=repeat_suppress)
        self.device = device
        self.format: KeyboardFormat = format
        self.key_timeout = key_timeout
        self.backoff = backoff or Backoff(initial=0.5, maximum=10.0)
        self._evdev: ModuleType | None = None
        self._input: Any = None  # evdev.InputDevice
        self._pending: asyncio.Future[Any] | None = None  # the read in progress

    async def _open(self) -> None:
        if self._input is None:
            self._evdev = _import_evdev()
            self._connect()

    def _connect(self) -> None:
        evdev = self._evdev
        assert evdev is not None
        path = self._find(evdev)
        try:
            device = evdev.InputDevice(path)
        except OSError as err:
            raise AccessError(
                f"could not open badge reader {self.name!r} at {path}: {err}; is the gateway "
                "user in the input group?"
            ) from err
        try:
            device.grab()
        except OSError as err:
            device.close()
            raise AccessError(
                f"could not grab badge reader {self.name!r} at {path}: {err}; another program "
                "(a kiosk, Xorg with a grab) holds it exclusively"
            ) from err
        self._input = device

    def _find(self, evdev: ModuleType) -> str:
        spec = self.device
        if spec.startswith("/"):
            if not any(ch in spec for ch in "*?["):
                return spec
            matches = sorted(glob.glob(spec))
            if len(matches) == 1:
                return matches[0]
            raise AccessError(
                f"{len(matches)} input devices match {spec!r}; make the reader's device "
                "name exactly one (`ls /dev/input/by-id/`)"
            )
        names: list[str] = []
        for path in evdev.list_devices():
            try:
                candidate = evdev.InputDevice(path)
            except OSError:
                continue  # unplugged meanwhile, or not ours to read
            try:
                names.append(candidate.name)
                if candidate.name == spec:
                    return str(path)
            finally:
                candidate.close()
        raise AccessError(
            f"no input device is named {spec!r}; found: {', '.join(sorted(names)) or 'none'}; "
            "is the reader plugged in, and is the gateway user in the input group?"
        )

    async def _close(self) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            pending.set_result([])
        self._disconnect()

    def _disconnect(self) -> None:
        device, self._input = self._input, None
        if device is None:
            return
        for release in (device.ungrab, device.close):
            with contextlib.suppress(OSError):  # already gone with the unplugged device
                release()

    async def _frames(self) -> AsyncIterator[str | RejectedFrame]:
        evdev = self._evdev
        assert evdev is not None
        decoder = KeystrokeDecoder(self.format, key_timeout=self.key_timeout)
        while not self.closing:
            device = self._input
            if device is None:
                if not await self._reconnect():
                    return
                decoder = KeystrokeDecoder(self.format, key_timeout=self.key_timeout)
                continue
            try:
                events = await self._read_batch(device)
            except OSError as err:
                if self.closing:
                    return
                log.warning(
                    "badge reader %s: lost %s (%s); looking for it again",
                    self.name,
                    self.device,
                    err,
                )
                self._disconnect()
                continue
            for event in events:
                if event.type != evdev.ecodes.EV_KEY:
                    continue
                names = evdev.ecodes.KEY.get(event.code, "")
                # evdev gives a list where several names share one code.
                keycode = names[0] if isinstance(names, list) else names
                result = decoder.feed(keycode, event.timestamp(), event.value)
                if result is not None:
                    yield result

    async def _read_batch(self, device: Any) -> Any:
        # evdev's close() drops the fd from the loop without resolving a pending
        # async_read(), so _close() resolves it with no events instead.
        self._pending = device.async_read()
        try:
            return await self._pending
        finally:
            self._pending = None

    async def _reconnect(self) -> bool:
        while not self.closing:
            if await self._pause(self.backoff.next_delay()):
                return False
            try:
                self._connect()
            except AccessError as err:
                log.debug("badge reader %s: %s", self.name, err)
                continue
            self.backoff.reset()
            log.info("badge reader %s: %s found again", self.name, self.device)
            return True
        return False
