"""$connect route: check the token, record the connection."""
from kefu_core.flows import handle_connect
from kefu_core.lambda_runtime import api_gateway_handler

lambda_handler = api_gateway_handler(handle_connect)
