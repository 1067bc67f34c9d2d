-- Conversations and their messages. Every message has a per-conversation sequence number;
-- a visitor message is acknowledged only after its row is committed here.
CREATE TABLE IF NOT EXISTS conversations (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    visitor_id      text NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    owner           text NOT NULL DEFAULT 'bot' CHECK (owner IN ('bot', 'queue', 'human')),
    assigned_agent  text,
    last_seq        bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS conversations_visitor_idx
    ON conversations (tenant_id, visitor_id, status, updated_at DESC);
CREATE INDEX IF NOT EXISTS conversations_tenant_idx ON conversations (tenant_id, updated_at DESC);

CREATE TABLE IF NOT EXISTS messages (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    role            text NOT NULL CHECK (role IN ('visitor', 'assistant', 'agent', 'system')),
    author          text,
    text            text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'complete'
                    CHECK (status IN ('complete', 'streaming', 'incomplete')),
    client_msg_id   text,
    reply_to        bigint,
    engine          text,
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_msg_idx
    ON messages (conversation_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS messages_reply_idx
    ON messages (conversation_id, reply_to) WHERE role = 'assistant';
