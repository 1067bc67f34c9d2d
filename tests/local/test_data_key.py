"""Tenants' secrets in the deployed shape: the admin function reads the data encryption key
from Secrets Manager (DataKeySecretArn, DATA_ENCRYPTION_KEY_ID) to seal and open them."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from kefu_core.product.tenants.tenants import ROOT_TENANT
from tests.local.conftest import SUPER_EMAIL, SUPER_PASSWORD
from tests.local.helpers import admin_client, bearer, login
from tests.support.local_stack import LocalStackProcess

pytestmark = pytest.mark.timeout(300)


async def test_identity_and_engine_secrets_are_sealed_with_the_key_from_secrets_manager(
    local_stack: LocalStackProcess,
) -> None:
    tenant = f"sealed{uuid.uuid4().hex[:6]}"
    async with admin_client(local_stack) as http:
        # GIVEN a tenant and its admin, and a widget key
        root = await login(http, ROOT_TENANT, SUPER_EMAIL, SUPER_PASSWORD)
        created = await http.post("/v1/tenants", headers=bearer(root["token"]), json={
            "id": tenant, "name": "Sealed", "admin_email": f"admin@{tenant}.test",
            "admin_password": "sealed-admin-password"})
        assert created.status_code in (200, 201), created.text
        admin = bearer((await login(http, tenant, f"admin@{tenant}.test",
                                    "sealed-admin-password"))["token"])
        key = await http.post("/v1/admin/widget-keys", headers=admin, json={"label": "site"})
        assert key.status_code in (200, 201), key.text
        # WHEN the admin stores an engine secret and creates the identity secret
        stored = await http.put("/v1/admin/engines/secrets/openai", headers=admin,
                                json={"secret": "sk-" + uuid.uuid4().hex})
        rotated = await http.post("/v1/admin/identity-secret", headers=admin)
        # THEN both are accepted (in production, without a data key they would be refused)
        assert stored.status_code == 204, stored.text
        assert rotated.status_code == 200, rotated.text
        # AND an identity signed with the secret is verified by the admin function
        identity = jwt.encode({"sub": "c-7", "exp": int(time.time()) + 300},
                              rotated.json()["identity_secret"], algorithm="HS256")
        minted = await http.post("/v1/visitor-token", json={
            "widget_key": key.json()["key"], "identity": identity})
        assert minted.status_code == 200, minted.text
        assert minted.json()["identified"] is True
    # AND the key those functions used is the one kefu local created in Secrets Manager
    value = local_stack.secrets_manager().get_secret_value(SecretId="kefu/data-key")
    assert "keys" in value["SecretString"]
