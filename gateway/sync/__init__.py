"""The hub's MQTT link to the cloud (DESIGN.md section 3): ``link.HubLink`` is the entry point.

Modules: ``settings`` (limits and timings), ``backoff``, ``client`` (dialling the broker),
``announce`` (hello and status), ``outbox`` (pump and depth watch), ``link``. Nothing is
re-exported here, so ``gateway.config`` can import ``settings`` without pulling in the engine.
"""
