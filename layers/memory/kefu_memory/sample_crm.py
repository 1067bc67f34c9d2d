"""A sample CRM that speaks the contract `CrmClient` expects, with seeded demo data.

Run it standalone::

    python -m kefu_memory.sample_crm --port 8700 [--token demo-token]

or mount `create_app()` anywhere an ASGI app goes (tests use it through httpx's ASGITransport).
Needs starlette (and uvicorn to serve), which the self-hosted stack has; the Lambda layer does
not ship them and does not need them.
"""

from __future__ import annotations

import argparse
import copy
import hmac
import logging
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["DEMO_DATA", "create_app", "main"]

DEMO_DATA: dict[str, dict[str, Any]] = {
    "c-1001": {
        "customer": {
            "id": "c-1001",
            "name": "张伟",
            "email": "zhang.wei@example.com",
            "phone": "13800138000",
            "tier": "gold",
            "tags": ["repeat-buyer"],
            "notes": "偏好顺丰快递",
        },
        "orders": [
            {
                "id": "SO20241120001",
                "status": "shipped",
                "total": 399.0,
                "currency": "CNY",
                "placed_at": "2026-11-20T10:15:00+08:00",
                "items": [{"sku": "KB-87", "name": "机械键盘", "quantity": 1}],
                "tracking_number": "SF1234567890",
                "shipping_address": "上海市浦东新区世纪大道100号",
            },
            {
                "id": "SO20241002017",
                "status": "delivered",
                "total": 89.5,
                "currency": "CNY",
                "placed_at": "2026-10-02T09:00:00+08:00",
                "items": [{"sku": "MS-01", "name": "无线鼠标", "quantity": 1}],
                "tracking_number": "SF0987654321",
                "shipping_address": "上海市浦东新区世纪大道100号",
            },
        ],
        "tickets": [
            {
                "id": "T-5001",
                "subject": "键盘部分按键失灵",
                "status": "open",
                "created_at": "2026-11-22T14:00:00+08:00",
                "priority": "high",
            }
        ],
    },
    "c-1002": {
        "customer": {
            "id": "c-1002",
            "name": "Alice Chen",
            "email": "alice@example.com",
            "phone": "+1 415 555 0134",
            "tier": "standard",
            "tags": [],
        },
        "orders": [
            {
                "id": "A10023",
                "status": "processing",
                "total": 59.0,
                "currency": "USD",
                "placed_at": "2026-11-23T18:30:00-08:00",
                "items": [{"sku": "HD-2", "name": "Headphones", "quantity": 1}],
                "shipping_address": "221B Baker Street, London",
            }
        ],
        "tickets": [],
    },
    "c-1003": {
        "customer": {"id": "c-1003", "name": "李娜", "tier": "new", "tags": []},
        "orders": [],
        "tickets": [],
    },
}


def create_app(
    *, token: str = "demo-token", data: dict[str, dict[str, Any]] | None = None
) -> Starlette:
    """The sample CRM as an ASGI app; `data` replaces the demo data (same shape)."""
    records = copy.deepcopy(DEMO_DATA if data is None else data)

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())

    def limit(request: Request) -> int:
        try:
            return max(1, min(100, int(request.query_params.get("limit", "10"))))
        except ValueError:
            return 10

    def lookup(request: Request) -> dict[str, Any] | JSONResponse:
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        record = records.get(request.path_params["customer_id"])
        if record is None:
            return JSONResponse({"error": "customer not found"}, status_code=404)
        return record

    async def customer(request: Request) -> JSONResponse:
        record = lookup(request)
        return record if isinstance(record, JSONResponse) else JSONResponse(record["customer"])

    async def orders(request: Request) -> JSONResponse:
        record = lookup(request)
        if isinstance(record, JSONResponse):
            return record
        newest = sorted(record["orders"], key=lambda o: str(o["placed_at"]), reverse=True)
        return JSONResponse({"orders": newest[: limit(request)]})

    async def tickets(request: Request) -> JSONResponse:
        record = lookup(request)
        if isinstance(record, JSONResponse):
            return record
        newest = sorted(record["tickets"], key=lambda t: str(t["created_at"]), reverse=True)
        return JSONResponse({"tickets": newest[: limit(request)]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/customers/{customer_id}", customer),
            Route("/customers/{customer_id}/orders", orders),
            Route("/customers/{customer_id}/tickets", tickets),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kefu_memory.sample_crm")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--token", default=os.environ.get("KEFU_CRM_TOKEN", "demo-token"))
    args = parser.parse_args(argv)
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(token=args.token), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
