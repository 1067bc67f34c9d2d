"""Tokens are signed, tenant-scoped and expiring; rotation keeps old tokens valid."""

from __future__ import annotations

import time

import pytest

from kefu_core.infra.errors import Unauthorized
from kefu_core.security.tokens import issue_token, verify_token

OLD = "old-secret-0123456789-0123456789-abcdef"
NEW = "new-secret-0123456789-0123456789-abcdef"


def test_round_trip_carries_tenant_subject_and_role() -> None:
    # GIVEN a token for tenant acme
    token = issue_token(secrets=[NEW], tenant_id="acme", subject="v-1", role="visitor", ttl_s=60)
    # WHEN verified
    identity = verify_token(token, secrets=[NEW])
    # THEN the claims come back
    assert (identity.tenant_id, identity.subject, identity.role) == ("acme", "v-1", "visitor")


def test_expired_token_is_refused() -> None:
    token = issue_token(secrets=[NEW], tenant_id="acme", subject="v-1", role="visitor",
                        ttl_s=60, now=time.time() - 3600)
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(token, secrets=[NEW])


def test_forged_and_malformed_tokens_are_refused() -> None:
    forged = issue_token(secrets=["attacker-secret-attacker-secret-xx"], tenant_id="acme",
                         subject="v-1", role="agent", ttl_s=60)
    for bad in (forged, "not-a-token", "", None):
        with pytest.raises(Unauthorized):
            verify_token(bad, secrets=[NEW])


def test_rotation_overlap_accepts_old_and_new_then_drops_old() -> None:
    # GIVEN a token signed with the old secret
    old_token = issue_token(secrets=[OLD], tenant_id="t", subject="s", role="visitor", ttl_s=60)
    # WHEN the new secret is promoted while the old one still verifies
    assert verify_token(old_token, secrets=[NEW, OLD]).subject == "s"
    new_token = issue_token(secrets=[NEW, OLD], tenant_id="t", subject="s2", role="visitor",
                            ttl_s=60)
    assert verify_token(new_token, secrets=[NEW]).subject == "s2"
    # THEN once the old secret is removed its tokens stop working
    with pytest.raises(Unauthorized):
        verify_token(old_token, secrets=[NEW])
