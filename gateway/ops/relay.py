"""``gateway relay-off``: drive the relay pin to its off level from a fresh process.

systemd runs it as ``ExecStopPost=`` after the daemon's main process has gone
for any reason, SIGKILL and crashes included, when the daemon could not switch
the relay off itself.  The relay's power-on state is off as well
(``initial_value=False``), so the relay is off whenever the daemon is not running.
"""

from __future__ import annotations

from gpiozero import OutputDevice
from gpiozero.exc import GPIOZeroError

from gateway.access.errors import AccessError
from gateway.access.pins import make_pin_factory
from gateway.config import GatewayConfig


def relay_off(config: GatewayConfig) -> str:
    """Switch the configured relay off; returns what was done, for the log."""
    access = config.access
    pin = access.outputs.relay_pin
    if not access.enabled or pin is None:
        return "access control is disabled: there is no relay to switch off"
    factory = make_pin_factory(access.gpio, state_dir=config.storage.state_dir)
    try:
        device = OutputDevice(
            pin,
            active_high=access.outputs.relay_active_high,
            initial_value=False,
            pin_factory=factory,
        )
        device.off()
        device.close()
    except GPIOZeroError as err:
        raise AccessError(
            f"could not drive the relay on GPIO{pin} off: {err}; is another process using it? "
            "(check `systemctl status gateway`)"
        ) from err
    finally:
        factory.close()
    level = "high" if not access.outputs.relay_active_high else "low"
    return f"relay on GPIO{pin} is off (pin driven {level})"
