-- Agent sign-in hardening.
-- token_version: carried in every agent token (claim "ver"); bumped when the agent is
--   deactivated, changes role or password, or signs out everywhere, which revokes every token
--   issued before within seconds (kefu_core.agent_auth).
-- demo: the development demo administrator; refused in production whatever its password.
-- E-mail addresses are unique per tenant, not across tenants: creating an agent never reveals
--   whether an address is used by another tenant. Sign-in names the tenant.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS token_version integer NOT NULL DEFAULT 1;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS demo boolean NOT NULL DEFAULT false;
UPDATE agents SET demo = true WHERE lower(email) = 'admin@demo.kefu';
DROP INDEX IF EXISTS agents_email_idx;
CREATE UNIQUE INDEX IF NOT EXISTS agents_tenant_email_idx ON agents (tenant_id, lower(email));
