"""Staff passwords: ``hashlib.scrypt`` with a random salt, the parameters stored with the hash,
compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["DUMMY_HASH", "hash_password", "verify_password"]

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return (f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$"
            f"{b64(salt).decode()}${b64(digest).decode()}")


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _dummy_hash() -> str:
    """A well-formed hash with this module's parameters that no password matches: checking a
    password against it costs one scrypt, like a real account's. Random salt and digest, so
    no scrypt runs at import (every cold start paid one) nor on the first unknown address
    (which would then cost two)."""
    b64 = base64.b64encode
    return (f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$"
            f"{b64(secrets.token_bytes(16)).decode()}${b64(secrets.token_bytes(32)).decode()}")


# Checked against when the e-mail address is unknown, so signing in costs the same either way.
DUMMY_HASH = _dummy_hash()
