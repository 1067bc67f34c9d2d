"""The tenant's system prompt (admin API ``/v1/admin/prompts/system``) reaches the model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from kefu_core.flows.stream import handle_stream
from kefu_core.product.tenants.settings import SettingsStore, TenantSettings
from kefu_llm import ChatRequest, Delta, Final
from tests.support.core import core_settings, make_deps


class CapturingRouter:
    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[Any]:
        self.requests.append(request)
        yield Delta("好的")
        yield Final(text="好的", status="complete", engine="capture")

    async def aclose(self) -> None:
        pass


async def test_the_tenants_system_prompt_replaces_the_global_one(
    pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    router = CapturingRouter()
    deps, _, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                      memory_enabled=False), router=router)
    try:
        tenant, other = f"p{uuid.uuid4().hex[:6]}", f"q{uuid.uuid4().hex[:6]}"
        await deps.tenants.ensure(tenant_id=tenant, name=tenant)
        # GIVEN a tenant whose admin set its own system prompt, and one who did not
        await deps.tenant_settings.put_prompt(tenant_id=tenant, name="system",
                                              text="你是 ACME 的客服小安。")
        for tenant_id in (tenant, other):
            conversation = await deps.conversations.open_for_visitor(tenant_id=tenant_id,
                                                                     visitor_id="v-1")
            stored = await deps.conversations.append(
                tenant_id=tenant_id, conversation_id=conversation.id, role="visitor",
                text="你好", client_msg_id="c-1")
            # WHEN each gets a reply
            await handle_stream({"tenant_id": tenant_id, "conversation_id": conversation.id,
                                 "reply_to_seq": stored.seq, "text": "你好"}, deps)
        # THEN the model saw the tenant's prompt, and the default for the other tenant
        first, second = router.requests
        assert first.messages[0].content.startswith("你是 ACME 的客服小安。")
        assert second.messages[0].content.startswith(deps.settings.system_prompt)
    finally:
        await deps.aclose()


async def test_the_reply_path_reads_settings_from_its_stores_cache(
    pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    deps, _, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                      memory_enabled=False))
    try:
        tenant = f"s{uuid.uuid4().hex[:6]}"
        await deps.tenants.ensure(tenant_id=tenant, name=tenant)
        # GIVEN the reply path has read the tenant's settings (defaults, no prompt)
        settings, prompt = await deps.tenant_settings.current(tenant)
        assert prompt is None and settings.context_window == 10
        # WHEN another process (another store) changes them
        elsewhere = SettingsStore(deps.pool)
        await elsewhere.put(tenant, TenantSettings(context_window=3))
        await elsewhere.put_prompt(tenant_id=tenant, name="system", text="Elsewhere")
        # THEN this process keeps answering from its cache for now
        settings, prompt = await deps.tenant_settings.current(tenant)
        assert prompt is None and settings.context_window == 10
        # WHEN the change is made through this process's store (the admin API here)
        await deps.tenant_settings.put_prompt(tenant_id=tenant, name="system", text="Here")
        # THEN the next reply sees everything stored at once
        settings, prompt = await deps.tenant_settings.current(tenant)
        assert prompt == "Here" and settings.context_window == 3
    finally:
        await deps.aclose()
