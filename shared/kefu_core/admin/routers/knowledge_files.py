"""``/v1/admin/knowledge``, for the admin console: file uploads (Markdown, text, FAQ CSV, PDF,
DOCX), the documents with their chunk counts, a document's chunks, and a search tester.

An upload is a multipart form (``file``, optional ``name``), limited by the body limit of
``/v1/admin/knowledge/files`` (``KNOWLEDGE_MAX_BODY_BYTES``) before it is read; its text comes
from :mod:`kefu_core.answers.document_text` in a worker thread, and is then ingested like a
JSON document (replacing a document of the same name). The audit log records the name, type,
size and chunk count; no route logs a document's content or a tested question.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep, SettingsDep
from kefu_core.admin.errors import NOT_FOUND, found
from kefu_core.admin.routers.knowledge import UNCONFIGURED, knowledge_base
from kefu_core.answers.document_text import UnreadableDocument, document_text

router = APIRouter(prefix="/v1/admin/knowledge", tags=["knowledge"])

UPLOAD_PATH = "/v1/admin/knowledge/files"
DocumentName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^/\\]+$")]


class Uploaded(BaseModel):
    name: str
    content_type: str
    chunks: int | None
    characters: int
    pages: int | None
    truncated: bool
    version: str


class DocumentInfo(BaseModel):
    name: str
    content_type: str
    chunks: int
    updated_at: datetime


class Documents(BaseModel):
    documents: list[DocumentInfo]
    version: str


class Chunk(BaseModel):
    ord: int
    heading: str
    content: str


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=500)
    k: int = Field(default=5, ge=1, le=20)


class Hit(BaseModel):
    document: str
    heading: str
    content: str
    score: float
    vector_rank: int | None
    keyword_rank: int | None


def _document_name(filename: str | None, given: str | None) -> str:
    """The document's name: the one given, else the file's name without its folders."""
    name = (given or PurePosixPath((filename or "").replace("\\", "/")).name).strip()
    if not name or len(name) > 200 or "/" in name or "\\" in name:
        raise HTTPException(status_code=422, detail="invalid document name")
    return name


@router.post("/files", status_code=201, response_model=Uploaded, summary="Upload a file",
             responses={413: {"description": "larger than KNOWLEDGE_MAX_BODY_BYTES"},
                        422: {"description": "unsupported type, unreadable or empty file; "
                                             "the detail says which"}, **UNCONFIGURED})
async def upload(who: AdminId, deps: DepsDep, settings: SettingsDep,
                 file: Annotated[UploadFile, File(description=".md, .txt, .csv, .pdf or .docx")],
                 name: Annotated[str | None, Form(max_length=200)] = None) -> Uploaded:
    """A Markdown, text, FAQ CSV (columns question, answer), PDF or DOCX file, turned into
    text and indexed under `name` (default: the file's name), replacing a document of that
    name. A PDF without a text layer (scanned) or an encrypted one is refused."""
    document = _document_name(file.filename, name)
    kb = await knowledge_base(deps)
    data = await file.read(settings.knowledge_max_body_bytes + 1)
    if len(data) > settings.knowledge_max_body_bytes:
        raise HTTPException(status_code=413, detail="file too large")
    try:
        text = await asyncio.to_thread(document_text, file.filename or document, data)
    except UnreadableDocument as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    from kefu_memory import IngestError, UnsupportedContentType  # the memory layer's

    try:
        result = await kb.ingest_document(tenant_id=who.tenant_id, name=document,
                                          content=text.content,
                                          content_type=text.content_type)
    except (IngestError, UnsupportedContentType) as exc:
        raise HTTPException(status_code=422, detail="document cannot be ingested") from exc
    chunks = getattr(result, "chunks", None)
    await record(deps, who, "knowledge.document_added", "document", document, chunks=chunks,
                 bytes=len(data), content_type=text.content_type, truncated=text.truncated)
    return Uploaded(name=document, content_type=text.content_type, chunks=chunks,
                    characters=len(text.content), pages=text.pages, truncated=text.truncated,
                    version=await kb.kb_version(who.tenant_id))


@router.get("/documents", response_model=Documents, summary="Documents with their details",
            responses=UNCONFIGURED)
async def documents(who: AdminId, deps: DepsDep) -> Documents:
    """Each document's name, content type, chunk count and last update, and the knowledge
    base's version."""
    kb = await knowledge_base(deps)
    return Documents(documents=[DocumentInfo.model_validate(d)
                                for d in await kb.documents(who.tenant_id)],
                     version=await kb.kb_version(who.tenant_id))


@router.get("/documents/{name}/chunks", response_model=list[Chunk],
            summary="A document's chunks", responses={**NOT_FOUND, **UNCONFIGURED})
async def chunks(name: DocumentName, who: AdminId, deps: DepsDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 200) -> list[Chunk]:
    """The first `limit` chunks of the document, in order, as the assistant retrieves them."""
    kb = await knowledge_base(deps)
    return [Chunk.model_validate(c)
            for c in found(await kb.chunks(tenant_id=who.tenant_id, name=name, limit=limit))]


@router.post("/search", response_model=list[Hit], summary="Test a question",
             responses=UNCONFIGURED)
async def search(body: SearchRequest, who: AdminId, deps: DepsDep) -> list[Hit]:
    """The passages the knowledge base retrieves for `question` (hybrid search, best first),
    with their fused score and their ranks on the vector and keyword sides. Nothing is
    stored or logged."""
    kb = await knowledge_base(deps)
    passages: list[Any] = await kb.search(who.tenant_id, body.question, k=body.k)
    return [Hit(document=p.document, heading=p.heading, content=p.content, score=p.score,
                vector_rank=p.vector_rank, keyword_rank=p.keyword_rank) for p in passages]
