"""``kefu personal-data export``: a customer's data into a file, whatever its size.

The admin API's export answers at most what one response carries (a Lambda answers 6 MB at
most); a customer with a longer history is exported here, from a machine that reaches the
database and Redis (``DATABASE_URL``, ``REDIS_URL``, as the deployment's settings). The file
is written readable by its owner only; the export is audited like the API's
(``customer.exported``, actor ``system``, counts only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kefu_core.infra.errors import GoneError, KefuError

__all__ = ["add_parser"]

ACTOR = "kefu personal-data export"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser("personal-data", help="a customer's data (docs/data-protection.md)")
    actions = data.add_subparsers(dest="personal_data_command", required=True)
    export = actions.add_parser("export", help="write everything about one customer to a file",
                                description=__doc__)
    export.add_argument("--tenant", required=True, help="tenant id, e.g. acme")
    who = export.add_mutually_exclusive_group(required=True)
    who.add_argument("--visitor-id", help="an anonymous visitor's id (v-...)")
    who.add_argument("--customer-id", help="a signed-in customer's id (the company's)")
    export.add_argument("--output", required=True, help="the JSON file to write")
    export.set_defaults(func=_export)


class _NoConnections:
    """This process holds no WebSocket connection and starts no reply (an export posts
    nothing)."""

    async def post(self, connection_id: str, data: str) -> None:
        raise GoneError(connection_id)

    async def close(self, connection_id: str) -> None:
        return None

    async def invoke(self, payload: dict[str, Any]) -> None:
        raise KefuError("no replies from the command line")


def _export(args: argparse.Namespace) -> int:
    from kefu_core.deps import build_deps
    from kefu_core.flows.personal_data import CustomerRef, export_customer
    from kefu_core.infra.secret_settings import get_settings

    try:
        ref = CustomerRef(visitor_id=args.visitor_id, customer_id=args.customer_id)
    except ValidationError:
        print("kefu personal-data export: invalid visitor or customer id", file=sys.stderr)
        return 2
    settings = get_settings()
    output = Path(args.output)

    async def run() -> str:
        none = _NoConnections()
        deps = await build_deps(settings, poster=none, invoker=none)
        try:
            exported = await export_customer(deps, tenant_id=args.tenant, ref=ref,
                                             limited=False)
            await deps.audit.record(
                tenant_id=args.tenant, actor_type="system", actor_id=ACTOR,
                action="customer.exported", target_type="customer", target_id=ref.subject,
                detail=exported.summary.model_dump(include={
                    "conversations", "messages", "facts", "offline_messages", "audit_entries"}))
        finally:
            await deps.aclose()
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(exported.model_dump_json(indent=2))
        return exported.summary.text_en

    try:
        summary = asyncio.run(run())
    except KefuError as exc:
        print(f"kefu personal-data export: {exc.detail}", file=sys.stderr)
        return 1
    print(f"{output}: {summary}")
    return 0
