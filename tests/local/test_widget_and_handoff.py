"""The widget and the agent console against the deployed shape: tokens from the admin
function, chat through the WebSocket API, replies from the stream function, a human takeover."""

from __future__ import annotations

import uuid

import pytest

from kefu_core.product.tenants.tenants import ROOT_TENANT
from tests.local.conftest import SUPER_EMAIL, SUPER_PASSWORD
from tests.local.helpers import Client, admin_client, bearer, connect, login
from tests.support.local_stack import LocalStackProcess

# The first test also waits for `sam build` (when stale) and the stack's cold start.
pytestmark = pytest.mark.timeout(300)


async def test_the_widget_gets_a_token_connects_and_gets_a_streamed_reply(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN the widget of the demo tenant asking the admin function for a visitor token
    async with admin_client(local_stack) as http:
        minted = await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})
    assert minted.status_code == 200, minted.text
    visitor = minted.json()
    assert visitor["tenant_id"] == "demo"
    # WHEN it connects with that token and sends a message
    async with connect(local_stack, visitor["token"]) as ws:
        client = Client(ws)
        await client.send({"action": "sync", "last_seq": 0})
        history = await client.until("history")
        await client.send({"action": "message", "client_msg_id": "w-1", "text": "How do I return?"})
        ack = await client.until("ack")
        final = await client.until("final")
    # THEN the message is stored and acknowledged, and the reply streams in and completes
    assert history["messages"] == [] and ack["client_msg_id"] == "w-1"
    assert history["conversation_id"] is None  # the first message starts the conversation
    assert ack["conversation_id"] == final["conversation_id"]
    deltas = client.of_type("delta")
    assert deltas and "".join(d["text"] for d in deltas) == final["text"]
    assert final["status"] == "complete" and final["reply_to"] == ack["seq"]


async def test_an_agent_signs_in_and_takes_over_a_conversation(
    local_stack: LocalStackProcess,
) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:6]}"
    async with admin_client(local_stack) as http:
        # GIVEN a tenant created by the super-admin, with its admin and an agent
        root = await login(http, ROOT_TENANT, SUPER_EMAIL, SUPER_PASSWORD)
        created = await http.post("/v1/tenants", headers=bearer(root["token"]), json={
            "id": tenant, "name": "Acme", "admin_email": f"admin@{tenant}.test",
            "admin_password": "acme-admin-password"})
        assert created.status_code == 201, created.text
        widget_key = created.json()["widget_key"]["key"]
        admin = await login(http, tenant, f"admin@{tenant}.test", "acme-admin-password")
        made = await http.post("/v1/admin/agents", headers=bearer(admin["token"]), json={
            "email": f"alice@{tenant}.test", "name": "Alice", "password": "alice-password-1"})
        assert made.status_code == 201, made.text
        alice = await login(http, tenant, f"alice@{tenant}.test", "alice-password-1")
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": widget_key})).json()
    # AND a visitor of that tenant chatting with the assistant
    async with connect(local_stack, visitor["token"]) as v_ws, \
            connect(local_stack, alice["token"]) as a_ws:
        guest, agent = Client(v_ws), Client(a_ws)
        await agent.send({"action": "presence", "status": "online"})
        await agent.until("queue")
        await guest.send({"action": "message", "client_msg_id": "v-1", "text": "我的订单还没到"})
        conversation_id = (await guest.until("ack"))["conversation_id"]
        await guest.until("final")
        # WHEN the agent takes the conversation over and replies
        await agent.send({"action": "take", "conversation_id": conversation_id})
        opened = await agent.until("conversation")
        joined = await guest.until("state", state="agent_joined")
        await agent.send({"action": "reply", "conversation_id": conversation_id,
                          "client_msg_id": "a-1", "text": "您好，我是 Alice，我来查一下"})
        agent_ack = await agent.until("ack")
        message = await guest.until("message", role="agent")
        # AND the visitor writes again
        await guest.send({"action": "message", "client_msg_id": "v-2", "text": "谢谢"})
        await guest.until("ack")
        forwarded = await agent.until("message", role="visitor")
        # AND the agent asks for a draft (AgentFunction: the engines and the memory layer)
        await agent.send({"action": "suggest", "conversation_id": conversation_id})
        suggestion = await agent.until("suggestion")
    # THEN the agent saw the transcript, the visitor was told and got the agent's reply
    assert [m["role"] for m in opened["messages"]][:2] == ["visitor", "assistant"]
    assert joined["agent_name"] == "Alice"
    assert message["text"] == "您好，我是 Alice，我来查一下" and message["seq"] == agent_ack["seq"]
    # AND the visitor's next message went to the agent, not to the assistant
    assert forwarded["text"] == "谢谢"
    assert len(guest.of_type("final")) == 1
    # AND with nothing in the tenant's knowledge base to answer "谢谢" from, the offline engine
    # offers no draft (never its "don't know" line), to the agent only
    assert suggestion["status"] == "none" and suggestion["text"] == "", suggestion
    assert suggestion["engine"] == "offline"
    assert not guest.of_type("suggestion")
