-- Where the visitor was while they chatted (page address and title, referrer, language, time
-- zone, browser, country): shown to agents beside the conversation; one row per conversation,
-- replaced when the visitor moves on to another page. Values come from the visitor's browser.
CREATE TABLE IF NOT EXISTS visitor_contexts (
    conversation_id uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id text NOT NULL,
    context jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
