"""The whole chain with a model configured: gateway -> memory (knowledge, CRM, long-term) ->
adapter (PII redaction, fallback) -> an OpenAI-compatible provider over real HTTP/SSE -> back.

The provider is the fake server (the one thing faked); the CRM is the sample CRM speaking the
documented HTTP contract, in its own uvicorn thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import websockets

from kefu_core.security.tokens import issue_token
from kefu_memory.sample_crm import create_app as create_crm_app
from tests.support.core import ROOT, SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway, free_port, gateway_for_test


@pytest.fixture(scope="module")
def crm_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_crm_app(token="crm-token"), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=5, tokens_per_s=0) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(make_database, redis_url, crm_url, fake) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    engines = [{"name": "primary", "provider": "fakeai", "base_url": fake.base_url,
                "model": "fake-chat", "api_keys": ["sk-primary"]}]
    mp = pytest.MonkeyPatch()
    mp.setenv("ENGINES", json.dumps(engines))  # read by the adapter when the router is built
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="chain",
                          knowledge_dir=str(ROOT / "knowledge" / "demo"),
                          knowledge_tenant="shop", crm_url=crm_url,
                          crm_token="crm-token",
                          # what reaches the model is checked: a generous recall deadline, so
                          # a busy machine cannot drop the CRM or the knowledge search
                          recall_deadline_ms=5000,
                          outbound_allowed_hosts=["127.0.0.1"]) as running:  # the CRM is local
        yield running
    mp.undo()


async def converse(gw: RunningGateway, subject: str, text: str) -> list[dict[str, Any]]:
    token = issue_token(secrets=[SECRET], tenant_id="shop", subject=subject, role="visitor",
                        ttl_s=600)
    frames: list[dict[str, Any]] = []
    async with websockets.connect(f"{gw.ws}?token={token}") as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1", "text": text}))
        async with asyncio.timeout(15):
            while not frames or frames[-1]["type"] != "final":
                frames.append(json.loads(await ws.recv()))
    return frames


async def test_signed_in_customer_gets_crm_and_knowledge_and_pii_never_leaves(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.reset()
    # GIVEN a signed-in customer (CRM id c-1001) who writes their phone number
    question = "我的订单SO20241120001到哪了？手机13912345678，另外怎么退货？"
    # WHEN they ask on the widget
    frames = await converse(gateway, "cust:c-1001", question)
    final = frames[-1]
    # THEN the model received the CRM record, the knowledge passage and no phone number
    (request,) = fake.requests
    sent = json.dumps(request["messages"], ensure_ascii=False)
    assert "SO20241120001" in sent and "SF1234567890" in sent      # CRM order + tracking
    assert "7天内可无理由退货" in sent                                 # knowledge base
    assert "13912345678" not in sent and "13800138000" not in sent  # PII stayed home
    # AND the streamed answer (the fake echoes the question) has the real number back
    assert final["status"] == "complete" and final["engine"] == "primary"
    assert "13912345678" in final["text"]
    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert deltas == final["text"]


async def test_anonymous_visitor_gets_no_crm_lookup(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.reset()
    await converse(gateway, f"v-{uuid.uuid4().hex}", "运费怎么算？")
    (request,) = fake.requests
    sent = json.dumps(request["messages"], ensure_ascii=False)
    assert "满99元包邮" in sent
    assert "c-1001" not in sent and "张伟" not in sent


async def test_provider_failure_falls_back_to_the_offline_engine(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    # GIVEN the provider answers 500 to the next requests
    fake.reset()
    fake.push(*[{"mode": "error", "status": 500}] * 3)
    # WHEN a visitor asks
    frames = await converse(gateway, f"v-{uuid.uuid4().hex}", "电池保修多久？")
    final = frames[-1]
    # THEN the offline engine answered from the knowledge base, and the visitor is told so
    assert final["status"] == "complete"
    assert final["fallback_used"] is True and final["engine"] != "primary"
    assert "六个月" in final["text"]


async def test_the_models_handoff_tool_call_queues_the_conversation_for_a_human(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    # GIVEN the model answers by calling the request_human_agent tool, with no text
    fake.reset()
    fake.push({"tool": "request_human_agent", "reply": ""})
    token = issue_token(secrets=[SECRET], tenant_id="shop", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws:
        # WHEN the visitor writes
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-h",
                                  "text": "你们这服务太差了，我要投诉"}))
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while not any(f["type"] == "state" for f in frames):
                frames.append(json.loads(await ws.recv()))
    # THEN the tool was offered to the model, the visitor is told what happens, and the
    # conversation left the bot (a structured signal, never parsed from text)
    (request,) = fake.requests
    assert request["body"]["tools"][0]["function"]["name"] == "request_human_agent"
    final = next(f for f in frames if f["type"] == "final")
    assert final["status"] == "complete" and "人工客服" in final["text"]
    state = next(f for f in frames if f["type"] == "state")
    assert state["state"] in ("queued", "agent_joined")
