"""The admin HTTP API (FastAPI): served by the gateway and, on AWS, by Lambda through Mangum."""

from kefu_core.admin.app import create_admin_app

__all__ = ["create_admin_app"]
