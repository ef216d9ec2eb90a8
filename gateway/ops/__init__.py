"""Running the gateway as a system service: systemd notifications, journald
logging, database backup and restore, and the relay's off switch for
``ExecStopPost=``."""
