"""Scheduled retention: delete what is older than each tenant's retention settings."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows.personal_data import retention_flow
    from kefu_core.lambda_runtime import async_invoke_handler

    lambda_handler = async_invoke_handler(retention_flow)
