"""Encryption at rest of the secrets Kefu keeps in PostgreSQL: tenants' engine secrets and
identity secrets (``tenants.py``).

A stored value is ``kefuenc:v1:<key id>:<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>``.
The associated data names the row the value belongs to (``identity:<tenant>``,
``engine:<tenant>:<name>``), so a value copied into another tenant's row does not decrypt.

Keys (each at least 32 characters of high-entropy text; the AES key is derived with
HKDF-SHA256, the key id from the derived key):

- ``DATA_ENCRYPTION_KEY_ID``: a Secrets Manager secret, ``{"keys": ["...", ...]}`` (or a JSON
  list, or one plain string), read with Powertools' parameters utility and read again every
  ``REFRESH_S`` seconds (a failed read keeps the last good keys);
- ``DATA_ENCRYPTION_KEY``: comma-separated keys.

The first key encrypts; every key decrypts (rotation: add the new key second, then first, then
run ``kefu reencrypt-secrets``, then remove the old one). Outside production, with no key, a
fixed development key is used (logged once). In production a missing, short or development key
is refused: :class:`DataKeyUnavailable` (the admin API answers 503) and nothing is stored in
plaintext. Values written before encryption existed (no prefix) are read as they are and
sealed again on the next read or write, or all at once by ``kefu reencrypt-secrets``; so are
values sealed with the development key when a development database moves to production.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kefu_core.infra.errors import StoreError, answers
from kefu_core.infra.secret_settings import secret_list
from kefu_core.infra.settings import Settings

if TYPE_CHECKING:  # cryptography is imported on first use (the message function never needs it)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEV_DATA_KEY",
    "MARKER",
    "MIN_KEY_CHARS",
    "DataKeyError",
    "DataKeyUnavailable",
    "DataKeys",
    "data_keys_for",
    "reset_data_keys",
]

logger = logging.getLogger("kefu.datakeys")

MARKER = "kefuenc:v1:"
MIN_KEY_CHARS = 32
DEV_DATA_KEY = "kefu-development-data-key-not-secret-change-me"
REFRESH_S = 300
RETRY_S = 5.0
_INFO = b"kefu data encryption key v1"


@answers(code="data_key_unavailable", detail="data encryption key unavailable")
class DataKeyUnavailable(StoreError):
    """No usable data encryption key: secrets can be neither stored nor read."""


@answers(code="data_key_error", detail="a stored secret cannot be decrypted")
class DataKeyError(StoreError):
    """A stored value that no configured key opens (unknown key id, or altered)."""


@dataclass(frozen=True)
class _Key:
    id: str
    aead: AESGCM


@lru_cache(maxsize=64)
def _derive(material: str) -> _Key:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        material.encode("utf-8"))
    key_id = hashlib.sha256(b"kefu data key id:" + raw).hexdigest()[:12]
    return _Key(id=key_id, aead=AESGCM(raw))


def _dev_key() -> _Key:
    return _derive(DEV_DATA_KEY)


def parse_key_value(raw: str | bytes) -> list[str]:
    """``{"keys": [...]}``, a JSON list, or one plain string; empty entries dropped."""
    parsed = secret_list(raw, field="keys", what="the data key secret")
    return [item.strip() for item in parsed if item.strip()]


@dataclass(frozen=True)
class _KeySet:
    primary: _Key
    by_id: dict[str, _Key]


class DataKeys:
    """The data encryption keys of one configuration. :meth:`seal` and :meth:`open` are
    coroutines: a due Secrets Manager read runs in a worker thread."""

    def __init__(self, *, keys: list[str], secret_id: str | None, production: bool,
                 region: str = "us-east-1", client: Any | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._production = production
        self._secret_id = secret_id
        self._region = region
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._provider: Any | None = None
        self._keys: _KeySet | None = None
        self._problem = "data encryption keys not read yet"
        self._complained_at = -1e9
        self._next_refresh = 0.0
        # Keys from the environment are checked and derived on first use, not here: deriving
        # imports cryptography, which the functions that never open a secret (connect,
        # disconnect, message) do not ship, and their dependencies build a DataKeys too.
        self._pending: list[str] | None = None if secret_id else list(keys)
        if not secret_id:
            self._next_refresh = float("inf")

    @classmethod
    def from_settings(cls, settings: Settings) -> DataKeys:
        return cls(keys=list(settings.data_encryption_key),
                   secret_id=settings.data_encryption_key_id,
                   production=settings.kefu_env == "production", region=settings.aws_region)

    # -- sealing ------------------------------------------------------------------------------
    async def seal(self, plaintext: str, *, context: str) -> str:
        key = (await self._keyset()).primary
        nonce = os.urandom(12)
        sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return f"{MARKER}{key.id}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    async def open(self, stored: str, *, context: str) -> str:
        """The plaintext of a stored value (a value without the prefix is returned as it is)."""
        keys = await self._keyset()
        if not stored.startswith(MARKER):
            return stored
        from cryptography.exceptions import InvalidTag

        key_id, _, body = stored[len(MARKER):].partition(":")
        key = keys.by_id.get(key_id)
        if key is None:
            raise DataKeyError(f"a stored secret is sealed with key {key_id}, which is not "
                               "configured (DATA_ENCRYPTION_KEY / DATA_ENCRYPTION_KEY_ID)")
        try:
            data = base64.urlsafe_b64decode(body.encode("ascii"))
            plain = key.aead.decrypt(data[:12], data[12:], context.encode("utf-8"))
        except (InvalidTag, ValueError) as exc:
            raise DataKeyError("a stored secret does not decrypt (altered, or moved from "
                               "another row)") from exc
        return plain.decode("utf-8")

    async def is_current(self, stored: str) -> bool:
        """Whether a stored value is sealed with the key that encrypts now."""
        return stored.startswith(f"{MARKER}{(await self._keyset()).primary.id}:")

    # -- keys ---------------------------------------------------------------------------------
    async def _keyset(self) -> _KeySet:
        if self._pending is not None:
            with self._lock:
                if self._pending is not None:
                    self._keys = self._checked(self._pending, source="DATA_ENCRYPTION_KEY")
                    self._pending = None
        if self._clock() >= self._next_refresh:
            if self._keys is None or not self._lock.locked():
                await asyncio.to_thread(self._refresh_if_due)
        if self._keys is None:
            now = self._clock()
            if now - self._complained_at >= 60.0:
                self._complained_at = now
                logger.error("refusing to store or read tenant secrets: %s", self._problem)
            raise DataKeyUnavailable(self._problem)
        return self._keys

    def _checked(self, materials: list[str], *, source: str) -> _KeySet | None:
        if not materials:
            if self._production:
                self._problem = ("no data encryption key: set DATA_ENCRYPTION_KEY_ID (Secrets "
                                 "Manager) or DATA_ENCRYPTION_KEY; required in production")
                return None
            logger.warning("no DATA_ENCRYPTION_KEY: tenant secrets are encrypted with the "
                           "development key (refused in production)")
            dev = _dev_key()
            return _KeySet(primary=dev, by_id={dev.id: dev})
        if any(m == DEV_DATA_KEY or len(m) < MIN_KEY_CHARS for m in materials):
            if self._production:
                self._problem = (f"{source} holds the development key or a key shorter than "
                                 f"{MIN_KEY_CHARS} characters, refused in production")
                return None
        derived = [_derive(m) for m in materials]
        by_id = {k.id: k for k in derived}
        # Values sealed with the development key (a development database switched to
        # production) stay readable, like plaintext rows, and are sealed again when touched.
        by_id.setdefault(_dev_key().id, _dev_key())
        return _KeySet(primary=derived[0], by_id=by_id)

    def _refresh_if_due(self) -> None:
        with self._lock:
            if self._clock() >= self._next_refresh:
                self._refresh()

    def _refresh(self) -> None:
        assert self._secret_id
        try:
            if self._provider is None:
                from aws_lambda_powertools.utilities.parameters import SecretsProvider

                if self._client is None:
                    import boto3

                    self._client = boto3.session.Session().client(
                        "secretsmanager", region_name=self._region)
                self._provider = SecretsProvider(boto3_client=self._client)
            value = self._provider.get(self._secret_id, max_age=REFRESH_S)
            if not isinstance(value, str | bytes):
                raise ValueError("the data key secret is not a string")
            materials = parse_key_value(value)
        except Exception as exc:
            logger.warning("reading data key secret %s failed (%s: %s)%s", self._secret_id,
                           type(exc).__name__, str(exc)[:200],
                           "; keeping the last good keys" if self._keys else "")
            if self._keys is None:
                self._problem = f"the data key secret could not be read ({type(exc).__name__})"
            self._next_refresh = self._clock() + (REFRESH_S if self._keys else RETRY_S)
            return
        checked = self._checked(materials, source="the data key secret")
        if checked is not None or self._keys is None:
            self._keys = checked
        else:
            logger.error("data key secret refused (%s); keeping the last good keys",
                         self._problem)
        self._next_refresh = self._clock() + REFRESH_S


_instances: dict[tuple[Any, ...], DataKeys] = {}
_instances_lock = threading.Lock()


def data_keys_for(settings: Settings) -> DataKeys:
    """The process's data keys for this configuration."""
    key = (settings.kefu_env, tuple(settings.data_encryption_key),
           settings.data_encryption_key_id, settings.aws_region)
    with _instances_lock:
        found = _instances.get(key)
        if found is None:
            found = _instances[key] = DataKeys.from_settings(settings)
        return found


def reset_data_keys() -> None:
    """Forget every instance (a new process, in effect)."""
    with _instances_lock:
        _instances.clear()
