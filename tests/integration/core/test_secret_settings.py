"""The database password, the CRM token and the super-admin password from Secrets Manager or
SSM (moto's server), read at cold start in production; the plain variables still work."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import boto3
import pytest

from kefu_core.infra.secret_settings import SecretSettingError, get_settings
from tests.support.secrets_manager import REGION, moto_server, secrets_client


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> Iterator[None]:
    for name, value in {
        "KEFU_ENV": "production", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint, "AWS_ENDPOINT_URL_SSM": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("CRM_TOKEN", "SUPER_ADMIN_PASSWORD", "DATABASE_PROXY_HOST"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _secret(endpoint: str, value: str) -> str:
    created = secrets_client(endpoint).create_secret(Name=f"kefu/t-{uuid.uuid4().hex[:8]}",
                                                     SecretString=value)
    return str(created["ARN"])


@pytest.mark.usefixtures("production")
def test_secrets_fill_in_the_password_the_token_and_the_super_admin_password(
    monkeypatch: pytest.MonkeyPatch, endpoint: str,
) -> None:
    # GIVEN an RDS-managed style secret (JSON with username and password), a CRM token in a
    # JSON secret and the super-admin password in an SSM SecureString
    db = _secret(endpoint, json.dumps({"username": "kefu", "password": "p@ss/w:rd?"}))
    crm = _secret(endpoint, json.dumps({"token": "crm-token-1"}))
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"/kefu/{uuid.uuid4().hex[:8]}/super-admin"
    ssm.put_parameter(Name=name, Value="a-long-super-password", Type="SecureString")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.internal:5432/kefu?sslmode=require")
    monkeypatch.setenv("DATABASE_PASSWORD_SECRET_ID", db)
    monkeypatch.setenv("DATABASE_PROXY_HOST", "kefu.proxy-x.us-east-1.rds.amazonaws.com")
    monkeypatch.setenv("CRM_TOKEN_SECRET_ID", crm)
    monkeypatch.setenv("SUPER_ADMIN_PASSWORD_SECRET_ID", name)
    # WHEN the process builds its settings (cold start)
    settings = get_settings()
    # THEN the URL carries the user and the quoted password, on the proxy's host
    assert settings.database_url == (
        "postgresql://kefu:p%40ss%2Fw%3Ard%3F@kefu.proxy-x.us-east-1.rds.amazonaws.com:5432/"
        "kefu?sslmode=require")
    # AND the CRM token and the super-admin password come from their secrets
    assert settings.crm_token == "crm-token-1"
    assert settings.super_admin_password == "a-long-super-password"


@pytest.mark.usefixtures("production")
def test_plain_variables_still_work_for_self_hosting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://kefu:pw@localhost:5432/kefu")
    for name in ("DATABASE_PASSWORD_SECRET_ID", "CRM_TOKEN_SECRET_ID",
                 "SUPER_ADMIN_PASSWORD_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_TOKEN", "plain-token")
    settings = get_settings()
    assert settings.database_url == "postgresql://kefu:pw@localhost:5432/kefu"
    assert settings.crm_token == "plain-token"


@pytest.mark.usefixtures("production")
def test_a_missing_secret_stops_the_process_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a password secret id naming no secret
    monkeypatch.setenv("DATABASE_URL", "postgresql://kefu@db.internal:5432/kefu")
    monkeypatch.setenv("DATABASE_PASSWORD_SECRET_ID", "kefu/no-such-secret")
    # WHEN the settings are built THEN the error names the variable and the secret
    with pytest.raises(SecretSettingError, match="DATABASE_PASSWORD_SECRET_ID: cannot use "
                                                 "secret kefu/no-such-secret"):
        get_settings()
