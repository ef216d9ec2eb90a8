"""Errors of the camera capability; messages say what to do next."""


class CameraError(Exception):
    """Base of the camera capability's errors."""


class CameraUnavailable(CameraError):
    """The camera cannot be opened, or stopped delivering frames."""


class TimelapseError(CameraError):
    """A timelapse could not be stored or rendered."""
