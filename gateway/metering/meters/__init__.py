"""Energy meters: one adapter per device family, each with a simulated twin beside it."""
