"""Settings whose values live in Secrets Manager or SSM Parameter Store, read at cold start,
and the RDS Proxy host (``DATABASE_PROXY_HOST`` replaces ``DATABASE_URL``'s host).

On AWS the database password, the CRM token and the super-admin password are not plain
environment variables: the template passes where they are instead, and each process reads
them once, when its settings are first built, through Powertools' parameters utility:

- ``DATABASE_PASSWORD_SECRET_ID``: the password is put into ``DATABASE_URL`` (which then
  carries none). The value is the password, or JSON with ``password`` (and optionally
  ``username``, used when the URL names no user): the shape of the secret RDS manages for a
  database (``ManageMasterUserPassword``) or that its rotation templates write.
- ``CRM_TOKEN_SECRET_ID``: the CRM bearer token (plain, or JSON with ``token``).
- ``SUPER_ADMIN_PASSWORD_SECRET_ID``: the super-admin's password (plain, or JSON with
  ``password``).

An id is a Secrets Manager secret (name or ARN) or an SSM parameter (``arn:...:ssm:...`` or a
name starting with ``/``), a ``SecureString`` read with decryption. The plain variables
(``DATABASE_URL`` with its password, ``CRM_TOKEN``, ``SUPER_ADMIN_PASSWORD``) keep working
for self-hosting; a ``*_SECRET_ID`` wins over its plain variable. A secret that cannot be read
stops the process with :class:`SecretSettingError` (its message names the variable and the
secret, never a value): running with a missing password would only fail later, less clearly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from kefu_core.infra.settings import Settings

__all__ = ["SecretSettingError", "fetch_secret", "get_settings", "resolve_secret_settings",
           "secret_list", "with_host", "with_password"]

Fetch = Callable[[str], str]
_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:")


class SecretSettingError(RuntimeError):
    """A ``*_SECRET_ID`` setting whose secret cannot be read or used."""


def secret_list(raw: str | bytes, *, field: str, what: str) -> list[str]:
    """A secret holding several values (rotation): ``{field: [...]}``, a JSON list, or one
    plain string. ``ValueError`` (naming `what`, never a value) for any other shape."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    if isinstance(parsed, dict):
        parsed = parsed.get(field)
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise ValueError(f'{what} must be {{"{field}": ["...", ...]}} or one plain string')
    return parsed


def fetch_secret(secret_id: str) -> str:
    """The value of a Secrets Manager secret or an SSM (SecureString) parameter."""
    from aws_lambda_powertools.utilities import parameters

    if _SSM_ARN.match(secret_id) or secret_id.startswith("/"):
        value: Any = parameters.get_parameter(secret_id, decrypt=True, max_age=3600)
    else:
        value = parameters.get_secret(secret_id, max_age=3600)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value)


def _field(raw: str, key: str) -> tuple[str, dict[str, Any]]:
    """A plain value, or ``key`` of a JSON object (with the whole object)."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            value = parsed.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f'the JSON secret has no "{key}"')
            return value, parsed
    if not text:
        raise ValueError("the secret is empty")
    return raw, {}


def with_password(url: str, password: str, username: str | None = None) -> str:
    """``url`` with ``password`` (and ``username`` when it names none) in its user info."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("DATABASE_URL has no host")
    user = unquote(parts.username) if parts.username else username
    if not user:
        raise ValueError("DATABASE_URL names no user and the secret has no username")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_host(url: str, host: str) -> str:
    """``url`` with its host replaced (user info and port kept): an RDS Proxy endpoint."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{userinfo}{at}{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, with the values of ``*_SECRET_ID`` settings read (once)."""
    return resolve_secret_settings(Settings())


def resolve_secret_settings(settings: Settings, fetch: Fetch = fetch_secret) -> Settings:
    """``settings`` with the values of its ``*_SECRET_ID`` settings filled in."""
    updates: dict[str, Any] = {}
    jobs = (
        ("DATABASE_PASSWORD_SECRET_ID", settings.database_password_secret_id, "password"),
        ("CRM_TOKEN_SECRET_ID", settings.crm_token_source, "token"),
        ("SUPER_ADMIN_PASSWORD_SECRET_ID", settings.super_admin_password_secret_id,
         "password"),
    )
    for variable, secret_id, key in jobs:
        if not secret_id:
            continue
        try:
            value, whole = _field(fetch(secret_id), key)
            if variable == "DATABASE_PASSWORD_SECRET_ID":
                if not settings.database_url:
                    raise ValueError("DATABASE_URL is not set")
                username = whole.get("username")
                updates["database_url"] = with_password(
                    settings.database_url, value,
                    username if isinstance(username, str) else None)
            elif variable == "CRM_TOKEN_SECRET_ID":
                updates["crm_token"] = value
            else:
                updates["super_admin_password"] = value
        except Exception as exc:
            raise SecretSettingError(
                f"{variable}: cannot use secret {secret_id} ({type(exc).__name__}: "
                f"{_safe(str(exc))})") from None
    if settings.database_proxy_host and (updates.get("database_url") or settings.database_url):
        updates["database_url"] = with_host(updates.get("database_url")
                                            or settings.database_url or "",
                                            settings.database_proxy_host)
    return settings.model_copy(update=updates) if updates else settings


def _safe(message: str) -> str:
    """An error message cut short, with anything URL-like (which may hold a password)
    removed."""
    return re.sub(r"\S+://\S+", "<url>", message)[:200]
