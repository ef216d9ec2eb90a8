"""The camera capability: live view, snapshots, per-job timelapses and picture alerts.

Public surface: :class:`~gateway.camera.service.CameraService` (the supervised
service), :class:`~gateway.camera.config.CameraConfig` (the ``[camera]``
section), :func:`~gateway.camera.routes.camera_router` (its HTTP API) and the
events in :mod:`gateway.camera.events`.  Everything else is internal.
"""
