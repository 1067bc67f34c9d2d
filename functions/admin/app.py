"""Admin HTTP API: the FastAPI admin app behind API Gateway, through Mangum."""
from typing import Any

from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from mangum import Mangum

    from kefu_core.admin import create_admin_app
    from kefu_core.infra.logs import lambda_logger
    from kefu_core.infra.tracing import trace_handler
    from kefu_core.lambda_runtime import container_loop, flush_metrics

    logger = lambda_logger()  # redacted JSON log lines, as the WebSocket functions write
    _app = Mangum(create_admin_app(), lifespan="off")


@trace_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    container_loop()  # Mangum runs the app on the current loop: the one the clients are bound to
    try:
        result: dict[str, Any] = _app(event, context)
        return result
    finally:
        flush_metrics()  # e.g. a handoff an administrator made
