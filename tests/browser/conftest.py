"""One headless Chromium per test module, driven by Playwright.

Each module starts the gateway its tests need (its own ``gateway`` fixture); the browser
starts after it, so a module skipped for want of chromium never launches one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser.support import ARGS, CHROMIUM
from tests.support.gateway import RunningGateway


@pytest.fixture(scope="module")
async def browser(gateway: RunningGateway) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()
