"""Slicer uploads: member keys, OctoPrint/Moonraker-compatible uploads, jobs held for
their member until that member taps start at the machine, USB sticks at the kiosk.

Public surface: :mod:`gateway.slicer.config`, :mod:`gateway.slicer.events` and the
commands :class:`gateway.slicer.service.SlicerService` registers.
"""
