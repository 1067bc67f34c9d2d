"""SigV4 verification for the gateway's management API, so only holders of a configured key
(boto3's ``apigatewaymanagementapi`` client with those credentials) can post to connections."""

from __future__ import annotations

import hmac
import re
import time
from calendar import timegm
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = ["verify_sigv4"]

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


def verify_sigv4(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, str],
    max_skew_s: int = 300,
    now: float | None = None,
) -> bool:
    """True when the request carries a valid SigV4 signature by one of ``keys`` (id -> secret).

    ``url`` must carry the raw (still percent-encoded) path the client signed.
    """
    match = _AUTH.fullmatch(headers.get("authorization", "").strip())
    if match is None:
        return False
    secret = keys.get(match["akid"])
    amz_date = headers.get("x-amz-date", "")
    if secret is None or not amz_date.startswith(match["date"]):
        return False
    try:
        signed_at = timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - signed_at) > max_skew_s:
        return False
    signed = match["signed"].split(";")
    if any(name not in headers for name in signed):
        return False
    request = AWSRequest(method=method, url=url, data=body,
                         headers={name: headers[name] for name in signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(match["akid"], secret), match["service"], match["region"])
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return hmac.compare_digest(expected, match["sig"])
