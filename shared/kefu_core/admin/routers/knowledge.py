"""``/v1/admin/knowledge``: the tenant's knowledge base (kefu_memory), documents by name."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.admin.errors import NOT_FOUND, Responses, done
from kefu_core.deps import Deps
from kefu_core.security.tokens import Identity

router = APIRouter(prefix="/v1/admin/knowledge", tags=["knowledge"])

UNCONFIGURED: Responses = {503: {"description": "no knowledge base (memory off)"}}


class DocumentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\]+$")
    content: str = Field(min_length=1, max_length=2_000_000)
    content_type: str = Field(default=".md", pattern=r"^\.(md|markdown|txt|csv)$")


async def add_knowledge_entry(deps: Deps, who: Identity, *, question: str, answer: str,
                              source: Literal["learned_answer", "missing_knowledge"]) -> str:
    """Ingest a question with its answer as a Markdown document of its own
    (``learned-<12 hex>.md``) in the caller's tenant's knowledge base, audited; its name."""
    kb = await knowledge_base(deps)
    from kefu_memory import IngestError  # the memory layer's

    name = f"learned-{uuid.uuid4().hex[:12]}.md"
    try:
        result = await kb.ingest_document(tenant_id=who.tenant_id, name=name,
                                          content=f"# {question}\n\n{answer}\n",
                                          content_type=".md")
    except IngestError as exc:
        raise HTTPException(status_code=422, detail="document cannot be ingested") from exc
    await record(deps, who, "knowledge.document_added", "document", name,
                 chunks=getattr(result, "chunks", None), source=source)
    return name


async def knowledge_base(deps: Deps) -> Any:
    """The memory layer's knowledge base (built on first use), or 503."""
    memory = await deps.load_memory()
    knowledge = getattr(memory, "knowledge", None)
    if knowledge is None:
        raise HTTPException(status_code=503, detail="knowledge base not configured")
    return knowledge


@router.get("", summary="List documents", responses=UNCONFIGURED)
async def list_documents(who: AdminId, deps: DepsDep) -> dict[str, Any]:
    """The names of the tenant's documents and the knowledge base's version."""
    kb = await knowledge_base(deps)
    return {"documents": await kb.document_names(who.tenant_id),
            "version": await kb.kb_version(who.tenant_id)}


@router.post("", status_code=201, summary="Add a document",
             responses={422: {"description": "the document cannot be ingested"},
                        **UNCONFIGURED})
async def add_document(body: DocumentCreate, who: AdminId, deps: DepsDep) -> dict[str, Any]:
    """Markdown, text or an FAQ CSV, chunked and indexed under `name` (replacing a document
    of that name)."""
    kb = await knowledge_base(deps)
    from kefu_memory import IngestError, UnsupportedContentType  # the memory layer's

    try:
        result = await kb.ingest_document(tenant_id=who.tenant_id, name=body.name,
                                          content=body.content, content_type=body.content_type)
    except (IngestError, UnsupportedContentType) as exc:
        raise HTTPException(status_code=422, detail="document cannot be ingested") from exc
    chunks = getattr(result, "chunks", None)
    await record(deps, who, "knowledge.document_added", "document", body.name, chunks=chunks)
    return {"name": body.name, "chunks": chunks, "version": await kb.kb_version(who.tenant_id)}


@router.delete("/{name}", status_code=204, summary="Delete a document", responses=NOT_FOUND)
async def delete_document(name: str, who: AdminId, deps: DepsDep) -> Response:
    """The document and its chunks; answers stop citing it."""
    kb = await knowledge_base(deps)
    done(await kb.delete_document(tenant_id=who.tenant_id, name=name))
    await record(deps, who, "knowledge.document_deleted", "document", name)
    return Response(status_code=204)
