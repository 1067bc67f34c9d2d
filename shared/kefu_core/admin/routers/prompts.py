"""``/v1/admin/prompts``: the tenant's prompts (``system`` overrides the system prompt)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.admin.errors import NOT_FOUND, done
from kefu_core.admin.models import ResourceName
from kefu_core.security.http_limits import KIB

router = APIRouter(prefix="/v1/admin/prompts", tags=["settings"])

# A prompt is up to 20,000 characters: 120 KB as JSON even when every one is \u-escaped.
PROMPT_MAX_BODY_BYTES = 128 * KIB


class PromptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20_000)


@router.get("", response_model=dict[str, str], summary="List prompts")
async def list_prompts(who: AdminId, deps: DepsDep) -> dict[str, str]:
    """The tenant's prompts by name."""
    return await deps.tenant_settings.prompts(who.tenant_id)


@router.put("/{name}", status_code=204, summary="Set a prompt")
async def put_prompt(name: ResourceName, body: PromptBody, who: AdminId,
                     deps: DepsDep) -> Response:
    """Create or replace the tenant's prompt `name` (up to 20,000 characters)."""
    await deps.tenant_settings.put_prompt(tenant_id=who.tenant_id, name=name, text=body.text)
    await record(deps, who, "prompt.updated", "prompt", name, length=len(body.text))
    return Response(status_code=204)


@router.delete("/{name}", status_code=204, summary="Delete a prompt", responses=NOT_FOUND)
async def delete_prompt(name: ResourceName, who: AdminId, deps: DepsDep) -> Response:
    """Delete the tenant's prompt `name` (for `system`: the deployment's system prompt
    answers again)."""
    done(await deps.tenant_settings.delete_prompt(tenant_id=who.tenant_id, name=name))
    await record(deps, who, "prompt.deleted", "prompt", name)
    return Response(status_code=204)
