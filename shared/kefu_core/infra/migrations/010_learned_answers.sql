-- Learning from human agents: a question/answer pair proposed from a conversation an agent
-- resolved (PII redacted), waiting for an admin's review. Nothing here reaches visitors: an
-- approved pair becomes a curated answer or a knowledge-base entry (staff-approved content
-- linked to no customer), and its row records which. One proposal per conversation; erasing
-- the conversation erases its proposal.
CREATE TABLE IF NOT EXISTS learned_answers (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    conversation_id  uuid NOT NULL UNIQUE REFERENCES conversations (id) ON DELETE CASCADE,
    agent_id         text,
    question         text NOT NULL,
    answer           text NOT NULL,
    method           text NOT NULL CHECK (method IN ('engine', 'extractive')),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected')),
    target           text CHECK (target IN ('curated', 'knowledge')),
    target_ref       text,
    edited           boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    reviewed_by      text,
    reviewed_at      timestamptz
);
CREATE INDEX IF NOT EXISTS learned_answers_review
    ON learned_answers (tenant_id, status, id DESC);
