"""Authorisation and tenant isolation of the admin API, route by route.

The routes are read from the app (``tests.support.routes``): a new route without an entry in
``EXAMPLES`` fails ``test_every_route_has_an_example``, so it cannot be added without being
tried here.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.product.prompt_versions import PromptWorkbench, Tuning
from kefu_core.product.tenants.settings import RetentionSettings
from kefu_core.product.tenants.tenants import ROOT_TENANT
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET, core_settings, make_deps
from tests.support.routes import api_routes
from tests.support.staff import make_staff, token_for

PUBLIC = {("GET", "/healthz"), ("POST", "/v1/visitor-token"), ("POST", "/v1/agent/login")}
SUPER_ONLY = {"/v1/tenants", "/v1/tenants/{tenant_id}/personal-data/export",
              "/v1/tenants/{tenant_id}/personal-data/erase"}
ANY_STAFF = {"/v1/agent/refresh"}  # every signed-in role, the super-admin included
# Revokes the caller's own tokens: tried in tests/security/test_revocation.py instead.
SELF_REVOKING = {("POST", "/v1/agent/sign-out")}

@dataclass(frozen=True)
class Multipart:
    """A multipart form body: field name -> (file name, bytes, content type)."""

    files: dict[str, tuple[str, bytes, str]]


# (method, path) -> JSON body (None for no body) or a Multipart form. Path parameters are
# filled from the victim.
EXAMPLES: dict[tuple[str, str], Any] = {
    ("GET", "/v1/tenants"): None,
    ("POST", "/v1/tenants"): {"id": "intruder", "name": "Intruder",
                              "admin_email": "x@intruder.cn", "admin_password": "p" * 12},
    ("GET", "/v1/me"): None,
    ("POST", "/v1/agent/refresh"): None,
    ("POST", "/v1/admin/agents/{agent_id}/sign-out"): None,
    ("GET", "/v1/conversations"): None,
    ("GET", "/v1/conversations/export"): None,
    ("GET", "/v1/conversations/{conversation_id}"): None,
    ("GET", "/v1/offline-messages"): None,
    ("GET", "/v1/canned-replies"): None,
    ("GET", "/v1/admin/agents"): None,
    ("POST", "/v1/admin/agents"): {"email": "new@x.cn", "name": "New", "password": "p" * 12},
    ("PATCH", "/v1/admin/agents/{agent_id}"): {"name": "Hijacked", "active": False},
    ("GET", "/v1/admin/widget-keys"): None,
    ("POST", "/v1/admin/widget-keys"): {"label": "x"},
    ("PATCH", "/v1/admin/widget-keys/{key}"): {"allowed_origins": ["https://intruder.example"]},
    ("DELETE", "/v1/admin/widget-keys/{key}"): None,
    ("POST", "/v1/admin/identity-secret"): None,
    ("GET", "/v1/admin/settings"): None,
    ("PUT", "/v1/admin/settings"): {"greeting_en": "Hijacked"},
    ("GET", "/v1/admin/prompts"): None,
    ("PUT", "/v1/admin/prompts/{name}"): {"text": "Hijacked prompt"},
    ("DELETE", "/v1/admin/prompts/{name}"): None,
    ("GET", "/v1/admin/engines"): None,
    ("PUT", "/v1/admin/engines"): {"chain": [{"name": "local", "kind": "offline"}]},
    ("PUT", "/v1/admin/engines/secrets/{name}"): {"secret": "sk-intruder"},
    ("DELETE", "/v1/admin/engines/secrets/{name}"): None,
    ("POST", "/v1/admin/engines/{name}/test"): {"question": "MARKER?"},
    ("GET", "/v1/admin/knowledge"): None,
    ("POST", "/v1/admin/knowledge"): {"name": "intruder.md", "content": "# x\nintruder text"},
    ("DELETE", "/v1/admin/knowledge/{name}"): None,
    ("POST", "/v1/admin/knowledge/files"): Multipart(
        {"file": ("intruder.md", b"# x\nintruder text", "text/markdown")}),
    ("GET", "/v1/admin/knowledge/documents"): None,
    ("GET", "/v1/admin/knowledge/documents/{name}/chunks"): None,
    ("POST", "/v1/admin/knowledge/search"): {"question": "MARKER-A-DOC Returns"},
    ("GET", "/v1/admin/workbench"): None,
    ("PUT", "/v1/admin/workbench/draft"): {"system_prompt": "Hijacked prompt"},
    ("DELETE", "/v1/admin/workbench/draft"): None,
    ("POST", "/v1/admin/workbench/publish"): {"note": "hijack"},
    ("POST", "/v1/admin/workbench/versions/{version}/rollback"): None,
    ("POST", "/v1/admin/workbench/compare"): {"question": "MARKER?"},
    ("POST", "/v1/admin/workbench/replay"): {"sample": 5, "draft": {"system_prompt": "x"}},
    ("GET", "/v1/admin/curated-answers"): None,
    ("POST", "/v1/admin/curated-answers"): {"question": "MARKER?", "answer": "Hijacked"},
    ("PUT", "/v1/admin/curated-answers/{answer_id}"): {"answer": "Hijacked"},
    ("DELETE", "/v1/admin/curated-answers/{answer_id}"): None,
    ("GET", "/v1/admin/curated-answers/{answer_id}/versions"): None,
    ("POST", "/v1/admin/curated-answers/match"): {"question": "MARKER-A-CURATED question"},
    ("GET", "/v1/admin/missing-knowledge"): None,
    ("POST", "/v1/admin/missing-knowledge/answer"): {"question": "MARKER?", "answer": "Hijacked",
                                                     "target": "curated"},
    ("GET", "/v1/admin/learned-answers"): None,
    ("PUT", "/v1/admin/learned-answers/{learned_id}"): {"answer": "Hijacked"},
    ("POST", "/v1/admin/learned-answers/{learned_id}/approve"): {"target": "curated"},
    ("POST", "/v1/admin/learned-answers/{learned_id}/reject"): None,
    ("GET", "/v1/admin/reports"): None,
    ("GET", "/v1/admin/reports/export"): None,
    ("GET", "/v1/admin/csat"): None,
    ("GET", "/v1/admin/audit"): None,
    ("GET", "/v1/admin/audit/export"): None,
    # Another tenant's admin names the victim's visitor: it acts on its own tenant, finds nobody.
    ("POST", "/v1/admin/personal-data/export"): {"visitor_id": "v-victim"},
    ("POST", "/v1/admin/personal-data/erase"): {"visitor_id": "v-victim", "confirm": "v-victim"},
    ("GET", "/v1/admin/retention"): None,
    ("PUT", "/v1/admin/retention"): {"transcripts_days": 1, "facts_days": 1,
                                     "offline_messages_days": 1},
    ("POST", "/v1/tenants/{tenant_id}/personal-data/export"): {"visitor_id": "v-victim"},
    ("POST", "/v1/tenants/{tenant_id}/personal-data/erase"): {"visitor_id": "v-nobody",
                                                              "confirm": "v-nobody"},
}


@dataclass
class World:
    app: FastAPI
    deps: Deps
    victim: dict[str, str]  # tenant A's resource ids and markers
    tokens: dict[str, str]


def _token(tenant: str, subject: str, role: str) -> str:
    return issue_token(secrets=[SECRET], tenant_id=tenant, subject=subject,
                       role=role, ttl_s=600)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def world(make_database, redis_url) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:admin:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix,
                             widget_keys=["victim-key:victim"])
    deps, _, _ = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    app = create_admin_app(settings, deps_provider=provide)
    for tenant in ("victim", "intruder-co"):
        await deps.tenants.ensure(tenant_id=tenant, name=tenant)
    agent = await deps.agents.create(tenant_id="victim", email="marker-agent@victim.cn",
                                     name="VictimAgent", password="p" * 12)
    await PromptWorkbench(deps.pool, deps.tenant_settings).publish(
        "victim", Tuning(system_prompt="PROMPT-A-MARKER"), by="setup", note="NOTE-A-MARKER")
    await deps.engines.put_secret(tenant_id="victim", name="openai", secret="sk-VICTIM-SECRET")
    conversation = await deps.conversations.open_for_visitor(tenant_id="victim",
                                                             visitor_id="v-victim")
    await deps.conversations.append(tenant_id="victim", conversation_id=conversation.id,
                                    role="visitor", text="MARKER-A-CONVERSATION",
                                    client_msg_id="m1")
    memory = await deps.load_memory()
    assert memory is not None
    await memory.knowledge.ingest_document(tenant_id="victim", name="victim-doc.md",
                                                content="# Returns\nMARKER-A-DOC",
                                                content_type=".md")
    curated = await deps.curated.create(tenant_id="victim", question="MARKER-A-CURATED question",
                                        answer="MARKER-A-CURATED-ANSWER", by="setup")
    await deps.conversations.append(tenant_id="victim", conversation_id=conversation.id,
                                    role="agent", author=agent.id, text="MARKER-A-LEARNED",
                                    client_msg_id="m2")
    learned = await deps.learned.propose(
        tenant_id="victim", conversation_id=conversation.id, agent_id=agent.id,
        question="MARKER-A-CONVERSATION", answer="MARKER-A-LEARNED", method="extractive")
    assert learned is not None
    victim = {"conversation_id": conversation.id, "agent_id": agent.id, "key": "victim-key",
              "name": "system", "doc": "victim-doc.md", "secret": "openai",
              "tenant_id": "victim", "version": "1", "answer_id": str(curated.id),
              "learned_id": str(learned.id)}
    tokens = {
        "visitor": _token("victim", "v-victim", "visitor"),
        "agent": token_for(agent),
        "admin": token_for(await make_staff(deps.pool, tenant_id="victim", role="admin")),
        "intruder": token_for(await make_staff(deps.pool, tenant_id="intruder-co", role="admin")),
        "super": token_for(await make_staff(deps.pool, tenant_id=ROOT_TENANT, role="admin")),
    }
    yield World(app=app, deps=deps, victim=victim, tokens=tokens)
    await deps.aclose()


def _path(path: str, victim: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "name" and "/knowledge/" in path:
            return victim["doc"]
        if name == "name" and "/secrets/" in path:
            return victim["secret"]
        return victim[name]

    return re.sub(r"\{(\w+)\}", fill, path)


async def _call(world: World, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = EXAMPLES.get((method, path))
    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        if isinstance(body, Multipart):
            return await client.request(method, _path(path, world.victim), headers=headers,
                                        files=body.files)
        return await client.request(method, _path(path, world.victim), headers=headers,
                                    json=body)


def test_every_route_has_an_example(world: World) -> None:
    missing = [r for r in api_routes(world.app) if r not in EXAMPLES and r not in PUBLIC
               and r not in SELF_REVOKING and not r[1].startswith(("/docs", "/openapi", "/redoc"))]
    assert missing == [], f"add these routes to EXAMPLES: {missing}"


def _protected(world: World) -> list[tuple[str, str]]:
    return [r for r in api_routes(world.app) if r in EXAMPLES and r not in SELF_REVOKING]


async def test_no_token_and_forged_tokens_are_refused(world: World) -> None:
    forged = issue_token(secrets=["f" * 40], tenant_id="victim", subject="x", role="admin",
                         ttl_s=60)
    for method, path in _protected(world):
        for token in (None, forged, "garbage"):
            response = await _call(world, method, path, token)
            assert response.status_code == 401, (method, path, token)


async def test_visitor_tokens_are_refused_everywhere(world: World) -> None:
    for method, path in _protected(world):
        response = await _call(world, method, path, world.tokens["visitor"])
        assert response.status_code == 403, (method, path)


async def test_agents_cannot_use_admin_or_super_routes(world: World) -> None:
    for method, path in _protected(world):
        response = await _call(world, method, path, world.tokens["agent"])
        if path.startswith("/v1/admin") or path in SUPER_ONLY:
            assert response.status_code == 403, (method, path)
        elif path in ANY_STAFF:
            assert response.status_code == 200, (method, path, response.text)
        else:
            assert response.status_code in (200, 404), (method, path, response.text)


async def test_only_the_super_admin_manages_tenants(world: World) -> None:
    for method, path in _protected(world):
        as_super = await _call(world, method, path, world.tokens["super"])
        as_admin = await _call(world, method, path, world.tokens["intruder"])
        if path in SUPER_ONLY:
            assert as_admin.status_code == 403, (method, path)
            assert as_super.status_code in (200, 201), (method, path, as_super.text)
        elif path in ANY_STAFF:
            assert as_super.status_code == 200, (method, path, as_super.text)
        else:
            assert as_super.status_code == 403, (method, path)


async def test_another_tenants_admin_sees_and_changes_nothing(world: World) -> None:
    markers = ["MARKER-A-CONVERSATION", "marker-agent@victim.cn", "PROMPT-A-MARKER",
               "NOTE-A-MARKER",
               "MARKER-A-DOC", "victim-doc.md", "v-victim", world.victim["conversation_id"],
               world.victim["agent_id"], "victim-key", "sk-VICTIM-SECRET",
               "MARKER-A-CURATED-ANSWER", "MARKER-A-LEARNED"]
    for method, path in _protected(world):
        if path in SUPER_ONLY:
            continue
        response = await _call(world, method, path, world.tokens["intruder"])
        # THEN a route naming the victim's resource by id does not find it (names of prompts
        # and secrets are per tenant: the intruder only ever touches its own)...
        named = ("{conversation_id}", "{agent_id}", "{key}", "{version}/rollback",
                 "{answer_id}", "{answer_id}/versions", "{learned_id}",
                 "{learned_id}/approve", "{learned_id}/reject")
        if path.endswith(named) or (
                ("/knowledge/" in path and "{name}" in path) or "{agent_id}" in path):
            assert response.status_code == 404, (method, path, response.text)
        else:
            assert response.status_code < 500, (method, path, response.text)
        # ...and no answer carries the victim's data (beyond ids the intruder itself named:
        # in this request, or, in its own audit log, in its earlier ones)
        sent = json.dumps(list(EXAMPLES.values()) if path.startswith("/v1/admin/audit")
                          else EXAMPLES.get((method, path)), default=repr)
        for marker in markers:
            if marker not in sent:
                assert marker not in response.text, (method, path, marker)
    # AND the victim's data is unchanged
    deps = world.deps
    agent = await deps.agents.get(tenant_id="victim", agent_id=world.victim["agent_id"])
    assert agent is not None and agent.name == "VictimAgent" and agent.active
    assert await deps.widget_keys.tenant_of("victim-key") == "victim"
    assert (await deps.tenant_settings.prompts("victim"))["system"] == "PROMPT-A-MARKER"
    workbench = PromptWorkbench(deps.pool, deps.tenant_settings)
    assert [v.version for v in await workbench.versions("victim")] == [1]
    assert await workbench.draft("victim") is None
    assert [s["name"] for s in await deps.engines.secret_names("victim")] == ["openai"]
    assert (await deps.tenant_settings.get("victim")).greeting_en != "Hijacked"
    assert (await deps.tenant_settings.get("victim")).retention == RetentionSettings()
    assert await deps.conversations.get(
        tenant_id="victim", conversation_id=world.victim["conversation_id"]) is not None
    memory = await deps.load_memory()
    assert memory is not None
    assert await memory.knowledge.document_names("victim") == ["victim-doc.md"]
    (curated,) = await world.deps.curated.active("victim")
    assert curated.answer == "MARKER-A-CURATED-ANSWER" and curated.version == 1
    (learned,) = await world.deps.learned.list(tenant_id="victim", status="pending", limit=5)
    assert (learned.answer, learned.edited) == ("MARKER-A-LEARNED", False)


async def test_the_tenants_own_admin_reaches_its_data_and_secrets_stay_write_only(
    world: World,
) -> None:
    transcript = await _call(world, "GET", "/v1/conversations/{conversation_id}",
                             world.tokens["admin"])
    assert transcript.status_code == 200 and "MARKER-A-CONVERSATION" in transcript.text
    engines = await _call(world, "GET", "/v1/admin/engines", world.tokens["admin"])
    assert engines.status_code == 200 and "openai" in engines.text
    assert "sk-VICTIM-SECRET" not in engines.text
    exported = await _call(world, "GET", "/v1/conversations/export", world.tokens["admin"])
    assert "MARKER-A-CONVERSATION" in exported.text
    audit = await _call(world, "GET", "/v1/admin/audit", world.tokens["admin"])
    assert audit.status_code == 200
    assert "conversations.exported" in audit.text


async def test_openapi_documents_every_route(world: World) -> None:
    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        schema = (await client.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert set(EXAMPLES) | PUBLIC <= documented


async def test_every_route_is_documented_with_a_summary_and_a_description(
    world: World,
) -> None:
    schema = world.app.openapi()
    undocumented = [(m, p) for p, ops in schema["paths"].items() for m, op in ops.items()
                    if not op.get("summary") or not op.get("description")]
    assert undocumented == []


async def test_a_malformed_conversation_id_is_not_found_like_an_unknown_one(
    world: World,
) -> None:
    # GIVEN the tenant's own admin
    token = world.tokens["admin"]
    # WHEN a transcript is asked for by an id that is no UUID, and by an unknown UUID
    malformed = await _call(world, "GET", "/v1/conversations/not-a-uuid", token)
    unknown = await _call(world, "GET", f"/v1/conversations/{uuid.uuid4()}", token)
    # THEN both answer 404 alike, and without a token the malformed id is still a 401
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "not found"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "not found"})
    anonymous = await _call(world, "GET", "/v1/conversations/not-a-uuid", None)
    assert anonymous.status_code == 401
    # AND a malformed query parameter on the same router is still a 422
    bad_limit = await _call(world, "GET", "/v1/conversations?limit=0", token)
    assert bad_limit.status_code == 422


async def test_openapi_declares_the_bearer_scheme_on_every_protected_route(
    world: World,
) -> None:
    schema = world.app.openapi()
    # THEN the document declares the bearer scheme (Swagger UI's Authorize)...
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"]}
    operations = {(m.upper(), p): op for p, ops in schema["paths"].items()
                  for m, op in ops.items()}
    # ...every route that needs a token says so, and the public ones do not
    for route in set(EXAMPLES) | SELF_REVOKING:
        assert operations[route].get("security") == [{"bearer": []}], route
    for route in PUBLIC:
        assert "security" not in operations[route], route
