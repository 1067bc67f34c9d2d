"""Signed visitor and agent tokens (JWT, HS256), tenant-scoped and expiring.

The first configured secret signs; every configured secret verifies, so a new secret can be
added, promoted and the old one removed without logging anybody out (see docs/configuration.md).
Which secrets those are is decided by :mod:`kefu_core.security.keyring` alone; callers never pass
settings' secrets here directly.
The ``kid`` header names the signing secret by a short digest, never the secret itself.
"""

from __future__ import annotations

import hashlib
import time

import jwt
from pydantic import BaseModel, Field

from kefu_core.infra.errors import Unauthorized
from kefu_core.security.roles import TokenRole

__all__ = ["Identity", "issue_token", "verify_token"]

ISSUER = "kefu"


class Identity(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=128)
    role: TokenRole
    name: str | None = None
    # Visitor tokens name the widget key that obtained them (claim ``wk``): $connect checks
    # that key's allowed origins (kefu_core.product.widget_origins).
    widget_key: str | None = Field(default=None, max_length=128)
    expires_at: int
    # Staff tokens carry the agent's token version (claim ``ver``): bumping it in the database
    # revokes every token issued before (see kefu_core.product.agent_auth).
    version: int | None = None


def _kid(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def issue_token(
    *,
    secrets: list[str],
    tenant_id: str,
    subject: str,
    role: TokenRole,
    ttl_s: int,
    name: str | None = None,
    now: float | None = None,
    widget_key: str | None = None,
    version: int | None = None,
) -> str:
    if not secrets:
        raise ValueError("no signing secret")
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "tid": tenant_id,
        "sub": subject,
        "role": role,
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if name:
        claims["name"] = name
    if widget_key:
        claims["wk"] = widget_key
    if version is not None:
        claims["ver"] = version
    return jwt.encode(claims, secrets[0], algorithm="HS256", headers={"kid": _kid(secrets[0])})


def verify_token(token: str | None, *, secrets: list[str]) -> Identity:
    """Return the identity a token carries, or raise :class:`Unauthorized`."""
    if not token:
        raise Unauthorized("missing token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized("malformed token") from exc
    kid = header.get("kid")
    candidates = [s for s in secrets if _kid(s) == kid] or secrets
    for secret in candidates:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token") from exc
        try:
            return Identity(
                tenant_id=claims.get("tid", ""),
                subject=claims["sub"],
                role=claims.get("role", ""),
                name=claims.get("name"),
                widget_key=claims.get("wk"),
                expires_at=int(claims["exp"]),
                version=claims.get("ver"),
            )
        except ValueError as exc:
            raise Unauthorized("invalid token claims") from exc
    raise Unauthorized("bad token signature")
