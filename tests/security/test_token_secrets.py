"""Token secrets in the deployed configuration: every function signs and verifies with the
secret named by ``TOKEN_SECRET_ID``, never with the public development secret.

The functions run as AWS runs them: ``functions/*/app.py`` loaded as modules (the admin
function through Mangum), in a Lambda-like container (one worker thread, one event loop), with
the environment ``template.yaml`` gives them (``KEFU_ENV=production``, ``TOKEN_SECRET_ID``, no
``TOKEN_SECRETS``), Secrets Manager on moto's server, real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
import redis

from kefu_core import lambda_runtime
from kefu_core.cli import main as kefu
from kefu_core.infra.errors import Unauthorized
from kefu_core.infra.settings import DEV_TOKEN_SECRET, Settings
from kefu_core.security.keyring import KeyringUnavailable, TokenKeyring
from kefu_core.security.tokens import issue_token
from tests.support.core import load_event
from tests.support.secrets_manager import (
    CREDENTIALS,
    REGION,
    moto_server,
    promote,
    secrets_client,
    stage_pending,
    token_secret,
    token_secret_value,
)

ROOT = Path(__file__).resolve().parents[2]
REAL = "real-token-secret-" + "0123456789abcdef" * 2
NEW = "rotated-token-secret-" + "fedcba9876543210" * 2
TENANT = "sectenant"
WIDGET_KEY = "sec-widget-key"
SUPER_EMAIL, SUPER_PASSWORD = "root@sec.example", "root-password-0123456789"


# -- a Lambda-like container -------------------------------------------------------------------
def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kefu_fn_sec_{name}_{uuid.uuid4().hex[:6]}",
                                                  ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    function_name = "kefu-security-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kefu-security-test"
    aws_request_id = "req-sec"


class Container:
    """The connect and admin functions with their module-level state, on one worker thread
    (as in Lambda, one event loop lives as long as the container)."""

    def __init__(self) -> None:
        self.worker = ThreadPoolExecutor(max_workers=1)
        self.worker.submit(lambda_runtime.run, asyncio.sleep(0)).result(30)  # the loop first
        self.connect_fn = self.worker.submit(_load, "connect").result(60).lambda_handler
        self.admin_fn = self.worker.submit(_load, "admin").result(60).lambda_handler

    def connect(self, token: str | None) -> int:
        event = load_event("connect.json", REPLACE_WITH_TOKEN=token or "")
        if token is None:
            event["queryStringParameters"].pop("token")
            event["multiValueQueryStringParameters"].pop("token")
        event["requestContext"]["connectionId"] = f"sec-{uuid.uuid4().hex[:10]}="
        result = self.worker.submit(self.connect_fn, event, LambdaContext()).result(60)
        return int(result["statusCode"])

    def admin(self, method: str, path: str, *, token: str | None = None,
              body: dict[str, Any] | None = None) -> tuple[int, Any]:
        event = load_event("admin.json")
        data = json.dumps(body) if body is not None else ""
        headers = event["headers"]
        headers["content-length"] = str(len(data.encode()))
        if body is not None:
            headers["content-type"] = "application/json"
        if token:
            headers["authorization"] = f"Bearer {token}"
        event.update(rawPath=path, body=data, isBase64Encoded=False)
        event["requestContext"]["http"].update(method=method, path=path)
        result = self.worker.submit(self.admin_fn, event, LambdaContext()).result(60)
        text = result.get("body") or ""
        if result.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return int(result["statusCode"]), payload

    def login(self, tenant: str, email: str, password: str) -> str:
        status, body = self.admin("POST", "/v1/agent/login",
                                  body={"tenant": tenant, "email": email, "password": password})
        assert status == 200, body
        return str(body["token"])

    def visitor_token(self) -> str:
        status, body = self.admin("POST", "/v1/visitor-token", body={"widget_key": WIDGET_KEY})
        assert status == 200, body
        return str(body["token"])

    def close(self) -> None:
        self.worker.submit(lambda_runtime.reset).result(60)
        self.worker.shutdown()


@pytest.fixture(scope="module")
def sm_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def sm(sm_endpoint: str) -> Any:
    return secrets_client(sm_endpoint)


@pytest.fixture
def deploy(
    make_database: Callable[[], str], redis_url: str, sm_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Container]]:
    """Start a container with the environment template.yaml gives the functions (+ ``env``)."""
    prefix = f"kefu-test:sec:{uuid.uuid4().hex[:8]}:"
    containers: list[Container] = []

    def start(database_url: str | None = None, **env: str) -> Container:
        for key in ("TOKEN_SECRETS", "TOKEN_SECRET_ID", "GATEWAY_MANAGEMENT_KEYS",
                    "TOKEN_SECRET_REFRESH_S"):
            monkeypatch.delenv(key, raising=False)
        for key, value in {
            "KEFU_ENV": "production", "DATABASE_URL": database_url or make_database(),
            "REDIS_URL": redis_url, "REDIS_PREFIX": prefix, "DB_POOL_MAX": "2",
            "WIDGET_KEYS": f"{WIDGET_KEY}:{TENANT}",
            "SUPER_ADMIN_EMAIL": SUPER_EMAIL, "SUPER_ADMIN_PASSWORD": SUPER_PASSWORD,
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": sm_endpoint,
            "POWERTOOLS_SERVICE_NAME": "kefu", "MEMORY_ENABLED": "false", **env,
        }.items():
            monkeypatch.setenv(key, value)
        lambda_runtime.reset()
        container = Container()
        containers.append(container)
        return container

    yield start
    for container in containers:
        container.close()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def keyring_log() -> Iterator[list[str]]:
    """What the keyring logged at WARNING and above."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("kefu.keyring")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def forged(token: str, secret: str = DEV_TOKEN_SECRET) -> str:
    """The same claims as ``token``, signed with another secret (the public development one)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, secret, algorithm="HS256")


def signed_with(token: str, secret: str) -> bool:
    try:
        jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.InvalidSignatureError:
        return False
    return True


def visitor(secret: str) -> str:
    return issue_token(secrets=[secret], tenant_id=TENANT, subject=f"v-{uuid.uuid4().hex}",
                       role="visitor", ttl_s=600)


def eventually(check: Callable[[], bool], *, within_s: float = 30.0) -> bool:
    """Poll ``check`` until it holds (a refresh interval has to pass first)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def staff_tokens(fn: Container) -> tuple[str, str]:
    """A super-admin token and a tenant admin's token, both obtained by signing in."""
    root = fn.login("_root", SUPER_EMAIL, SUPER_PASSWORD)
    email = f"admin-{uuid.uuid4().hex[:6]}@sec.example"
    tenant = f"t{uuid.uuid4().hex[:8]}"
    status, body = fn.admin("POST", "/v1/tenants", token=root, body={
        "id": tenant, "name": "Security", "admin_email": email,
        "admin_password": "admin-password-0123"})
    assert status == 201 or status == 200, body
    return root, fn.login(tenant, email, "admin-password-0123")


