"""Metering: what a session or job used (time, energy, material) and what it costs.

Public surface: :class:`~gateway.metering.service.MeteringService`, its config
(:mod:`gateway.metering.config`) and its events (:mod:`gateway.metering.events`).
"""
