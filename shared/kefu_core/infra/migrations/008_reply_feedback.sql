-- A visitor's thumbs up or down on one bot reply, with an optional reason: one row per reply
-- (a change replaces it), with what the reply was made from (its engine, passages and
-- knowledge-base version, copied from the reply's meta when the feedback arrives). Deleted
-- with the reply (retention, erasure).
CREATE TABLE IF NOT EXISTS reply_feedback (
    conversation_id  uuid NOT NULL,
    seq              integer NOT NULL,
    tenant_id        text NOT NULL,
    visitor_id       text NOT NULL,
    rating           text NOT NULL CHECK (rating IN ('up', 'down')),
    reason           text NOT NULL DEFAULT '',
    engine           text,
    passages         jsonb NOT NULL DEFAULT '[]'::jsonb,
    kb_version       text,
    changes          integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq),
    FOREIGN KEY (conversation_id, seq) REFERENCES messages (conversation_id, seq)
        ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS reply_feedback_tenant_time ON reply_feedback (tenant_id, updated_at);
