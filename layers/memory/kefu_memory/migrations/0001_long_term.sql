-- Long-term memory: facts about customers, with validity times and provenance.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE mem_facts (
    id              bigserial PRIMARY KEY,
    tenant_id       text        NOT NULL,
    customer_id     text        NOT NULL,
    kind            text        NOT NULL,
    key             text        NOT NULL,
    value           text        NOT NULL,
    value_norm      text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    confidence      real        NOT NULL DEFAULT 1,
    extractor       text        NOT NULL,
    source_conversation_id text,
    source_seq      bigint,
    valid_from      timestamptz NOT NULL DEFAULT now(),
    valid_to        timestamptz,
    superseded_by   bigint REFERENCES mem_facts(id) ON DELETE SET NULL,
    seen_count      integer     NOT NULL DEFAULT 1,
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    embedder        text        NOT NULL,
    dim             integer     NOT NULL,
    embedding       vector      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- At most one current fact per (tenant, customer, key): a new value supersedes the old one.
CREATE UNIQUE INDEX mem_facts_current_key
    ON mem_facts (tenant_id, customer_id, key) WHERE valid_to IS NULL;
CREATE INDEX mem_facts_customer ON mem_facts (tenant_id, customer_id);
CREATE INDEX mem_facts_superseded_by ON mem_facts (superseded_by);

-- Every message a fact was seen in (the first one is also on mem_facts.source_*).
CREATE TABLE mem_fact_sources (
    fact_id         bigint      NOT NULL REFERENCES mem_facts(id) ON DELETE CASCADE,
    conversation_id text        NOT NULL,
    message_seq     bigint,
    seen_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mem_fact_sources_fact ON mem_fact_sources (fact_id);

-- Erasure log: what was erased and when, without the customer id in clear.
CREATE TABLE mem_erasures (
    id              bigserial PRIMARY KEY,
    tenant_id       text        NOT NULL,
    customer_ref    text        NOT NULL,
    facts_erased    integer     NOT NULL,
    erased_at       timestamptz NOT NULL DEFAULT now()
);
