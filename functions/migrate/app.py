"""SchemaMigration custom resource: apply the core and memory migrations at deploy time."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows.deploy_migrations import handle_custom_resource
    from kefu_core.infra.logs import lambda_logger
    from kefu_core.lambda_runtime import run

    logger = lambda_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    return handle_custom_resource(event, run)
