"""message and $default routes: validate, persist, acknowledge, hand off to stream."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows import handle_message
    from kefu_core.lambda_runtime import api_gateway_handler

    lambda_handler = api_gateway_handler(handle_message)
