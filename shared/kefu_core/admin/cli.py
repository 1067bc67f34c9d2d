"""``kefu admin create``: the first administrator of a tenant, without writing any code.

Creates the tenant when it does not exist yet (with a widget key, printed once), then an
administrator (or agent) in it. The password is read from a prompt (asked twice) or, with
``--password-stdin`` or when standard input is not a terminal, from the first line of standard
input, so it never appears in the shell history or the process list. Migrations are applied
first, so it works on an empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import re
import sys
from typing import get_args

from kefu_core.infra.settings import Settings
from kefu_core.security.roles import StaffRole

__all__ = ["add_parser"]

MIN_PASSWORD = 10
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="manage tenant administrators")
    actions = admin.add_subparsers(dest="admin_command", required=True)
    create = actions.add_parser(
        "create", help="create a tenant's administrator (and the tenant if it is new)",
        description=__doc__)
    create.add_argument("--tenant", required=True, help="tenant id, e.g. acme")
    create.add_argument("--email", required=True)
    create.add_argument("--name", default="Administrator")
    create.add_argument("--role", choices=sorted(get_args(StaffRole)), default="admin")
    create.add_argument("--tenant-name", help="display name of a new tenant (default: its id)")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    create.add_argument("--embedded", action="store_true",
                        help="use the embedded PostgreSQL of `kefu run` (while it is stopped)")
    create.set_defaults(func=_create)


def _password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("the passwords differ")
    return first


def _create(args: argparse.Namespace) -> int:
    from kefu_core.infra.embedded import resolve_services

    if not _TENANT.match(args.tenant):
        print("--tenant: letters, digits, '_' and '-', up to 64 characters", file=sys.stderr)
        return 2
    if not _EMAIL.match(args.email) or len(args.email) > 200:
        print("--email: not an e-mail address", file=sys.stderr)
        return 2
    try:
        password = _password(args.password_stdin)
    except (ValueError, EOFError) as exc:
        print(f"password: {exc}", file=sys.stderr)
        return 2
    if len(password) < MIN_PASSWORD:
        print(f"password: at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stops:  # embedded services stop on every way out
        settings = (resolve_services(Settings(), stops=stops) if args.embedded
                    else Settings())
        if not settings.database_url:
            print("DATABASE_URL is not set (or pass --embedded)", file=sys.stderr)
            return 2
        return asyncio.run(_apply(settings.database_url, args, password))


async def _apply(dsn: str, args: argparse.Namespace, password: str) -> int:
    from kefu_core.infra.db import migrate, open_pool
    from kefu_core.infra.errors import Conflict
    from kefu_core.product.audit import AuditLog
    from kefu_core.product.tenants.agents import AgentStore
    from kefu_core.product.tenants.tenants import TenantStore
    from kefu_core.product.tenants.widget_keys import WidgetKeyStore

    pool = await open_pool(dsn, min_size=1, max_size=1)
    try:
        await migrate(pool)
        tenants = TenantStore(pool)
        if await tenants.get(args.tenant) is None:
            await tenants.create(tenant_id=args.tenant, name=args.tenant_name or args.tenant)
            key = await WidgetKeyStore(pool).create(tenant_id=args.tenant, label="default")
            print(f"created tenant {args.tenant}; widget key: {key.key}")
        try:
            agent = await AgentStore(pool).create(tenant_id=args.tenant, email=args.email,
                                                  name=args.name, password=password,
                                                  role=args.role)
        except Conflict:
            print(f"{args.email} already exists in tenant {args.tenant}", file=sys.stderr)
            return 1
        await AuditLog(pool).safe_record(
            tenant_id=args.tenant, actor_type="system", actor_id="kefu-cli",
            action="agent.created", target_type="agent", target_id=agent.id,
            detail={"role": agent.role})
        print(f"created {agent.role} {agent.id} ({agent.email}) in tenant {args.tenant}; "
              f"sign in at /console with organisation {args.tenant}")
        return 0
    finally:
        await pool.close()
