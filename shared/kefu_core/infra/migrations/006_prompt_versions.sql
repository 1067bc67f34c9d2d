-- The 话术 tuning workbench: a tenant's draft of its system prompt and humanisation knobs, and
-- every published version (publishing writes the prompt and the knobs where replies read them,
-- prompts and tenant_settings, and appends a version here; a rollback publishes an old one
-- again as a new version). Versions are never changed or deleted.
CREATE TABLE IF NOT EXISTS prompt_drafts (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    tuning      jsonb NOT NULL,
    updated_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS prompt_versions (
    tenant_id     text NOT NULL REFERENCES tenants (id),
    version       integer NOT NULL,
    tuning        jsonb NOT NULL,
    note          text NOT NULL DEFAULT '',
    published_by  text,
    published_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);