ROUTES = [("/v1/admin/agents", "admin"), ("/v1/conversations", "admin"), ("/v1/tenants", "root")]


# -- the tests ---------------------------------------------------------------------------------
def test_admin_function_verifies_with_the_secrets_manager_secret(deploy, sm) -> None:  # type: ignore[no-untyped-def]
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN the admin function deployed with TOKEN_SECRET_ID and no TOKEN_SECRETS
        fn = deploy(TOKEN_SECRET_ID=arn)
        # WHEN the super-admin and a tenant admin sign in
        root, admin = staff_tokens(fn)
        # THEN their tokens are signed with the real secret, not the development one
        assert signed_with(admin, REAL) and not signed_with(admin, DEV_TOKEN_SECRET)
        tokens = {"admin": admin, "root": root}
        for path, who in ROUTES:
            # AND the same claims signed with the development secret are refused
            assert fn.admin("GET", path, token=forged(tokens[who]))[0] == 401, path
            # AND the real tokens are accepted
            assert fn.admin("GET", path, token=tokens[who])[0] == 200, path


def test_connect_function_verifies_with_the_secrets_manager_secret(deploy, sm) -> None:  # type: ignore[no-untyped-def]
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN the connect function deployed with TOKEN_SECRET_ID
        fn = deploy(TOKEN_SECRET_ID=arn)
        # WHEN visitors connect with tokens signed by each secret
        # THEN the development secret's is refused and the real one's accepted
        assert fn.connect(visitor(DEV_TOKEN_SECRET)) == 401
        assert fn.connect(visitor(REAL)) == 200


