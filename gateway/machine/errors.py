"""Errors of the machine capability."""


class MachineError(Exception):
    """Base of the machine capability's errors; messages say what to do next."""
