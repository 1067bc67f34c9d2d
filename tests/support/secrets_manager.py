"""Secrets Manager on moto's server: start it, create token secrets, rotate them as AWS does.

A rotation: :func:`stage_pending` puts a new version labelled ``AWSPENDING``; :func:`promote`
moves ``AWSCURRENT`` to it (the old version becomes ``AWSPREVIOUS``) and removes the
``AWSPENDING`` label, as a rotation function's ``finishSecret`` step does.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free local port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def secrets_client(endpoint: str) -> Any:
    return boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def token_secret_value(*secrets: str) -> str:
    return json.dumps({"secrets": list(secrets)})


@contextlib.contextmanager
def token_secret(client: Any, value: str) -> Iterator[str]:
    """A new secret holding ``value``; yields its ARN, deletes it afterwards."""
    created = client.create_secret(Name=f"kefu/token-{uuid.uuid4().hex[:8]}", SecretString=value)
    try:
        yield str(created["ARN"])
    finally:
        client.delete_secret(SecretId=created["ARN"], ForceDeleteWithoutRecovery=True)


def stage_pending(client: Any, secret_id: str, value: str) -> str:
    """Put a new version labelled AWSPENDING only; returns its version id."""
    put = client.put_secret_value(SecretId=secret_id, SecretString=value,
                                  VersionStages=["AWSPENDING"])
    return str(put["VersionId"])


def promote(client: Any, secret_id: str, version_id: str) -> None:
    """Make ``version_id`` AWSCURRENT (the old current becomes AWSPREVIOUS), drop AWSPENDING."""
    versions = client.list_secret_version_ids(SecretId=secret_id)["Versions"]
    current = next(v["VersionId"] for v in versions if "AWSCURRENT" in v["VersionStages"])
    client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSCURRENT",
                                       MoveToVersionId=version_id,
                                       RemoveFromVersionId=current)
    client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING",
                                       RemoveFromVersionId=version_id)
