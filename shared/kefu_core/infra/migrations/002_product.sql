-- The customer-service product layer: tenants, widget keys, agents, per-tenant settings,
-- prompts, engine configuration, notes, satisfaction ratings, offline messages, handoff
-- bookkeeping on conversations, and the append-only audit log.

CREATE TABLE IF NOT EXISTS tenants (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name             text NOT NULL,
    identity_secret  text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS widget_keys (
    key          text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS widget_keys_tenant_idx ON widget_keys (tenant_id);

CREATE TABLE IF NOT EXISTS agents (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    email          text NOT NULL,
    name           text NOT NULL,
    role           text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'admin')),
    password_hash  text NOT NULL,
    capacity       integer NOT NULL DEFAULT 5 CHECK (capacity BETWEEN 0 AND 100),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS agents_email_idx ON agents (lower(email));
CREATE INDEX IF NOT EXISTS agents_tenant_idx ON agents (tenant_id);

CREATE TABLE IF NOT EXISTS tenant_settings (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS prompts (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    text        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- The engine chain (public part) and its secrets (write-only through the API).
CREATE TABLE IF NOT EXISTS engine_config (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    chain       jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS engine_secrets (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    secret      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE conversations ADD COLUMN IF NOT EXISTS handoff_reason text;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS queued_at timestamptz;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS closed_at timestamptz;
CREATE INDEX IF NOT EXISTS conversations_owner_idx
    ON conversations (tenant_id, status, owner, updated_at DESC);

CREATE TABLE IF NOT EXISTS conversation_notes (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent_id         text NOT NULL,
    agent_name       text,
    text             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS conversation_notes_idx ON conversation_notes (conversation_id, id);

CREATE TABLE IF NOT EXISTS csat (
    conversation_id  uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    score            smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment          text NOT NULL DEFAULT '',
    agent_id         text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS csat_tenant_idx ON csat (tenant_id, created_at DESC);

CREATE TABLE IF NOT EXISTS offline_messages (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL,
    visitor_id       text NOT NULL,
    conversation_id  uuid,
    name             text NOT NULL DEFAULT '',
    contact          text NOT NULL DEFAULT '',
    text             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS offline_messages_tenant_idx ON offline_messages (tenant_id, id DESC);

-- The audit log: append-only, enforced here, whatever the application does.
CREATE TABLE IF NOT EXISTS audit_log (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_type   text NOT NULL CHECK (actor_type IN ('visitor', 'agent', 'admin', 'system')),
    actor_id     text,
    action       text NOT NULL,
    target_type  text,
    target_id    text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_tenant_idx ON audit_log (tenant_id, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_target_idx ON audit_log (tenant_id, target_type, target_id);

CREATE OR REPLACE FUNCTION kefu_audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION kefu_audit_log_is_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION kefu_audit_log_is_append_only();
