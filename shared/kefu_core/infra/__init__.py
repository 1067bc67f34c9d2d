"""What every entry point stands on.

Settings read and validated at cold start (:mod:`.settings`, :mod:`.secret_settings`),
PostgreSQL and the schema (:mod:`.db`, :mod:`.schema`, :mod:`.deploy_migrations`, the SQL in
``migrations/``), redacting logs (:mod:`.logs`), product metrics (:mod:`.metrics`), X-Ray
tracing (:mod:`.tracing`), the Lambda event loop (:mod:`.lambda_runtime`), the embedded
PostgreSQL and Redis of ``kefu run`` (:mod:`.embedded`), clean shutdown (:mod:`.shutdown`) and
the core's exceptions (:mod:`.errors`).
"""
