"""localstack/setup_resources.py against a real AWS-compatible endpoint: moto's server.

GIVEN a moto server on a free local port
WHEN the setup script runs (as a command, twice)
THEN both secrets exist with the expected versions, and the second run changed nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "localstack" / "setup_resources.py"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture()
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def run_setup(endpoint: str, *extra: str) -> dict[str, Any]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(ROOT / ".kefu"),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **CREDENTIALS,
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--endpoint-url", endpoint, "--region", REGION,
         "--format", "json", *extra],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def secrets_client(endpoint: str) -> Any:
    return boto3.client(
        "secretsmanager", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def test_setup_creates_both_secrets_and_is_idempotent(moto_endpoint: str) -> None:
    # WHEN the setup runs twice
    first = run_setup(moto_endpoint)
    second = run_setup(moto_endpoint)

    # THEN the second run reports the very same secrets and versions
    assert second["llm_keys"] == first["llm_keys"]
    assert second["token"] == first["token"]
    assert second["env"] == first["env"]
    assert first["env"]["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == moto_endpoint

    client = secrets_client(moto_endpoint)

    # AND the LLM key secret has an AWSCURRENT and a distinct AWSPENDING version
    llm_arn = first["llm_keys"]["arn"]
    assert first["env"]["LLM_KEYS_SECRET_ID"] == llm_arn
    current = client.get_secret_value(SecretId=llm_arn, VersionStage="AWSCURRENT")
    pending = client.get_secret_value(SecretId=llm_arn, VersionStage="AWSPENDING")
    assert current["VersionId"] == first["llm_keys"]["current_version"]
    assert pending["VersionId"] == first["llm_keys"]["pending_version"]
    assert current["VersionId"] != pending["VersionId"]
    assert json.loads(current["SecretString"]) == {"openai": ["sk-local-current-placeholder"]}
    assert json.loads(pending["SecretString"]) == {"openai": ["sk-local-pending-placeholder"]}

    # AND running twice did not pile up versions
    stages = client.describe_secret(SecretId=llm_arn)["VersionIdsToStages"]
    assert sorted(stage for labels in stages.values() for stage in labels) == [
        "AWSCURRENT", "AWSPENDING",
    ]

    # AND the token secret holds one signing key of 64 hex characters, kept across runs
    token_arn = first["token"]["arn"]
    assert first["env"]["TOKEN_SECRET_ID"] == token_arn
    token = json.loads(client.get_secret_value(SecretId=token_arn)["SecretString"])
    assert list(token) == ["secrets"]
    assert len(token["secrets"]) == 1
    assert len(token["secrets"][0]) == 64
    int(token["secrets"][0], 16)
    assert len(client.describe_secret(SecretId=token_arn)["VersionIdsToStages"]) == 1

    # AND the data key secret holds one key of 64 hex characters, kept across runs
    assert second["data_key"] == first["data_key"]
    data_arn = first["data_key"]["arn"]
    assert first["env"]["DATA_ENCRYPTION_KEY_ID"] == data_arn
    data = json.loads(client.get_secret_value(SecretId=data_arn)["SecretString"])
    assert list(data) == ["keys"] and len(data["keys"]) == 1 and len(data["keys"][0]) == 64
    assert len(client.describe_secret(SecretId=data_arn)["VersionIdsToStages"]) == 1


def test_rotation_moves_only_the_pending_stage(moto_endpoint: str) -> None:
    # GIVEN secrets set up with the default placeholder keys
    first = run_setup(moto_endpoint)

    # WHEN a new pending key document is supplied
    rotated = run_setup(moto_endpoint, "--llm-pending", '{"openai": ["sk-next"]}')

    # THEN AWSCURRENT is untouched and AWSPENDING holds the new document
    client = secrets_client(moto_endpoint)
    arn = first["llm_keys"]["arn"]
    assert rotated["llm_keys"]["current_version"] == first["llm_keys"]["current_version"]
    assert rotated["llm_keys"]["pending_version"] != first["llm_keys"]["pending_version"]
    pending = client.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")
    assert json.loads(pending["SecretString"]) == {"openai": ["sk-next"]}
    current = client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    assert current["VersionId"] == first["llm_keys"]["current_version"]

    # AND going back to the previous pending document moves the label back, no new version
    back = run_setup(moto_endpoint)
    assert back["llm_keys"]["pending_version"] == first["llm_keys"]["pending_version"]
