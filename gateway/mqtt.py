"""Connection settings for capabilities that open their own MQTT client to the
space's broker (the ledger's retained copy, MQTT energy meters, ``gateway ledger
verify --from-broker``), taken from the ``[telemetry]`` section so that one set
of host, login and TLS files serves them all.
"""

from __future__ import annotations

import ssl
from typing import Any

from gateway.telemetry.config import TelemetryConfig


class BrokerSettingsError(Exception):
    """The TLS files in ``[telemetry]`` cannot be loaded."""


def tls_context(config: TelemetryConfig) -> ssl.SSLContext | None:
    """The TLS context ``config`` asks for, or None (blocking: reads the files)."""
    if not config.tls:
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )
        if config.cert_file is not None:
            context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as err:
        raise BrokerSettingsError(
            f"cannot load the TLS files for the MQTT broker: {err}; "
            "check telemetry.ca_file, cert_file and key_file"
        ) from err
    return context


def client_options(
    config: TelemetryConfig, *, identifier: str, tls: ssl.SSLContext | None
) -> dict[str, Any]:
    """Keyword arguments for ``aiomqtt.Client`` (host and port first)."""
    return {
        "hostname": config.host,
        "port": config.port,
        "username": config.username,
        "password": config.password.get_secret_value() if config.password else None,
        "identifier": identifier,
        "keepalive": config.keepalive,
        "tls_context": tls,
        "timeout": 10.0,
    }