def test_visitor_token_from_the_admin_function_opens_a_connection(deploy, sm) -> None:  # type: ignore[no-untyped-def]
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN both functions deployed with TOKEN_SECRET_ID
        fn = deploy(TOKEN_SECRET_ID=arn)
        # WHEN the widget buys a visitor token from the admin function
        token = fn.visitor_token()
        # THEN $connect accepts it
        assert signed_with(token, REAL)
        assert fn.connect(token) == 200


def test_plain_string_secret_is_one_token_secret(deploy, sm) -> None:  # type: ignore[no-untyped-def]
    with token_secret(sm, REAL) as arn:
        fn = deploy(TOKEN_SECRET_ID=arn)
        token = fn.visitor_token()
        assert signed_with(token, REAL) and fn.connect(token) == 200
        assert fn.connect(visitor(DEV_TOKEN_SECRET)) == 401


def test_rotation_through_awspending_keeps_old_tokens_working(deploy, sm) -> None:  # type: ignore[no-untyped-def]
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN functions that read the secret again every second, and tokens issued before
        fn = deploy(TOKEN_SECRET_ID=arn, TOKEN_SECRET_REFRESH_S="1")
        _, admin = staff_tokens(fn)
        old_visitor = fn.visitor_token()
        assert fn.connect(visitor(NEW)) == 401

        # WHEN a new secret is staged as AWSPENDING
        version = stage_pending(sm, arn, token_secret_value(NEW))
        # THEN after the refresh interval tokens of the new secret verify, and so do the old
        assert eventually(lambda: fn.connect(visitor(NEW)) == 200)
        assert fn.connect(old_visitor) == 200
        # AND new tokens are still signed with the current secret
        assert signed_with(fn.visitor_token(), REAL)

        # WHEN the rotation finishes: the new version becomes AWSCURRENT
        promote(sm, arn, version)
        # THEN new tokens are signed with the new secret
        assert eventually(lambda: signed_with(fn.visitor_token(), NEW))
        # AND tokens of the old secret (now AWSPREVIOUS) still work, on every function
        assert fn.connect(old_visitor) == 200
        assert fn.admin("GET", "/v1/admin/agents", token=admin)[0] == 200
        # AND the development secret still opens nothing
        assert fn.connect(visitor(DEV_TOKEN_SECRET)) == 401
        assert fn.admin("GET", "/v1/admin/agents", token=forged(admin))[0] == 401


REFUSED = [
    pytest.param(None, {}, "no token secret configured", id="no-secret"),
    pytest.param(None, {"TOKEN_SECRETS": DEV_TOKEN_SECRET}, "development token secret",
                 id="dev-secret-in-env"),
    pytest.param(None, {"TOKEN_SECRETS": "short-but-not-the-dev-one"}, "shorter than 32",
                 id="short-secret-in-env"),
    pytest.param(DEV_TOKEN_SECRET, {}, "development token secret",
                 id="dev-secret-in-secrets-manager"),
    pytest.param("short-but-not-the-dev-one", {}, "shorter than 32",
                 id="short-secret-in-secrets-manager"),
]


