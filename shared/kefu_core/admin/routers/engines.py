"""``/v1/admin/engines``: the tenant's own engine chain and its secrets (write-only, stored
encrypted; only names and update times are ever returned)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep, SettingsDep
from kefu_core.admin.errors import NOT_FOUND, done
from kefu_core.admin.models import ResourceName
from kefu_core.answers.tenant_engines import EngineEntry
from kefu_core.deps import Deps
from kefu_core.security.tokens import Identity
from kefu_llm.netguard import OutboundPolicy, UnsafeURL, check_url

router = APIRouter(prefix="/v1/admin/engines", tags=["engines"])


class EngineChain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: list[EngineEntry] = Field(max_length=10)


class EngineView(BaseModel):
    chain: list[EngineEntry]
    secrets: list[dict[str, Any]]
    # key_refs of the chain that name no stored secret: those engines are skipped (the chain
    # goes on without them) until the secret is stored.
    missing_secrets: list[str] = Field(default_factory=list)


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str = Field(min_length=1, max_length=4000)


async def _view(deps: Deps, who: Identity, chain: list[EngineEntry]) -> EngineView:
    secrets = await deps.engines.secret_names(who.tenant_id)
    stored = {str(s["name"]) for s in secrets}
    missing = sorted({e.key_ref for e in chain if e.key_ref and e.key_ref not in stored})
    return EngineView(chain=chain, secrets=secrets, missing_secrets=missing)


def _check_urls(body: EngineChain, policy: OutboundPolicy) -> None:
    """A tenant's engine URL: http(s) only, and not an address the policy refuses (the
    resolved address is checked again on every connection, see kefu_llm.netguard)."""
    for entry in body.chain:
        if entry.base_url is not None:
            try:
                check_url(entry.base_url, policy)
            except UnsafeURL as exc:
                raise HTTPException(status_code=422,
                                    detail=f"engine {entry.name}: base_url: {exc}") from exc


@router.get("", response_model=EngineView, summary="The engine chain")
async def get_engines(who: AdminId, deps: DepsDep) -> EngineView:
    """The tenant's chain, the names of its stored secrets, and the `key_ref`s that name no
    stored secret (`missing_secrets`: those engines are skipped)."""
    chain = [EngineEntry.model_validate(e)
             for e in await deps.engines.chain(who.tenant_id)]
    return await _view(deps, who, chain)


@router.put("", response_model=EngineView, summary="Replace the engine chain")
async def put_engines(body: EngineChain, who: AdminId, deps: DepsDep,
                      settings: SettingsDep) -> EngineView:
    """Up to 10 engines, tried in order, with the offline engine as the last resort; an
    empty chain goes back to the deployment's. A `base_url` must be http(s) and not an
    address the outbound policy refuses (422)."""
    _check_urls(body, settings.outbound_policy())
    await deps.engines.put_chain(tenant_id=who.tenant_id,
                                 chain=[e.model_dump() for e in body.chain])
    deps.engines_changed(who.tenant_id)
    await record(deps, who, "engines.updated", "engines", who.tenant_id,
                 chain=[e.name for e in body.chain])
    return await _view(deps, who, body.chain)


@router.put("/secrets/{name}", status_code=204, summary="Store an engine secret")
async def put_engine_secret(name: ResourceName, body: SecretBody, who: AdminId,
                            deps: DepsDep) -> Response:
    """Create or replace the secret `name` (an API key a chain entry names in `key_ref`);
    stored encrypted and never returned."""
    await deps.engines.put_secret(tenant_id=who.tenant_id, name=name,
                                  secret=body.secret)
    deps.engines_changed(who.tenant_id)
    await record(deps, who, "engine_secret.set", "engine_secret", name)
    return Response(status_code=204)


@router.delete("/secrets/{name}", status_code=204, summary="Delete an engine secret",
               responses=NOT_FOUND)
async def delete_engine_secret(name: ResourceName, who: AdminId, deps: DepsDep) -> Response:
    """Engines naming it are skipped until it is stored again."""
    done(await deps.engines.delete_secret(tenant_id=who.tenant_id, name=name))
    deps.engines_changed(who.tenant_id)
    await record(deps, who, "engine_secret.deleted", "engine_secret", name)
    return Response(status_code=204)
