"""Machine gateway for community makerspaces.

One asyncio daemon per machine: G-code streaming, badge access control, camera
monitoring, MQTT telemetry and a touchscreen UI, wired together by a supervisor
over a typed in-process event bus.
"""

__version__ = "0.1.0"
