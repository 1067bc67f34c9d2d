-- Retention of long-term facts (kefu_core's retention job): a fact is kept while it was seen
-- (or, once superseded, ended) within the tenant's retention period; this index finds the
-- older ones of a tenant without scanning its every fact.
CREATE INDEX IF NOT EXISTS mem_facts_tenant_age
    ON mem_facts (tenant_id, (coalesce(valid_to, last_seen_at)));
