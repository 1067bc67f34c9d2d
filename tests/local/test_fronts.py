"""The fronts of the local stack: the WebSocket API with its management API, the admin HTTP
API and the Lambda Invoke API, each in front of the built functions as on AWS."""

from __future__ import annotations

import json
import uuid

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.exceptions import InvalidStatus

from kefu_core.infra.settings import DEV_TOKEN_SECRET
from tests.local.helpers import Client, admin_client, connect, visitor_token_signed_with
from tests.support.local_stack import LocalStackProcess

# The first test also waits for `sam build` (when stale) and the stack's cold start.
pytestmark = pytest.mark.timeout(300)


async def test_admin_http_api_reaches_the_admin_function(local_stack: LocalStackProcess) -> None:
    # GIVEN the stack WHEN a client calls the admin HTTP API
    async with admin_client(local_stack) as http:
        health = await http.get("/healthz")
        missing = await http.get("/v1/no-such-route?x=1")
    # THEN the admin function answers through API Gateway's payload format 2.0
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert missing.status_code == 404


async def test_a_message_gets_ack_deltas_and_final_from_the_stream_function(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN a visitor holding a token signed with the deployment's secret (from Secrets Manager)
    token = visitor_token_signed_with(local_stack.signing_secrets())
    async with connect(local_stack, token) as ws:
        client = Client(ws)
        # WHEN they send a message frame
        await client.send({"action": "message", "client_msg_id": "c-1", "text": "你好，怎么退货？"})
        # THEN the message function acknowledges it, and the stream function (invoked
        # asynchronously through the Lambda API) streams the reply over the management API
        ack = await client.until("ack")
        final = await client.until("final")
    deltas = client.of_type("delta")
    assert ack["seq"] == 1 and ack["client_msg_id"] == "c-1"
    assert deltas and final["reply_to"] == 1 and final["status"] == "complete"
    assert "".join(d["text"] for d in deltas) == final["text"]


async def test_a_token_signed_with_the_development_secret_cannot_connect(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN a token forged with the public development secret
    forged = visitor_token_signed_with([DEV_TOKEN_SECRET])
    # WHEN it is used at $connect THEN the connect function refuses the handshake
    with pytest.raises(InvalidStatus) as refused:
        async with connect(local_stack, forged):
            pass
    assert refused.value.response.status_code == 401


def test_the_management_api_refuses_callers_without_the_functions_credentials(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN a boto3 client with credentials other than the functions' role
    client = boto3.client("apigatewaymanagementapi", endpoint_url=local_stack.management,
                          region_name="us-east-1", aws_access_key_id="AKIAOTHER",
                          aws_secret_access_key="other-secret",
                          config=Config(retries={"max_attempts": 1}))
    # WHEN it posts to a connection THEN it is forbidden
    with pytest.raises(ClientError) as denied:
        client.post_to_connection(ConnectionId="abc", Data=b"{}")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # AND an unsigned request is refused too
    response = httpx.post(f"{local_stack.management}/@connections/abc", content=b"{}")
    assert response.status_code == 403
    # AND a body over API Gateway's 128 KB is refused before it is read
    response = httpx.post(f"{local_stack.management}/@connections/abc",
                          content=b"x" * (200 * 1024))
    assert response.status_code == 413


def test_the_lambda_api_accepts_only_the_functions_credentials(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN a boto3 Lambda client with foreign credentials
    client = boto3.client("lambda", endpoint_url=local_stack.lambda_api, region_name="us-east-1",
                          aws_access_key_id="AKIAOTHER", aws_secret_access_key="other-secret",
                          config=Config(retries={"max_attempts": 1}))
    # WHEN it invokes the stream function THEN the signature is refused
    with pytest.raises(ClientError) as denied:
        client.invoke(FunctionName="kefu-local-StreamFunction", InvocationType="Event",
                      Payload=json.dumps({"conversation_id": str(uuid.uuid4())}).encode())
    assert denied.value.response["Error"]["Code"] == "InvalidSignatureException"
    # AND an oversized asynchronous payload is refused before it is read
    response = httpx.post(
        f"{local_stack.lambda_api}/2015-03-31/functions/kefu-local-StreamFunction/invocations",
        headers={"x-amz-invocation-type": "Event"}, content=b"x" * (300 * 1024))
    assert response.status_code == 413


async def test_the_admin_functions_api_docs_load_their_assets_from_the_function(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN the built admin function WHEN /docs and the scripts and styles it names are fetched
    async with admin_client(local_stack) as http:
        docs = await http.get("/docs")
        assets = [await http.get(path) for path in
                  ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
                   "/docs/assets/redoc.standalone.js")]
    # THEN the page and every asset come from the function itself (its fastapi-offline copy)
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert [a.status_code for a in assets] == [200, 200, 200]
    assert "SwaggerUIBundle" in assets[0].text
