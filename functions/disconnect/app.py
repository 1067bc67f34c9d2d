"""$disconnect route: drop the connection record."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows import handle_disconnect
    from kefu_core.lambda_runtime import api_gateway_handler

    lambda_handler = api_gateway_handler(handle_disconnect)
