"""The self-hosted gateway: the API Gateway WebSocket contract on uvicorn.

It assigns connection ids, selects routes with ``$request.body.action``, builds the events API
Gateway sends, calls the very flows the Lambda handlers call, runs ``stream`` as a background
task, and serves the management API (``POST/GET/DELETE /@connections/{id}``) for boto3.
Several replicas share Redis; a post for another replica's connection travels over pub/sub.
"""

from kefu_core.gateway.app import create_gateway_app

__all__ = ["create_gateway_app"]
