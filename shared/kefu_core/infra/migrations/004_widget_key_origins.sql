-- A widget key may name the origins (scheme://host[:port], or scheme://*.domain) whose pages
-- may use it; the browser's Origin header is checked when a visitor token is obtained and at
-- $connect. An empty list leaves the key open to every origin (keys created before this
-- migration, and the keys of WIDGET_KEYS until an admin restricts them).
ALTER TABLE widget_keys ADD COLUMN IF NOT EXISTS allowed_origins text[] NOT NULL DEFAULT '{}';
