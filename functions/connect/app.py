"""$connect route: check the token (before any store is opened), record the connection."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows import handle_connect, refuse_unauthenticated
    from kefu_core.lambda_runtime import api_gateway_handler

    lambda_handler = api_gateway_handler(handle_connect, precheck=refuse_unauthenticated)