@pytest.mark.parametrize(("stored", "env", "reason"), REFUSED)
def test_production_without_a_real_secret_refuses_to_serve(  # type: ignore[no-untyped-def]
    deploy, sm, keyring_log: list[str], stored: str | None, env: dict[str, str], reason: str,
) -> None:
    with token_secret(sm, token_secret_value(stored or REAL)) as arn:
        # GIVEN functions in production whose only secret would be a development or weak one
        fn = deploy(**env, **({"TOKEN_SECRET_ID": arn} if stored else {}))
        dev_admin = issue_token(secrets=[DEV_TOKEN_SECRET], tenant_id=TENANT, subject="a-x",
                                role="admin", ttl_s=600)
        # WHEN anyone calls the admin routes, buys a visitor token or connects
        # THEN they are told the service is unavailable: nothing is signed or verified
        assert fn.admin("GET", "/v1/admin/agents", token=dev_admin)[0] == 503
        assert fn.admin("POST", "/v1/visitor-token", body={"widget_key": WIDGET_KEY})[0] == 503
        assert fn.admin("GET", "/healthz")[0] == 503
        assert fn.connect(visitor(DEV_TOKEN_SECRET)) == 503
        # AND the log says why
        assert any(reason in line and "refusing" in line for line in keyring_log), keyring_log


def test_connect_checks_the_token_before_opening_the_database(deploy, sm) -> None:  # type: ignore[no-untyped-def]
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN the connect function whose database cannot be reached
        fn = deploy(TOKEN_SECRET_ID=arn,
                    database_url="postgresql://kefu:x@127.0.0.1:9/none?connect_timeout=1")
        # WHEN connections arrive with forged, malformed or no tokens
        codes = [fn.connect(visitor(DEV_TOKEN_SECRET)), fn.connect("not-a-jwt"), fn.connect(None)]
        # THEN each is refused with 401, and no store connection was opened
        assert codes == [401, 401, 401]
        assert lambda_runtime._deps is None


def test_a_failed_read_keeps_the_last_good_secrets(  # type: ignore[no-untyped-def]
    sm, keyring_log: list[str],
) -> None:
    arn = sm.create_secret(Name=f"kefu/token-{uuid.uuid4().hex[:8]}",
                           SecretString=token_secret_value(REAL))["ARN"]
    # GIVEN a keyring that has read the secret once
    now = [0.0]
    keyring = TokenKeyring(
        Settings(kefu_env="production", token_secret_id=arn, token_secret_refresh_s=1),
        client=sm, clock=lambda: now[0])
    assert keyring.keys().signing == REAL
    # WHEN the secret can no longer be read and the refresh interval has passed
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    time.sleep(1.1)  # Powertools' cache expires on the wall clock
    now[0] = 2.0
    # THEN the last good secrets are still used, and the failure is logged
    assert keyring.keys().signing == REAL
    assert any("keeping the last good secrets" in line for line in keyring_log)


def test_unreadable_secret_at_start_refuses(sm, keyring_log: list[str]) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a keyring whose secret does not exist
    keyring = TokenKeyring(Settings(kefu_env="production", token_secret_id="kefu/missing"),
                           client=sm)
    # WHEN tokens are to be verified THEN it refuses, saying why
    with pytest.raises(KeyringUnavailable, match="could not be read"):
        keyring.keys()
    assert any("could not be read" in line for line in keyring_log)


