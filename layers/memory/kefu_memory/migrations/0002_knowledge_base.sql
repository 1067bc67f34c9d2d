-- Knowledge base: documents, chunks with vectors, keyword postings for BM25, tenant versions.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE kb_tenants (
    tenant_id       text PRIMARY KEY,
    version         bigint      NOT NULL DEFAULT 0,
    chunk_count     bigint      NOT NULL DEFAULT 0,
    term_total      bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kb_documents (
    id              bigserial PRIMARY KEY,
    tenant_id       text        NOT NULL,
    name            text        NOT NULL,
    content_type    text        NOT NULL,
    content_hash    text        NOT NULL,
    chunk_count     integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE kb_chunks (
    id              bigserial PRIMARY KEY,
    document_id     bigint      NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    tenant_id       text        NOT NULL,
    ord             integer     NOT NULL,
    heading         text        NOT NULL DEFAULT '',
    content         text        NOT NULL,
    term_count      integer     NOT NULL,
    embedder        text        NOT NULL,
    dim             integer     NOT NULL,
    embedding       vector      NOT NULL
);
CREATE INDEX kb_chunks_document ON kb_chunks (document_id);
CREATE INDEX kb_chunks_tenant ON kb_chunks (tenant_id);

-- Inverted index for the keyword side (BM25 computed in SQL). Terms are jieba words and CJK
-- bigrams made in Python, so Chinese works without a PostgreSQL text-search extension.
CREATE TABLE kb_postings (
    tenant_id       text        NOT NULL,
    term            text        NOT NULL,
    chunk_id        bigint      NOT NULL REFERENCES kb_chunks(id) ON DELETE CASCADE,
    tf              integer     NOT NULL,
    doc_len         integer     NOT NULL
);
CREATE INDEX kb_postings_term ON kb_postings (tenant_id, term) INCLUDE (chunk_id, tf, doc_len);
CREATE INDEX kb_postings_chunk ON kb_postings (chunk_id);
