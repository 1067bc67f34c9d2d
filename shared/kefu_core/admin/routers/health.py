"""``GET /healthz``."""

from __future__ import annotations

from fastapi import APIRouter

from kefu_core.admin.auth import signing_secrets
from kefu_core.admin.dependencies import SettingsDep

router = APIRouter(tags=["public"])


@router.get("/healthz", summary="Health check",
            responses={503: {"description": "no usable token secret"}})
async def healthz(settings: SettingsDep) -> dict[str, str]:
    """`ok` while the API can sign tokens; 503 while there is no usable token secret."""
    await signing_secrets(settings)
    return {"status": "ok"}
