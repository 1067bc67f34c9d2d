"""The AWS services the functions reach besides API Gateway and Lambda: moto's server.

Secrets Manager (and anything else moto serves) runs in this process on a loopback port; the
secrets the template expects are created by ``localstack/setup_resources.py``, the same script
that prepares LocalStack or a real account.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from kefu_core.local.errors import LocalStackError

__all__ = ["MotoServer", "SecretsReady", "create_secrets"]

logger = logging.getLogger("kefu.local")
_SETUP = Path(__file__).resolve().parents[3] / "localstack" / "setup_resources.py"


class MotoServer:
    """moto's server in a thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise LocalStackError("moto[server] is not installed: kefu local needs the "
                                  "development dependencies (scripts/bootstrap)") from exc
        self._server: Any = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        try:
            self._server.stop()
        except Exception:  # moto's stop after a failed start
            logger.debug("moto server stop failed", exc_info=True)


@dataclass(frozen=True)
class SecretsReady:
    token_secret_arn: str
    llm_keys_secret_arn: str
    data_key_secret_arn: str


def _setup_module() -> ModuleType:
    if not _SETUP.is_file():
        raise LocalStackError(f"{_SETUP} not found: run kefu local from a source checkout")
    spec = importlib.util.spec_from_file_location("kefu_localstack_setup", _SETUP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def create_secrets(*, endpoint_url: str, region: str) -> SecretsReady:
    """The token secret (a random signing key), the LLM key secret (placeholders) and the data
    key secret (a random key)."""
    result = _setup_module().setup(endpoint_url=endpoint_url, region=region)
    return SecretsReady(token_secret_arn=result.token.arn,
                        llm_keys_secret_arn=result.llm_keys.arn,
                        data_key_secret_arn=result.data_key.arn)
