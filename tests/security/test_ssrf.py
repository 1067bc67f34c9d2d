"""SSRF: tenant engine base URLs and the CRM URL cannot reach loopback, private, link-local or
cloud metadata addresses unless the operator allows them (OUTBOUND_ALLOW_PRIVATE,
OUTBOUND_ALLOWED_HOSTS); the scheme is checked when a URL is stored, the resolved address when
a connection is made (DNS rebinding), redirects included."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.infra.settings import Settings
from kefu_llm import (
    AdapterSettings,
    ConfigurationError,
    EngineCall,
    EngineConfig,
    EngineError,
    build_engine,
)
from kefu_llm import _guarded_transport as guarded
from kefu_llm.netguard import OutboundPolicy, UnsafeURL, check_url, guarded_transport
from tests.support.core import SECRET, make_deps
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import redis_prefix_removed
from tests.support.staff import make_staff, token_for

DEFAULT = OutboundPolicy()


# -- a real HTTP server on a loopback address ------------------------------------------------
@dataclass
class Server:
    host: str
    port: int
    hits: list[str] = field(default_factory=list)
    redirect_to: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass
class _Handle:
    server: Server
    http: ThreadingHTTPServer
    thread: threading.Thread


def _serve(host: str, redirect_to: str | None = None) -> _Handle:
    record = Server(host=host, port=0, redirect_to=redirect_to)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.hits.append(self.path)
            if record.redirect_to:
                self.send_response(302)
                self.send_header("Location", record.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server_class = ThreadingHTTPServer
    if ":" in host:
        class V6(ThreadingHTTPServer):
            address_family = socket.AF_INET6
        server_class = V6
    http = server_class((host, 0), Handler)
    record.port = http.server_address[1]
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    return _Handle(record, http, thread)


def _stop(handle: _Handle) -> None:
    handle.http.shutdown()
    handle.http.server_close()
    handle.thread.join(5)


@pytest.fixture
def local_server() -> Iterator[Server]:
    handle = _serve("127.0.0.1")
    yield handle.server
    _stop(handle)


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


async def _get(url: str, policy: OutboundPolicy, *, follow: bool = False) -> httpx.Response:
    async with httpx.AsyncClient(transport=guarded_transport(policy),
                                 follow_redirects=follow, timeout=5) as client:
        return await client.get(url)


async def _refused(url: str, policy: OutboundPolicy = DEFAULT, *, follow: bool = False) -> str:
    with pytest.raises(httpx.ConnectError) as caught:
        await _get(url, policy, follow=follow)
    assert isinstance(caught.value.__cause__, guarded.BlockedAddress)
    return str(caught.value)


# -- scheme and written addresses, when a URL is stored ---------------------------------------
@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/x",
    "dict://example.com:11211/", "javascript:alert(1)", "http:///nohost", "https://",
])
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, OutboundPolicy(allow_private=True))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:11434/v1", "http://localhost/v1", "http://api.localhost/v1",
    "http://LOCALHOST./v1",
    "http://[::1]/v1", "http://10.1.2.3/v1", "http://192.168.0.10/v1", "http://172.16.0.1/v1",
    "http://[fd12:3456::1]/v1", "http://100.64.0.1/v1", "http://0.0.0.0/v1", "http://[::]/v1",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/",
    "http://100.100.100.200/latest/meta-data/", "http://168.63.129.16/machine",
    "http://169.254.170.2/v2/credentials", "http://[fe80::1]/", "http://224.0.0.1/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/", "http://2130706433/", "http://0x7f.1/", "http://017700000001/",
    "http://127.1/", "http://240.0.0.1/",
])
def test_loopback_private_link_local_and_metadata_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, DEFAULT)


@pytest.mark.parametrize("url", [
    "https://api.openai.com/v1", "https://api.deepseek.com", "http://8.8.8.8:8000/v1",
    "https://[2606:4700:4700::1111]/v1", "https://llm.example.com/v1",
])
def test_public_urls_are_accepted(url: str) -> None:
    check_url(url, DEFAULT)


def test_allow_private_lifts_private_ranges_but_never_metadata_or_link_local() -> None:
    policy = OutboundPolicy(allow_private=True)
    for url in ("http://127.0.0.1:11434/v1", "http://localhost/v1", "http://10.0.0.5/",
                "http://[::1]/", "http://[fd12::1]/", "http://100.64.1.1/"):
        check_url(url, policy)
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/",
                "http://100.100.100.200/", "http://[fe80::1]/", "http://0.0.0.0/"):
        with pytest.raises(UnsafeURL):
            check_url(url, policy)


def test_allowed_hosts_and_networks_lift_exactly_what_they_name() -> None:
    policy = OutboundPolicy.of(allowed=["crm.internal", ".corp.example", "10.20.0.0/16",
                                        "169.254.169.254"])
    check_url("http://crm.internal/api", policy)
    check_url("http://a.b.corp.example/api", policy)
    check_url("http://10.20.3.4/", policy)
    check_url("http://169.254.169.254/", policy)
    for url in ("http://10.21.0.1/", "http://127.0.0.1/", "http://169.254.170.2/"):
        with pytest.raises(UnsafeURL):
            check_url(url, policy)


# -- use time: the resolved address of every connection ---------------------------------------
async def test_a_loopback_server_is_not_reached_by_default(local_server: Server) -> None:
    # GIVEN a real HTTP server on 127.0.0.1
    # WHEN a guarded client calls it by address, by name and as an IPv4-mapped IPv6 address
    port = local_server.port
    message = await _refused(f"http://127.0.0.1:{port}/secret")
    await _refused(f"http://localhost:{port}/secret")
    await _refused(f"http://[::ffff:127.0.0.1]:{port}/secret")
    await _refused(f"http://2130706433:{port}/secret")
    # THEN no request reached it, and the error says why
    assert local_server.hits == []
    assert "loopback" in message


async def test_ipv6_loopback_is_refused() -> None:
    if not _ipv6_available():
        pytest.skip("no IPv6 loopback on this machine")
    handle = _serve("::1")
    try:
        await _refused(f"{handle.server.url}/secret")
        assert handle.server.hits == []
        # AND the operator's setting lets it through
        ok = await _get(f"{handle.server.url}/ok", OutboundPolicy(allow_private=True))
        assert ok.status_code == 200 and handle.server.hits == ["/ok"]
    finally:
        _stop(handle)


async def test_the_operator_setting_allows_a_local_server(local_server: Server) -> None:
    port = local_server.port
    for policy, url in (
        (OutboundPolicy(allow_private=True), f"http://127.0.0.1:{port}/a"),
        (OutboundPolicy(allow_private=True), f"http://localhost:{port}/b"),
        (OutboundPolicy.of(allowed=["127.0.0.1"]), f"http://127.0.0.1:{port}/c"),
        (OutboundPolicy.of(allowed=["localhost"]), f"http://localhost:{port}/d"),
    ):
        response = await _get(url, policy)
        assert response.status_code == 200
    assert local_server.hits == ["/a", "/b", "/c", "/d"]


async def test_a_redirect_to_a_refused_address_is_checked_again() -> None:
    # GIVEN an allowed server that redirects to another loopback address
    target = _serve("127.0.0.2")
    front = _serve("127.0.0.1", redirect_to=f"{target.server.url}/internal")
    try:
        policy = OutboundPolicy.of(allowed=["127.0.0.1"])
        # WHEN a client that follows redirects calls the allowed one
        await _refused(f"{front.server.url}/start", policy, follow=True)
        # THEN the first hop was made, the redirect target was never reached
        assert front.server.hits == ["/start"] and target.server.hits == []
    finally:
        _stop(front)
        _stop(target)


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded only")

    async def sleep(self, seconds: float) -> None:
        pass


async def test_dns_rebinding_connects_to_the_checked_address_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a resolver that answers a public address once, then a loopback one (rebinding)
    answers = [["8.8.8.8"], ["127.0.0.1"]]
    lookups: list[str] = []

    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in answers[min(len(lookups) - 1, 1)]]

    monkeypatch.setattr(guarded.anyio, "getaddrinfo", resolver)
    inner = _RecordingBackend()
    backend = guarded._GuardedBackend(DEFAULT, inner)
    # WHEN a connection is made
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 80)
    # THEN the name was looked up once and the socket went to the address that was checked
    assert lookups == ["rebind.example"] and inner.hosts == ["8.8.8.8"]
    # AND the next connection, which resolves to loopback, is refused before any socket
    with pytest.raises(guarded.BlockedAddress):
        await backend.connect_tcp("rebind.example", 80)
    assert inner.hosts == ["8.8.8.8"]


async def test_a_name_with_one_refused_address_among_public_ones_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00:ec2::254", port, 0, 0))]

    monkeypatch.setattr(guarded.anyio, "getaddrinfo", resolver)
    inner = _RecordingBackend()
    with pytest.raises(guarded.BlockedAddress, match="cloud metadata"):
        await guarded._GuardedBackend(DEFAULT, inner).connect_tcp("mixed.example", 443)
    assert inner.hosts == []


# -- the tenant engine: kefu_llm's OpenAI-compatible engine with an untrusted base URL --------
def test_a_tenant_engine_with_a_file_url_is_refused_when_built() -> None:
    config = EngineConfig(name="evil", base_url="file:///etc/passwd", model="m")
    with pytest.raises(ConfigurationError, match="http"):
        build_engine(config, settings=AdapterSettings(), outbound_policy=DEFAULT)


@dataclass
class _Key:
    id: str = "k1"
    value: str = "sk-tenant"


async def _answer(engine: Any) -> str:
    call = EngineCall(messages=[{"role": "user", "content": "hi"}])
    pieces = [item async for item in engine.stream(call, key=_Key())]
    return "".join(piece for piece in pieces if isinstance(piece, str))


def test_a_tenant_engine_written_as_a_loopback_address_is_refused_when_built() -> None:
    config = EngineConfig(name="tenant", base_url="http://127.0.0.1:11434/v1", model="m")
    with pytest.raises(ConfigurationError, match="loopback"):
        build_engine(config, settings=AdapterSettings(), outbound_policy=DEFAULT)


async def test_a_tenant_engine_whose_name_resolves_to_loopback_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a name that resolves to 127.0.0.1, where an OpenAI-compatible server listens
    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        assert host == "llm.tenant.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(guarded.anyio, "getaddrinfo", resolver)
    with FakeOpenAI(first_token_ms=1, tokens_per_s=0) as fake:
        base_url = fake.base_url.replace("127.0.0.1", "llm.tenant.example")
        config = EngineConfig(name="tenant", base_url=base_url, model="fake-chat")
        # WHEN the tenant's engine is asked to answer
        engine = build_engine(config, settings=AdapterSettings(), outbound_policy=DEFAULT)
        with pytest.raises(EngineError) as caught:
            await _answer(engine)
        await engine.aclose()
        # THEN the connection is refused and nothing was sent
        assert caught.value.kind == "connection" and fake.requests == []
        # AND with OUTBOUND_ALLOW_PRIVATE=true the same engine answers
        settings = AdapterSettings(outbound_allow_private=True)
        allowed = build_engine(config, settings=settings,
                               outbound_policy=settings.outbound_policy())
        assert await _answer(allowed)
        await allowed.aclose()
        assert len(fake.requests) == 1


def test_adapter_settings_read_the_outbound_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("OUTBOUND_ALLOWED_HOSTS", "crm.internal, 10.0.0.0/8")
    policy = AdapterSettings().outbound_policy()
    assert policy.allow_private and policy.allowed == ("crm.internal", "10.0.0.0/8")


# -- the CRM client the core builds -----------------------------------------------------------
def _production(**extra: Any) -> Settings:
    return Settings(kefu_env="production", token_secrets=[SECRET], **extra)


def test_a_crm_url_that_is_not_http_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="CRM_URL"):
        _production(crm_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="CRM_URL"):
        _production(crm_url="gopher://127.0.0.1:6379/_")


async def test_the_crm_on_loopback_is_refused_unless_the_operator_allows_it(
    pg_dsn: str, redis_url: str,
) -> None:
    from kefu_core.answers.memory import build_memory
    from kefu_core.infra.db import open_pool
    from kefu_memory import CrmError

    handle = _serve("127.0.0.1")
    pool = await open_pool(pg_dsn, min_size=1, max_size=2)
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(redis_url)
    try:
        # GIVEN the production configuration with CRM_URL on 127.0.0.1
        memory = await build_memory(_production(crm_url=handle.server.url, crm_token="t"),
                                    pool=pool,
                                    redis=redis)
        # WHEN the CRM is read THEN it fails and the server saw nothing
        with pytest.raises(CrmError):
            await memory.crm.get_customer("c-1")
        assert handle.server.hits == []
        await memory.crm.aclose()
        # AND with OUTBOUND_ALLOWED_HOSTS naming it, the request goes out
        memory = await build_memory(_production(crm_url=handle.server.url, crm_token="t",
                                                outbound_allowed_hosts=["127.0.0.1"]),
                                    pool=pool, redis=redis)
        with pytest.raises(CrmError) as caught:  # the server does not speak the contract
            await memory.crm.get_customer("c-1")
        assert "contract" in str(caught.value)
        assert handle.server.hits == ["/customers/c-1"]
        await memory.crm.aclose()
    finally:
        await redis.aclose()
        await pool.close()
        _stop(handle)


# -- the admin route that stores a tenant's engine chain --------------------------------------
@pytest.fixture(scope="module")
async def admin(make_database, redis_url) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:ssrf:{uuid.uuid4().hex[:8]}:"
    settings = Settings(kefu_env="production", database_url=make_database(),
                        redis_url=redis_url, redis_prefix=prefix, token_secrets=[SECRET],
                        widget_keys=["ssrf-key:ssrf"], memory_enabled=False)
    deps, _, _ = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    app = create_admin_app(settings, deps_provider=provide)
    # staff tokens must name a current agent (kefu_core.product.agent_auth)
    _ADMIN["token"] = token_for(await make_staff(deps.pool, tenant_id="ssrf",
                                                 role="admin"))
    with redis_prefix_removed(redis_url, prefix):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://admin") as http:
            yield http
        await deps.aclose()


_ADMIN: dict[str, str] = {}


def _admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {_ADMIN['token']}"}


@pytest.mark.parametrize("base_url", [
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "http://127.0.0.1:11434/v1",
    "http://localhost:8000/v1", "http://[::1]/v1", "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/", "http://100.100.100.200/", "http://10.0.0.8/v1",
])
async def test_storing_an_engine_url_to_a_refused_destination_answers_422(
    admin: httpx.AsyncClient, base_url: str,
) -> None:
    body = {"chain": [{"name": "mine", "kind": "openai", "base_url": base_url, "model": "m"}]}
    response = await admin.put("/v1/admin/engines", json=body, headers=_admin_headers())
    assert response.status_code == 422, response.text
    assert "base_url" in response.json()["detail"]
    stored = await admin.get("/v1/admin/engines", headers=_admin_headers())
    assert all(e.get("base_url") != base_url for e in stored.json()["chain"])


async def test_storing_a_public_engine_url_is_accepted(admin: httpx.AsyncClient) -> None:
    body = {"chain": [{"name": "mine", "kind": "openai", "base_url": "https://api.example.com/v1",
                       "model": "m"}]}
    response = await admin.put("/v1/admin/engines", json=body, headers=_admin_headers())
    assert response.status_code == 200, response.text
