"""One local stack (``kefu local`` on the SAM build) for every test in this folder, stopped
when they are done.

It runs in production mode as deployed: the template's environment, the token secret on moto's
Secrets Manager, a super-admin from the template parameters, PostgreSQL from the test server
(its own database) and an embedded Redis started by ``kefu local`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.local_stack import LocalStackProcess, run_local_stack

SUPER_EMAIL = "root@local.kefu"
SUPER_PASSWORD = "super-secret-password-1"
# How often the functions re-read the token secret: small, so a rotation is seen in seconds.
TOKEN_SECRET_REFRESH_S = "2"


@pytest.fixture(scope="package")  # stopped once this folder's tests are done
def local_stack(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStackProcess]:
    data_dir: Path = tmp_path_factory.mktemp("kefu-local")
    parameters = {
        "DatabaseUrl": make_database(),
        "SuperAdminEmail": SUPER_EMAIL,
        "SuperAdminPassword": SUPER_PASSWORD,
    }
    env_vars = {"Parameters": {"TOKEN_SECRET_REFRESH_S": TOKEN_SECRET_REFRESH_S}}
    with run_local_stack(data_dir=data_dir, parameters=parameters, env_vars=env_vars) as stack:
        yield stack
