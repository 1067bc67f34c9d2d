#!/usr/bin/env python3
"""Create the AWS-side resources Kefu's template expects, on any AWS-compatible endpoint.

What it sets up (idempotent: run it as often as you like):

- the LLM key secret (default name ``kefu/llm-keys``) with an ``AWSCURRENT`` version and an
  ``AWSPENDING`` version, the shape a key rotation is in while both keys are accepted;
- the token secret (default name ``kefu/token-secret``): ``{"secrets": ["<64 hex chars>"]}``,
  the HMAC key that signs visitor and agent tokens. A random key is generated the first time
  and kept on later runs;
- the data key secret (default name ``kefu/data-key``): ``{"keys": ["<64 hex chars>"]}``, the
  key that encrypts tenants' engine and identity secrets in PostgreSQL (``DataKeySecretArn``).
  Generated the first time and kept on later runs (a new key would make them unreadable).

It talks to LocalStack (``http://localhost:4566``), to moto's server (``moto_server`` or
``python -m moto.server``, default ``http://127.0.0.1:5000``) or to real AWS (omit
``--endpoint-url``; then it uses your normal credentials, so mind which account you are in).

    python localstack/setup_resources.py --endpoint-url http://127.0.0.1:5000
    python localstack/setup_resources.py --endpoint-url http://127.0.0.1:5000 --format env

Output: the secrets' ARNs and the environment variables (``TOKEN_SECRET_ID``,
``LLM_KEYS_SECRET_ID``, ``DATA_ENCRYPTION_KEY_ID``, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``) that
point Kefu at them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import ClientError

DEFAULT_LLM_SECRET = "kefu/llm-keys"
DEFAULT_TOKEN_SECRET = "kefu/token-secret"
DEFAULT_DATA_KEY_SECRET = "kefu/data-key"
# Placeholders, never real keys: an emulator needs no working provider key. With these keys the
# OpenAI-compatible engine fails over to the offline engine, which is what local runs expect.
DEFAULT_LLM_CURRENT = {"openai": ["sk-local-current-placeholder"]}
DEFAULT_LLM_PENDING = {"openai": ["sk-local-pending-placeholder"]}
# Deterministic version ids: the same content always maps to the same version.
_VERSION_NAMESPACE = uuid.UUID("6f3a3f0e-8a51-4d2f-9a57-0f4c3b1e2d10")


@dataclass(frozen=True)
class SecretInfo:
    name: str
    arn: str
    current_version: str
    pending_version: str | None


@dataclass(frozen=True)
class SetupResult:
    endpoint_url: str | None
    region: str
    llm_keys: SecretInfo
    token: SecretInfo
    data_key: SecretInfo

    def env(self) -> dict[str, str]:
        out = {
            "TOKEN_SECRET_ID": self.token.arn,
            "LLM_KEYS_SECRET_ID": self.llm_keys.arn,
            "DATA_ENCRYPTION_KEY_ID": self.data_key.arn,
            "AWS_REGION": self.region,
        }
        if self.endpoint_url:
            out["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = self.endpoint_url
        return out


def _version_id(secret_name: str, content: str) -> str:
    return str(uuid.uuid5(_VERSION_NAMESPACE, f"{secret_name}\0{content}"))


def _client(endpoint_url: str | None, region: str) -> Any:
    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        # Emulators accept any credentials; supply dummy ones when none are configured so a
        # bare machine works. Never done for real AWS (no endpoint_url).
        if botocore.session.Session().get_credentials() is None:
            kwargs["aws_access_key_id"] = "test"
            kwargs["aws_secret_access_key"] = "test"
    return boto3.client("secretsmanager", **kwargs)


def _describe(client: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.describe_secret(SecretId=name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def _stage_owner(description: dict[str, Any], stage: str) -> str | None:
    for version_id, stages in (description.get("VersionIdsToStages") or {}).items():
        if stage in stages:
            return str(version_id)
    return None


def _ensure_version(client: Any, name: str, content: str, stage: str) -> str:
    """Make ``stage`` label a version whose value is ``content``; return that version id."""
    version_id = _version_id(name, content)
    description = _describe(client, name) or {}
    owner = _stage_owner(description, stage)
    if owner == version_id:
        return version_id
    if owner is not None:
        value = client.get_secret_value(SecretId=name, VersionId=owner).get("SecretString")
        if value == content:  # written by someone else, same content: nothing to do
            return owner
    known = description.get("VersionIdsToStages") or {}
    if version_id not in known:
        # New content: write it with only the wanted stage (AWSCURRENT moves by itself).
        client.put_secret_value(
            SecretId=name, ClientRequestToken=version_id, SecretString=content,
            VersionStages=[stage],
        )
        description = _describe(client, name) or {}
        if _stage_owner(description, stage) == version_id:
            return version_id
        owner = _stage_owner(description, stage)
    # The content exists as an older version: move the label back onto it.
    move: dict[str, Any] = {
        "SecretId": name, "VersionStage": stage, "MoveToVersionId": version_id,
    }
    if owner:
        move["RemoveFromVersionId"] = owner
    client.update_secret_version_stage(**move)
    return version_id


def _ensure_secret(
    client: Any, *, name: str, description: str, current: str, pending: str | None
) -> SecretInfo:
    if _describe(client, name) is None:
        client.create_secret(
            Name=name, Description=description, SecretString=current,
            ClientRequestToken=_version_id(name, current),
        )
    current_version = _ensure_version(client, name, current, "AWSCURRENT")
    pending_version = None
    if pending is not None and pending != current:
        pending_version = _ensure_version(client, name, pending, "AWSPENDING")
    arn = str((_describe(client, name) or {})["ARN"])
    return SecretInfo(
        name=name, arn=arn, current_version=current_version, pending_version=pending_version
    )


def _existing_current(client: Any, name: str) -> str | None:
    if _describe(client, name) is None:
        return None
    try:
        value = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    except ClientError:
        return None
    string = value.get("SecretString")
    return str(string) if string else None


def setup(
    *,
    endpoint_url: str | None,
    region: str = "us-east-1",
    llm_secret_name: str = DEFAULT_LLM_SECRET,
    token_secret_name: str = DEFAULT_TOKEN_SECRET,
    data_key_secret_name: str = DEFAULT_DATA_KEY_SECRET,
    llm_current: dict[str, Any] | None = None,
    llm_pending: dict[str, Any] | None = None,
    token_value: str | None = None,
) -> SetupResult:
    """Create or update the secrets; safe to call repeatedly."""
    client = _client(endpoint_url, region)

    llm = _ensure_secret(
        client,
        name=llm_secret_name,
        description="Kefu LLM provider keys (AWSCURRENT in use, AWSPENDING being rotated in)",
        current=json.dumps(llm_current or DEFAULT_LLM_CURRENT, sort_keys=True),
        pending=json.dumps(llm_pending or DEFAULT_LLM_PENDING, sort_keys=True),
    )

    if token_value is not None:
        token_content = json.dumps({"secrets": [token_value]})
    else:
        # Keep an existing signing key: regenerating it would log everybody out.
        token_content = _existing_current(client, token_secret_name) or json.dumps(
            {"secrets": [secrets.token_hex(32)]}
        )
    token = _ensure_secret(
        client,
        name=token_secret_name,
        description="Kefu HMAC key(s) signing visitor and agent tokens; the first one signs",
        current=token_content,
        pending=None,
    )
    data_key = _ensure_secret(
        client,
        name=data_key_secret_name,
        description="Kefu data encryption key(s) sealing tenants' secrets; the first encrypts",
        # Keep an existing key: a new one would leave the stored secrets unreadable.
        current=_existing_current(client, data_key_secret_name)
        or json.dumps({"keys": [secrets.token_hex(32)]}),
        pending=None,
    )
    return SetupResult(endpoint_url=endpoint_url, region=region, llm_keys=llm, token=token,
                       data_key=data_key)


def _parse_json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create Kefu's secrets on LocalStack, moto's server or AWS (idempotent)."
    )
    parser.add_argument(
        "--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS-compatible endpoint, e.g. http://127.0.0.1:5000 (moto) or "
        "http://localhost:4566 (LocalStack). Omit for real AWS.",
    )
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    parser.add_argument("--llm-secret-name", default=DEFAULT_LLM_SECRET)
    parser.add_argument("--token-secret-name", default=DEFAULT_TOKEN_SECRET)
    parser.add_argument(
        "--llm-current", type=_parse_json_object, default=None,
        help='AWSCURRENT key document, e.g. \'{"openai": ["sk-..."]}\' (default: placeholders)',
    )
    parser.add_argument(
        "--llm-pending", type=_parse_json_object, default=None,
        help="AWSPENDING key document (default: placeholders)",
    )
    parser.add_argument(
        "--token-secret", default=None,
        help="signing key to store (at least 32 characters); default: keep or generate",
    )
    parser.add_argument("--format", choices=["text", "json", "env"], default="text")
    args = parser.parse_args(argv)

    if args.token_secret is not None and len(args.token_secret) < 32:
        parser.error("--token-secret must be at least 32 characters")

    result = setup(
        endpoint_url=args.endpoint_url,
        region=args.region,
        llm_secret_name=args.llm_secret_name,
        token_secret_name=args.token_secret_name,
        llm_current=args.llm_current,
        llm_pending=args.llm_pending,
        token_value=args.token_secret,
    )
    if args.format == "json":
        json.dump({**asdict(result), "env": result.env()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "env":
        for key, value in result.env().items():
            sys.stdout.write(f"{key}={value}\n")
    else:
        where = result.endpoint_url or "AWS"
        sys.stdout.write(f"Secrets ready on {where} ({result.region}):\n")
        sys.stdout.write(
            f"  {result.llm_keys.name}: {result.llm_keys.arn}\n"
            f"    AWSCURRENT {result.llm_keys.current_version}\n"
            f"    AWSPENDING {result.llm_keys.pending_version}\n"
            f"  {result.token.name}: {result.token.arn}\n"
            f"    AWSCURRENT {result.token.current_version}\n"
        )
        sys.stdout.write("Environment:\n")
        for key, value in result.env().items():
            sys.stdout.write(f"  {key}={value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
