"""Token secrets: the one place every entry point gets its signing and verifying secrets from.

The five Lambda functions, ``kefu run`` (gateway and admin app) and ``kefu token`` all ask
:func:`keyring_for` for the keyring of their settings. Sources, in this order:

- ``TOKEN_SECRET_ID``: a Secrets Manager secret whose value is ``{"secrets": [...]}`` (or one
  plain string), read with Powertools' parameters utility and read again every
  ``TOKEN_SECRET_REFRESH_S``. The first secret of the ``AWSCURRENT`` version signs; the secrets
  of ``AWSCURRENT``, ``AWSPENDING`` (while a rotation is staged) and ``AWSPREVIOUS`` verify, so
  a rotation never logs anybody out. A failed read keeps the last good secrets.
- ``TOKEN_SECRETS``: comma-separated, the first signs, all verify.
- Outside production only, the development secret (``settings.py`` fills it in).

In production a key set that is empty, holds the development secret or a secret shorter than
32 characters is refused: :class:`KeyringUnavailable`, which callers answer with 503, after
one clear log line. Nothing is then signed or verified. A bad secret staged in ``AWSPENDING``
or left in ``AWSPREVIOUS`` is dropped from the verifying set (and logged), never used.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kefu_core.infra.secret_settings import secret_list
from kefu_core.infra.settings import DEV_TOKEN_SECRET, Settings
from kefu_core.security.roles import TokenRole
from kefu_core.security.tokens import Identity, issue_token, verify_token

__all__ = [
    "MIN_SECRET_CHARS",
    "KeySet",
    "KeyringUnavailable",
    "TokenKeyring",
    "keyring_for",
    "reset_keyrings",
]

logger = logging.getLogger("kefu.keyring")

MIN_SECRET_CHARS = 32
CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
STAGES = (CURRENT, PENDING, PREVIOUS)
# With no secrets yet, a failed read is retried after this long (not on every request).
RETRY_S = 5.0
COMPLAINT_INTERVAL_S = 60.0


class KeyringUnavailable(Exception):
    """No usable token secret: refuse to serve (503), never fall back to another secret."""


@dataclass(frozen=True)
class KeySet:
    signing: str
    verifying: tuple[str, ...]


def _weak(secret: str) -> bool:
    return secret == DEV_TOKEN_SECRET or len(secret) < MIN_SECRET_CHARS


def parse_secret_value(raw: str | bytes) -> list[str]:
    """``{"secrets": [...]}``, a JSON list, or one plain string; empty entries are dropped."""
    parsed = secret_list(raw, field="secrets", what="the secret")
    secrets = [item for item in parsed if item]
    if not secrets:
        raise ValueError("the secret holds no token secret")
    return secrets


def _not_found(exc: BaseException) -> bool:
    """Whether a Powertools read failed because the version stage does not exist."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return bool(response.get("Error", {}).get("Code") == "ResourceNotFoundException")
        seen = seen.__cause__ or seen.__context__
    return False


