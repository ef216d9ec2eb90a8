"""MQTT telemetry: the machine's state and events to a broker, commands back.

Public surface (import from the modules; this package imports nothing so that
``gateway.config`` can import the config model without pulling in MQTT):

* :class:`gateway.telemetry.config.TelemetryConfig` -- the ``[telemetry]`` section.
* :class:`gateway.telemetry.service.TelemetryService` -- the supervised service.
* :mod:`gateway.telemetry.events` -- ``OutboxDropped``, ``BrokerConnected``,
  ``BrokerDisconnected``.
* :func:`gateway.telemetry.fleet.run_fleet` -- the ``gateway fleet`` table.

Topics and payloads are documented in the README ("MQTT topics and payloads").
"""
