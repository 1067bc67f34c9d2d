-- Personal data on request and on schedule (kefu_core.flows.personal_data).
--
-- Indexes for a customer's access and erasure requests (everything keyed by the visitor id)
-- and for the retention job (rows older than a tenant's retention, deleted in batches).
CREATE INDEX IF NOT EXISTS offline_messages_visitor_idx ON offline_messages (tenant_id, visitor_id);
CREATE INDEX IF NOT EXISTS offline_messages_created_idx ON offline_messages (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON audit_log (tenant_id, actor_id);

-- The audit log keeps who did what, never what a customer or an agent wrote about a customer:
-- from this release a rating's entry holds the score and the comment's length, a note's entry
-- the note's id and length, an offline message's entry whether a contact was given. Entries
-- written before held the text itself (PII-redacted, but still a customer's words): they are
-- rewritten to the same shape once, here, the only time the append-only trigger is lifted
-- (inside this migration's transaction; the table is locked until it commits).
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
UPDATE audit_log
   SET detail = (detail - 'comment')
                || jsonb_build_object('comment_chars', char_length(detail ->> 'comment'))
 WHERE action = 'conversation.rated' AND detail ? 'comment';
UPDATE audit_log
   SET detail = (detail - 'text') || jsonb_build_object('chars', char_length(detail ->> 'text'))
 WHERE action = 'conversation.note_added' AND detail ? 'text';
UPDATE audit_log
   SET detail = (detail - 'contact')
                || jsonb_build_object('contact_given', coalesce(detail ->> 'contact', '') <> '')
 WHERE action = 'offline_message.left' AND detail ? 'contact';
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;
