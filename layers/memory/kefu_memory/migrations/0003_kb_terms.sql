-- Document frequency per keyword term and tenant, kept by ingest/delete, so a query knows each
-- term's weight without counting postings, and can skip terms that are in most chunks.
CREATE TABLE kb_terms (
    tenant_id       text        NOT NULL,
    term            text        NOT NULL,
    df              integer     NOT NULL,
    PRIMARY KEY (tenant_id, term)
);

INSERT INTO kb_terms (tenant_id, term, df)
SELECT tenant_id, term, count(*) FROM kb_postings GROUP BY tenant_id, term;