class TokenKeyring:
    """Signing and verifying secrets of one configuration, refreshed when they come from
    Secrets Manager. Thread-safe; :meth:`akeys` reads Secrets Manager in a worker thread."""

    def __init__(self, settings: Settings, *, client: Any | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._production = settings.kefu_env == "production"
        self._secret_id = settings.token_secret_id
        self._region = settings.aws_region
        self._refresh_s = settings.token_secret_refresh_s
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._refreshing = False  # a worker thread is reading Secrets Manager
        self._providers: dict[str, Any] = {}
        self._stage_values: dict[str, list[str]] = {}
        self._keys: KeySet | None = None
        self._problem = "token secrets not read yet"
        self._next_refresh = 0.0
        self._complained: tuple[str, float] | None = None
        if self._secret_id:
            if settings.token_secrets:
                logger.warning("TOKEN_SECRETS is ignored: TOKEN_SECRET_ID is set")
        else:
            self._set(self._checked(list(settings.token_secrets), [], source="TOKEN_SECRETS"))
            self._next_refresh = float("inf")

    # -- reading -------------------------------------------------------------------------------
    def keys(self) -> KeySet:
        """The current key set (read from Secrets Manager when due, in this thread)."""
        if self._clock() >= self._next_refresh:
            self._refresh_if_due()
        return self._usable()

    async def akeys(self) -> KeySet:
        """The current key set; a due read runs in a worker thread, and while one runs the
        last good key set is used."""
        if self._clock() >= self._next_refresh and (self._keys is None or not self._refreshing):
            self._refreshing = True
            try:
                await asyncio.to_thread(self._refresh_if_due)
            finally:
                self._refreshing = False
        return self._usable()

    async def verify(self, token: str | None) -> Identity:
        """The identity of a token (``Unauthorized``), or ``KeyringUnavailable``."""
        return verify_token(token, secrets=list((await self.akeys()).verifying))

    async def signing_secrets(self) -> list[str]:
        return [(await self.akeys()).signing]

    async def issue(self, *, tenant_id: str, subject: str, role: TokenRole, ttl_s: int,
                    name: str | None = None) -> str:
        return issue_token(secrets=await self.signing_secrets(), tenant_id=tenant_id,
                           subject=subject, role=role, ttl_s=ttl_s, name=name)

    # -- internals -----------------------------------------------------------------------------
    def _usable(self) -> KeySet:
        if self._keys is None:
            self._complain(self._problem)
            raise KeyringUnavailable(self._problem)
        return self._keys

    def _complain(self, problem: str) -> None:
        now = self._clock()
        if self._complained is None or self._complained[0] != problem \
                or now - self._complained[1] >= COMPLAINT_INTERVAL_S:
            self._complained = (problem, now)
            logger.error("refusing to sign or verify tokens: %s", problem)

    def _set(self, result: KeySet | str) -> None:
        if isinstance(result, KeySet):
            self._keys = result
        else:
            self._keys, self._problem = None, result
            self._complain(result)

    def _checked(self, signing_set: list[str], others: list[str], *, source: str) -> KeySet | str:
        """The key set, or why production refuses it."""
        if not signing_set:
            return ("no token secret configured: set TOKEN_SECRET_ID (Secrets Manager) or "
                    "TOKEN_SECRETS")
        if self._production:
            if DEV_TOKEN_SECRET in signing_set:
                return f"{source} holds the development token secret, refused in production"
            if any(_weak(secret) for secret in signing_set):
                return (f"{source} holds a secret shorter than {MIN_SECRET_CHARS} characters, "
                        "refused in production")
            dropped = [s for s in others if _weak(s)]
            if dropped:
                logger.error("%d staged or previous token secret(s) ignored: development "
                             "secret or shorter than %d characters", len(dropped),
                             MIN_SECRET_CHARS)
                others = [s for s in others if not _weak(s)]
        verifying = tuple(dict.fromkeys([*signing_set, *others]))
        return KeySet(signing=signing_set[0], verifying=verifying)

    def _provider(self, stage: str) -> Any:
        # One provider per stage: Powertools' cache key is the secret's name and ignores the
        # VersionStage SDK option, so one provider would answer every stage with one value.
        if stage not in self._providers:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            if self._client is None:
                import boto3

                self._client = boto3.session.Session().client("secretsmanager",
                                                               region_name=self._region)
            self._providers[stage] = SecretsProvider(boto3_client=self._client)
        return self._providers[stage]

    def _read(self, stage: str) -> list[str] | None:
        """A stage's secrets; None when no version carries the stage."""
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        assert self._secret_id
        try:
            raw = self._provider(stage).get(self._secret_id, max_age=self._refresh_s,
                                            VersionStage=stage)
        except GetParameterError as exc:
            if _not_found(exc) and stage != CURRENT:
                return None
            raise
        return parse_secret_value(raw)

    def _refresh_if_due(self) -> None:
        with self._lock:
            if self._clock() >= self._next_refresh:
                self._refresh()

    def _refresh(self) -> None:
        try:
            current = self._read(CURRENT) or []
        except Exception as exc:
            keeping = "keeping the last good secrets" if self._keys else "no secrets yet"
            logger.warning("reading token secret %s failed (%s: %s); %s", self._secret_id,
                           type(exc).__name__, str(exc)[:200], keeping)
            if self._keys is None:
                self._problem = f"the token secret could not be read ({type(exc).__name__})"
            self._next_refresh = self._clock() + (
                self._refresh_s if self._keys else min(RETRY_S, self._refresh_s))
            return
        for stage in (PENDING, PREVIOUS):
            try:
                self._stage_values[stage] = self._read(stage) or []
            except Exception as exc:  # a transient failure keeps what the stage held
                logger.warning("reading token secret stage %s failed (%s); keeping it as it was",
                               stage, type(exc).__name__)
        others = [*self._stage_values.get(PENDING, []), *self._stage_values.get(PREVIOUS, [])]
        self._set(self._checked(current, others, source="the token secret (AWSCURRENT)"))
        # Timed from the end of the read, so Powertools' cached entry (max_age from the same
        # moment) has expired when the next refresh asks for it.
        self._next_refresh = self._clock() + self._refresh_s


_keyrings: dict[tuple[Any, ...], TokenKeyring] = {}
_keyrings_lock = threading.Lock()


def keyring_for(settings: Settings) -> TokenKeyring:
    """The process's keyring for this configuration (one per distinct token configuration)."""
    key = (settings.kefu_env, settings.token_secret_id, tuple(settings.token_secrets),
           settings.aws_region, settings.token_secret_refresh_s)
    with _keyrings_lock:
        keyring = _keyrings.get(key)
        if keyring is None:
            keyring = _keyrings[key] = TokenKeyring(settings)
        return keyring


def reset_keyrings() -> None:
    """Forget every keyring (a new process, in effect)."""
    with _keyrings_lock:
        _keyrings.clear()
