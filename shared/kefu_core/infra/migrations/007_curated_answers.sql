-- Curated answers: a question with its approved answer; a visitor question close enough to it
-- (the tenant's curated_answer_threshold) is answered with it, without a model call. The row
-- holds the current version; curated_answer_versions keeps every version (never changed or
-- deleted, a deletion is a version too) so an answer a visitor got can be traced.
CREATE TABLE IF NOT EXISTS curated_answers (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    question    text NOT NULL,
    answer      text NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    active      boolean NOT NULL DEFAULT true,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS curated_answers_tenant ON curated_answers (tenant_id) WHERE active;

CREATE TABLE IF NOT EXISTS curated_answer_versions (
    answer_id   bigint NOT NULL REFERENCES curated_answers (id),
    version     integer NOT NULL,
    question    text NOT NULL,
    answer      text NOT NULL,
    active      boolean NOT NULL,
    changed_by  text,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (answer_id, version)
);
