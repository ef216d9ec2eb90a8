"""Errors of the access-control capability."""


class AccessError(Exception):
    """Base of the access capability's errors; messages say what to do next."""
