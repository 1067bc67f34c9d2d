"""Async worker invoked by message: recall memory, stream the reply, persist it."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows import handle_stream
    from kefu_core.lambda_runtime import async_invoke_handler

    lambda_handler = async_invoke_handler(handle_stream)
