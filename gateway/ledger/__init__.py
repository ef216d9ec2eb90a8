"""The usage ledger: closed sessions and jobs as a signed hash chain, per machine.

Public surface: :class:`~gateway.ledger.service.LedgerService`, its config
(:mod:`gateway.ledger.config`), its events (:mod:`gateway.ledger.events`) and
``gateway ledger verify|export|correct`` (:mod:`gateway.ledger.cli`).
"""
