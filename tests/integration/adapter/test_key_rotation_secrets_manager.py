"""Key rotation from AWS Secrets Manager (moto's server, a real boto3 client), no restart."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kefu_llm import build_router
from tests.support.fake_openai import FakeOpenAI, free_port

from .conftest import collect, request, settings

SECRET_ID = f"kefu/llm-keys-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def secrets_client() -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield client
    server.stop()


def _engine_settings(fake: FakeOpenAI, **kw: Any) -> Any:
    from kefu_llm import EngineConfig

    primary = EngineConfig(name="primary", provider="openai", base_url=fake.base_url, model="fake")
    return settings(primary, llm_keys_secret_id=SECRET_ID, **kw)


async def test_rotation_through_awspending_drops_no_request(
    fake: FakeOpenAI, secrets_client: Any
) -> None:
    # GIVEN a secret whose current version holds key A, accepted by the provider
    secrets_client.create_secret(Name=SECRET_ID, SecretString=json.dumps({"openai": ["sk-A"]}))
    fake.set_valid_keys({"sk-A"})
    router = build_router(
        settings=_engine_settings(fake, llm_keys_refresh_s=3600, offline_last_resort=False),
        redis=None,
        secrets_client=secrets_client,
    )
    _, final = await collect(router.stream(request("before")))
    assert final.status == "complete" and fake.requests[-1]["key"] == "sk-A"

    # WHEN rotation starts: key B is staged as AWSPENDING, then the provider revokes key A
    secrets_client.put_secret_value(
        SecretId=SECRET_ID,
        SecretString=json.dumps({"openai": ["sk-B"]}),
        VersionStages=["AWSPENDING"],
    )
    await router.keyring.refresh()  # what the next background refresh does
    fake.set_valid_keys({"sk-B"})

    # THEN every request is still answered: A fails with 401 once, is retired, B is used
    for i in range(3):
        _, final = await collect(router.stream(request(f"during {i}")))
        assert final.status == "complete" and final.engine == "primary"
    keys = [r["key"] for r in fake.requests]
    assert keys.count("sk-A") == 2  # one success before, one 401 after the revocation
    assert keys[-3:] == ["sk-B", "sk-B", "sk-B"]

    # AND when rotation finishes (B becomes AWSCURRENT) B is the current key, no restart
    versions = secrets_client.list_secret_version_ids(SecretId=SECRET_ID)["Versions"]
    pending = next(v["VersionId"] for v in versions if "AWSPENDING" in v["VersionStages"])
    current = next(v["VersionId"] for v in versions if "AWSCURRENT" in v["VersionStages"])
    secrets_client.update_secret_version_stage(
        SecretId=SECRET_ID,
        VersionStage="AWSCURRENT",
        MoveToVersionId=pending,
        RemoveFromVersionId=current,
    )
    secrets_client.update_secret_version_stage(
        SecretId=SECRET_ID,
        VersionStage="AWSPENDING",
        RemoveFromVersionId=pending,
    )
    await router.keyring.refresh()
    candidates = await router.keyring.candidates("openai")
    assert [(k.value, k.stage) for k in candidates] == [("sk-B", "current")]
    await router.aclose()
    secrets_client.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)


async def test_secret_read_is_cached_between_refreshes(
    fake: FakeOpenAI, secrets_client: Any
) -> None:
    secrets_client.create_secret(Name=SECRET_ID, SecretString="sk-plain")
    router = build_router(
        settings=_engine_settings(fake, llm_keys_refresh_s=3600),
        redis=None,
        secrets_client=secrets_client,
    )
    for i in range(3):
        _, final = await collect(router.stream(request(f"q{i}")))
        assert final.engine == "primary"
    # a plain-string secret is the "default" group's key
    assert {r["key"] for r in fake.requests} == {"sk-plain"}
    # change the secret: within the refresh interval the cached keys are used
    secrets_client.put_secret_value(SecretId=SECRET_ID, SecretString="sk-new")
    await collect(router.stream(request("again")))
    assert fake.requests[-1]["key"] == "sk-plain"
    await router.aclose()
    secrets_client.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)