def test_kefu_token_signs_with_the_secrets_manager_secret(  # type: ignore[no-untyped-def]
    sm, sm_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN production settings naming the secret, and no TOKEN_SECRETS
        for key, value in {"KEFU_ENV": "production", "TOKEN_SECRET_ID": arn,
                           "AWS_ENDPOINT_URL_SECRETS_MANAGER": sm_endpoint,
                           "AWS_REGION": REGION, **CREDENTIALS}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("TOKEN_SECRETS", raising=False)
        # WHEN `kefu token` issues a token
        assert kefu(["token", "--tenant", TENANT, "--subject", "a-1", "--role", "agent"]) == 0
        # THEN it is signed with the real secret
        assert signed_with(capsys.readouterr().out.strip(), REAL)
        # AND without any secret it refuses rather than sign with the development one
        monkeypatch.delenv("TOKEN_SECRET_ID")
        assert kefu(["token", "--tenant", TENANT, "--subject", "a-1"]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "no token secret configured" in captured.err


async def test_kefu_run_gateway_verifies_with_the_secrets_manager_secret(  # type: ignore[no-untyped-def]
    sm, sm_endpoint: str, make_database: Callable[[], str], redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx
    import websockets
    from websockets.exceptions import InvalidStatus

    from tests.support.gateway import redis_prefix_removed, run_gateway

    for key, value in {"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm_endpoint, "AWS_REGION": REGION,
                       **CREDENTIALS}.items():
        monkeypatch.setenv(key, value)
    prefix = f"kefu-test:sec-gw:{uuid.uuid4().hex[:8]}:"
    with token_secret(sm, token_secret_value(REAL)) as arn, \
            redis_prefix_removed(redis_url, prefix):
        # GIVEN `kefu run`'s gateway in production with TOKEN_SECRET_ID and no TOKEN_SECRETS
        settings = Settings(kefu_env="production", token_secret_id=arn, token_secrets=[],
                            database_url=make_database(), redis_url=redis_url,
                            redis_prefix=prefix, memory_enabled=False,
                            widget_keys=[f"{WIDGET_KEY}:{TENANT}"],
                            gateway_trust_loopback=True)
        with run_gateway(settings) as gw:
            async with httpx.AsyncClient(base_url=gw.http) as http:
                # WHEN the widget buys a visitor token and connects with it
                minted = (await http.post("/v1/visitor-token",
                                          json={"widget_key": WIDGET_KEY})).json()["token"]
                # THEN it is signed with the real secret and accepted
                assert signed_with(minted, REAL)
                async with websockets.connect(f"{gw.ws}?token={minted}", open_timeout=10):
                    pass
                # AND tokens signed with the development secret are refused everywhere
                with pytest.raises(InvalidStatus) as refused:
                    async with websockets.connect(f"{gw.ws}?token={visitor(DEV_TOKEN_SECRET)}",
                                                  open_timeout=10):
                        pass
                assert refused.value.response.status_code == 401
                dev_admin = issue_token(secrets=[DEV_TOKEN_SECRET], tenant_id=TENANT,
                                        subject="a-x", role="admin", ttl_s=600)
                response = await http.get("/v1/admin/agents",
                                          headers={"authorization": f"Bearer {dev_admin}"})
                assert response.status_code == 401


def test_only_the_keyring_reads_the_token_secret_settings() -> None:
    # GIVEN the core package's source
    package = ROOT / "shared" / "kefu_core"
    allowed = {package / "security" / "keyring.py", package / "infra" / "settings.py"}
    # WHEN we look for code reading the token secrets from the settings
    readers = [path.relative_to(ROOT) for path in package.rglob("*.py")
               if path not in allowed and ("token_secrets" in path.read_text()
                                           or "token_secret_id" in path.read_text())]
    # THEN there is none: every signer and verifier goes through kefu_core.security.keyring
    assert readers == []


async def test_a_development_secret_staged_as_pending_is_never_used(  # type: ignore[no-untyped-def]
    sm, keyring_log: list[str],
) -> None:
    with token_secret(sm, token_secret_value(REAL)) as arn:
        # GIVEN a real secret WHEN a rotation stages the development secret as AWSPENDING
        stage_pending(sm, arn, token_secret_value(DEV_TOKEN_SECRET, NEW))
        keyring = TokenKeyring(Settings(kefu_env="production", token_secret_id=arn),
                               client=sm)
        # THEN tokens signed with it are refused, the strong staged secret verifies,
        # and the log says a staged secret was ignored
        with pytest.raises(Unauthorized):
            await keyring.verify(visitor(DEV_TOKEN_SECRET))
        assert (await keyring.verify(visitor(NEW))).tenant_id == TENANT
        assert (await keyring.verify(visitor(REAL))).tenant_id == TENANT
        assert any("ignored" in line for line in keyring_log)
