"""Simulated controllers: firmware models that behave like Marlin and GRBL,
served on a pseudo-terminal (:mod:`.pty`) or wired to a protocol core in memory
(:mod:`.link`) for property tests."""
