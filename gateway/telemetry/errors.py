"""Errors of the telemetry capability."""


class TelemetryError(Exception):
    """Base of the telemetry capability's errors; messages say what to do next."""


class OutboxError(TelemetryError):
    """The store-and-forward outbox cannot be opened or written."""
