"""Knowledge-base files and the search tester through the admin API in production
configuration: real PostgreSQL + pgvector, real pypdf and python-docx, the offline embedder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kefu_core.product.audit import AuditLog
from tests.support.documents import docx_bytes, pdf_bytes
from tests.support.production import AdminHarness, production_admin
from tests.support.staff import make_staff, token_for

LIMIT = 256 * 1024  # KNOWLEDGE_MAX_BODY_BYTES for these tests


@pytest.fixture
async def harness(make_database, redis_url) -> AsyncIterator[AdminHarness]:  # type: ignore[no-untyped-def]
    async with production_admin(pg_dsn=make_database(), redis_url=redis_url,
                                memory_enabled=True, knowledge_max_body_bytes=LIMIT) as h:
        yield h


async def _admin(h: AdminHarness, tenant: str = "shop") -> dict[str, str]:
    admin = await make_staff(h.deps.pool, tenant_id=tenant, role="admin")
    return {"authorization": f"Bearer {token_for(admin, secret=h.settings.token_secrets[0])}"}


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], filename: str,
                  data: bytes, **form: str) -> httpx.Response:
    return await client.post("/v1/admin/knowledge/files", headers=headers, data=form,
                             files={"file": (filename, data, "application/octet-stream")})


async def test_an_admin_uploads_a_pdf_and_a_docx_previews_chunks_and_tests_a_question(
    harness: AdminHarness,
) -> None:
    headers = await _admin(harness)
    async with harness.client() as client:
        # WHEN the admin uploads a PDF and a Word document
        pdf = await _upload(client, headers, "C:\\policies\\returns.pdf", pdf_bytes(
            ["Returns: send the parcel back within 30 days for a full refund.",
             "Refunds reach your card within 5 business days."]))
        word = await _upload(client, headers, "shipping.docx", docx_bytes(
            title="Shipping", sections=[("Express", "Express delivery takes one day.")]))
        # THEN both are ingested under their file names (folders dropped)
        assert pdf.status_code == 201, pdf.text
        assert pdf.json()["name"] == "returns.pdf" and pdf.json()["pages"] == 2
        assert pdf.json()["chunks"] >= 1 and pdf.json()["content_type"] == ".txt"
        assert word.status_code == 201 and word.json()["content_type"] == ".md"
        listed = (await client.get("/v1/admin/knowledge/documents", headers=headers)).json()
        assert [(d["name"], d["chunks"] > 0) for d in listed["documents"]] == [
            ("returns.pdf", True), ("shipping.docx", True)]
        # WHEN the admin previews the PDF's chunks
        chunks = await client.get("/v1/admin/knowledge/documents/returns.pdf/chunks",
                                  headers=headers)
        # THEN they hold its text in order
        assert chunks.status_code == 200
        text = " ".join(c["content"] for c in chunks.json())
        assert text.index("30 days") < text.index("5 business days")
        # WHEN the admin tests a question
        hits = await client.post("/v1/admin/knowledge/search", headers=headers,
                                 json={"question": "How long does a refund take?", "k": 3})
        # THEN the PDF's passage comes first, with its score and ranks
        assert hits.status_code == 200
        best = hits.json()[0]
        assert best["document"] == "returns.pdf" and "refund" in best["content"]
        assert best["score"] > 0 and (best["vector_rank"] or best["keyword_rank"])
    # AND the audit log has the uploads without their content
    entries = await AuditLog(harness.deps.pool).query(tenant_id="shop",
                                                      action="knowledge.document_added")
    assert sorted(e.target_id or "" for e in entries) == ["returns.pdf", "shipping.docx"]
    assert all("refund" not in str(e.detail) for e in entries)


async def test_a_file_with_the_same_name_replaces_the_document(harness: AdminHarness) -> None:
    headers = await _admin(harness)
    async with harness.client() as client:
        await _upload(client, headers, "faq.csv", b"question,answer\nOpen on Sunday?,No\n")
        before = (await client.get("/v1/admin/knowledge/documents", headers=headers)).json()
        # WHEN another file is uploaded under that name
        again = await _upload(client, headers, "new-faq.csv",
                              b"question,answer\nOpen on Sunday?,Yes, 10-16\n", name="faq.csv")
        after = (await client.get("/v1/admin/knowledge/documents", headers=headers)).json()
    # THEN the document is replaced, not added, and the version moved
    assert again.status_code == 201 and again.json()["name"] == "faq.csv"
    assert [d["name"] for d in after["documents"]] == ["faq.csv"]
    assert after["version"] != before["version"]


@pytest.mark.parametrize(("name", "data", "status", "detail"), [
    ("tool.exe", b"MZ\x90", 422, "unsupported file type"),
    ("scan.pdf", pdf_bytes([""]), 422, "no text found"),
    ("broken.docx", b"PK\x03\x04 not really", 422, "DOCX cannot be read"),
    ("big.txt", b"a" * (LIMIT + 1024), 413, None),
    ("../../etc/passwd", b"root", 422, "unsupported file type"),
])
async def test_bad_files_are_refused_and_nothing_is_stored(
    harness: AdminHarness, name: str, data: bytes, status: int, detail: str | None,
) -> None:
    headers = await _admin(harness)
    async with harness.client() as client:
        response = await _upload(client, headers, name, data)
        listed = (await client.get("/v1/admin/knowledge/documents", headers=headers)).json()
    assert response.status_code == status, response.text
    if detail:
        assert detail in response.json()["detail"]
    assert listed["documents"] == []


async def test_agents_and_other_tenants_cannot_read_chunks_or_upload(
    harness: AdminHarness,
) -> None:
    owner = await _admin(harness)
    agent = await make_staff(harness.deps.pool, tenant_id="shop", role="agent")
    token = token_for(agent, secret=harness.settings.token_secrets[0])
    as_agent = {"authorization": f"Bearer {token}"}
    intruder = await _admin(harness, tenant=f"other-{uuid.uuid4().hex[:6]}")
    async with harness.client() as client:
        await _upload(client, owner, "secret.md", b"# Staff only\nDoor code 4711")
        refused: list[Any] = [
            await _upload(client, as_agent, "x.md", b"# x\ny"),
            await client.get("/v1/admin/knowledge/documents/secret.md/chunks",
                             headers=as_agent),
        ]
        chunks = await client.get("/v1/admin/knowledge/documents/secret.md/chunks",
                                  headers=intruder)
        search = await client.post("/v1/admin/knowledge/search", headers=intruder,
                                   json={"question": "door code"})
    assert [r.status_code for r in refused] == [403, 403]
    assert chunks.status_code == 404
    assert search.status_code == 200 and "4711" not in search.text


async def test_the_search_tester_bounds_its_input(harness: AdminHarness) -> None:
    headers = await _admin(harness)
    async with harness.client() as client:
        long = await client.post("/v1/admin/knowledge/search", headers=headers,
                                 json={"question": "x" * 501})
        many = await client.post("/v1/admin/knowledge/search", headers=headers,
                                 json={"question": "x", "k": 21})
    assert (long.status_code, many.status_code) == (422, 422)
