"""What every entry point stands on.

Settings read and validated at cold start (:mod:`.settings`, :mod:`.secret_settings`),
PostgreSQL and the schema (:mod:`.db`, :mod:`.schema`, the SQL in ``migrations/``), redacting
logs (:mod:`.logs`), product metrics (:mod:`.metrics`), X-Ray tracing (:mod:`.tracing`), the
embedded PostgreSQL and Redis of ``kefu run`` (:mod:`.embedded`), clean shutdown
(:mod:`.shutdown`) and the core's exceptions (:mod:`.errors`). Nothing here imports the rest of
kefu_core.
"""
