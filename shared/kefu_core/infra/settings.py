"""One settings object, read from the environment and validated at cold start.

Placeholder secrets are accepted only when ``KEFU_ENV`` is ``development`` or ``test``: the
development token secret is the default there, and never in production, where the token
keyring (:mod:`kefu_core.security.keyring`) refuses to serve without real secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from kefu_core.infra.env_settings import EnvSettings

if TYPE_CHECKING:
    from kefu_llm.netguard import OutboundPolicy

__all__ = ["DEV_TOKEN_SECRET", "Settings"]

DEV_TOKEN_SECRET = "kefu-development-token-secret-change-me"


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(EnvSettings):
    """Kefu configuration. Every field maps to the upper-case environment variable (its
    alias when it has one); list fields are comma-separated."""

    kefu_env: Literal["development", "test", "production"] = "development"

    # Stores. Empty means "start the embedded one" in `kefu run`; handlers require them.
    database_url: str | None = None
    # Where the database password is instead of DATABASE_URL (read at cold start, see
    # kefu_core.infra.secret_settings), and an RDS Proxy host that replaces DATABASE_URL's host.
    database_password_secret_id: str | None = None
    database_proxy_host: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "kefu:"
    # "apply": migrate the schema when a process starts (kefu run, tests); "verify": only check
    # with one query that it is up to date, refusing to serve when it is behind (Lambda: the
    # SchemaMigration custom resource applies it at deploy time).
    schema_migrations: Literal["apply", "verify"] = "apply"
    db_pool_min: int = 1
    db_pool_max: int = 20  # a gateway replica; Lambda containers use DB_POOL_MAX=2 (template)
    # `kefu run`: connections of their own for storing messages, so a visitor's message (its
    # acknowledgement waits for the store) does not queue behind the replies' work in the pool
    # above (when they are all busy, it takes one of that pool's); 0 shares that pool. Lambda
    # functions and the admin commands never open them.
    db_ingress_pool_max: int = 4
    # How long a request waits for a pooled database connection before the visitor is told to
    # retry (a store outage must be answered in seconds, not after a 30 s default).
    db_pool_timeout_s: float = 3.0
    # Redis connections per process; a caller waits up to REDIS_POOL_TIMEOUT_S for one.
    redis_max_connections: int = 500
    redis_pool_timeout_s: float = 3.0

    # Tokens: the first secret signs, all of them verify (rotation with an overlap window).
    # Read only through security.keyring. Empty means: TOKEN_SECRET_ID, or outside production
    # the development secret (filled in below); production never gets a default.
    token_secrets: list[str] = Field(default_factory=list)
    token_secret_id: str | None = None  # Secrets Manager secret holding the signing secret(s)
    # How often the secret named by TOKEN_SECRET_ID is read again (a rotation's overlap).
    token_secret_refresh_s: int = Field(default=60, ge=1, le=3600)
    token_ttl_s: int = 24 * 3600
    # Widget keys: "public-key:tenant" pairs; a widget key lets a page obtain a visitor token.
    widget_keys: list[str] = Field(default_factory=lambda: ["demo-key:demo"])
    # Visitor tokens: how many one source address and one widget key may obtain per window
    # (429 with Retry-After beyond; 0 = no limit). Counted in Redis, shared by every replica.
    visitor_token_rate_per_address: int = Field(default=30, ge=0)
    visitor_token_rate_per_key: int = Field(default=3000, ge=0)
    visitor_token_rate_window_s: int = Field(default=60, ge=1, le=3600)
    # Origins (scheme://host[:port]) whose pages may call the admin API's staff routes (CORS);
    # empty: same origin only. The widget's POST /v1/visitor-token follows the widget key's
    # allowed origins instead.
    admin_allowed_origins: list[str] = Field(default_factory=list)
    # Request bodies: larger ones are refused with 413 before they are read. JSON routes, and
    # the knowledge-base document upload (2,000,000 characters of content at most).
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    knowledge_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Product layer: the super-admin (creates tenants) and the CRM the agent console reads.
    super_admin_email: str | None = None
    super_admin_password: str | None = None
    crm_url: str | None = None
    crm_token: str | None = None
    super_admin_password_secret_id: str | None = None
    # CRM_TOKEN_SECRET_ID (a name apart from the token-signing settings, which only the keyring
    # reads).
    crm_token_source: str | None = Field(default=None, alias="CRM_TOKEN_SECRET_ID")
    # Outbound calls to URLs that are not trusted: tenant engine base URLs and the CRM
    # (kefu_llm.netguard). Loopback, private and CGNAT addresses are refused unless
    # OUTBOUND_ALLOW_PRIVATE; OUTBOUND_ALLOWED_HOSTS lists host names (".example.com" for
    # subdomains), addresses or CIDRs always allowed (the only way to a link-local address).
    outbound_allow_private: bool = False
    outbound_allowed_hosts: list[str] = Field(default_factory=list)
    # Tenants' own engine chains (PUT /v1/admin/engines): how often, at most, a process checks
    # whether a tenant's chain or engine secrets changed (kefu_core.answers.tenant_engines).
    tenant_engines_refresh_s: float = Field(default=5.0, ge=0, le=3600)
    # Encryption at rest of tenants' engine and identity secrets (kefu_core.security.datakeys): keys
    # (comma-separated, the first encrypts) or the Secrets Manager secret holding them.
    data_encryption_key: list[str] = Field(default_factory=list, repr=False)
    data_encryption_key_id: str | None = None

    # Transport.
    websocket_management_url: str | None = None  # https://{api}.execute-api.{region}.amazonaws.com/{stage}
    stream_function_name: str | None = None
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")

    # Connections and frames (API Gateway limits: 32 KB frames, 128 KB messages).
    connection_ttl_s: int = 2 * 3600 + 300
    max_text_chars: int = 4000
    max_frame_bytes: int = 32 * 1024
    replay_page_bytes: int = 24 * 1024
    replay_max_messages: int = 500

    # Replies.
    delta_flush_ms: int = 40
    delta_flush_chars: int = 400
    context_window: int = 10
    # Tokens of the turns before the question; over it the older turns are compressed
    # (kefu_core.answers.history); 0 sends the window as it is.
    history_token_budget: int = Field(default=6000, ge=0)
    system_prompt: str = (
        "You are a friendly, concise customer-service assistant. Answer from the knowledge "
        "passages when they are relevant; if you do not know, say so and offer a human agent. "
        "Answer in the visitor's language."
    )

    # Memory and knowledge base.
    memory_enabled: bool = True
    # How long Redis keeps a conversation's recent turns (short-term memory, full text) after
    # its last write. Only a fast path: a reply whose turns expired reads them from PostgreSQL
    # once and writes them back. 2 h: an API Gateway WebSocket connection lives at most 2 h, a
    # visitor idle for longer reconnects, and nothing of the text needs to outlive that in a
    # second store (docs/data-protection.md).
    short_term_ttl_s: int = Field(default=2 * 3600, ge=60, le=7 * 24 * 3600)
    recall_deadline_ms: int = 200
    # The engine's second look at a reply's flagged sentences (tenant setting
    # grounding_engine_check): at most this long after the last delta, then the lexical verdict.
    grounding_engine_budget_ms: int = Field(default=1500, ge=100, le=10_000)
    memory_token_budget: int = 800
    knowledge_top_k: int = 4
    # Search results the offline engine judges (it grounds each passage itself, so it may look
    # further than the KNOWLEDGE_TOP_K passages a model is shown); never fewer than those.
    offline_candidates: int = Field(default=20, ge=0, le=50)
    # How the knowledge search query is built from the conversation: "rules" (entity carried
    # over from the recent turns, ~1 ms) or "llm" (a remote engine rewrites the question as a
    # standalone query within part of RECALL_DEADLINE_MS; the rules answer when it is late).
    query_condenser: Literal["rules", "llm"] = "llm"
    knowledge_dir: str | None = None  # ingested at `kefu run` start for KNOWLEDGE_TENANT
    knowledge_tenant: str = "demo"
    # "use-multilingual": USE multilingual v3 shipped in the optional `semantic` extra.
    embedder: Literal["offline", "openai", "use-multilingual"] = "offline"
    embedding_model: str = "text-embedding-3-small"
    embedding_dim: int = 1536
    embedding_base_url: str | None = None
    embedding_api_key: str | None = None

    # Retention (kefu_core.flows.personal_data.retention): rows older than a tenant's
    # retention settings are deleted this many at a time (one short transaction each), by a
    # run every RETENTION_INTERVAL_S in the self-hosted gateway (one replica at a time; 0 = no
    # periodic run) or by the scheduled RetentionFunction on AWS. A run stops after
    # RETENTION_RUN_BUDGET_S and the next one goes on where it stopped.
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)
    retention_interval_s: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    retention_run_budget_s: float = Field(default=240.0, gt=0, le=3600)

    # Images (kefu_core.chat.images; docs/configuration.md "Images"). IMAGE_BUCKET: an S3
    # bucket (the template's on AWS; any S3-compatible store self-hosted, its endpoint from
    # AWS_ENDPOINT_URL_S3); unset: files under IMAGE_DIR (default DATA_DIR/images), served by
    # the gateway (a Lambda function without a bucket has no images).
    images_enabled: bool = True
    image_bucket: str | None = None
    image_dir: str | None = None
    image_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=20 * 1024 * 1024)
    image_max_side: int = Field(default=4096, ge=64, le=16384)
    image_url_ttl_s: int = Field(default=600, ge=30, le=3600)
    image_upload_ttl_s: int = Field(default=300, ge=30, le=3600)
    image_max_per_conversation: int = Field(default=50, ge=0, le=10_000)
    image_rate_per_minute: int = Field(default=10, ge=1, le=1000)

    # Self-hosted gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_stage: str = "prod"
    # Management API keys ("ACCESS_KEY_ID:secret", comma-separated) for SigV4-signed calls;
    # with none configured only loopback clients may call it, and only when loopback is trusted:
    # by default outside production; in production GATEWAY_TRUST_LOOPBACK=true says so (no
    # reverse proxy on this host forwards to the gateway), else keys are required.
    gateway_management_keys: list[str] = Field(default_factory=list)
    gateway_trust_loopback: bool | None = None
    # Bearer token for the gateway's /metrics; unset: loopback callers only, when loopback is
    # trusted (as for the management API).
    metrics_token: str | None = None
    # $connect flows in progress at once per replica; beyond that a handshake is refused at
    # once with 503 (as API Gateway throttles with 429) instead of queueing until it times out.
    gateway_max_pending_connects: int = 256
    gateway_idle_timeout_s: int = 600
    gateway_max_lifetime_s: int = 7200
    data_dir: str = ".kefu"
    web_dir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("token_secrets", "TOKEN_SECRETS", "widget_keys", "WIDGET_KEYS",
                        "gateway_management_keys", "GATEWAY_MANAGEMENT_KEYS",
                        "outbound_allowed_hosts", "OUTBOUND_ALLOWED_HOSTS",
                        "admin_allowed_origins", "ADMIN_ALLOWED_ORIGINS",
                        "data_encryption_key", "DATA_ENCRYPTION_KEY"):
                if key in data:
                    data[key] = _split(data[key])
        return data

    @model_validator(mode="after")
    def _development_token_secret_and_urls(self) -> Settings:
        # Token secrets are checked by the keyring, which answers 503 in production without
        # real ones (a settings error would only crash the function at import).
        if not self.token_secrets and not self.token_secret_id and self.kefu_env != "production":
            self.token_secrets = [DEV_TOKEN_SECRET]
        if self.crm_url and urlsplit(self.crm_url).scheme.lower() not in ("http", "https"):
            raise ValueError("CRM_URL must be an http:// or https:// URL")
        return self

    def outbound_policy(self) -> OutboundPolicy:
        """Where calls to untrusted URLs (tenant engines, the CRM) may go."""
        from kefu_llm.netguard import OutboundPolicy

        return OutboundPolicy.of(allow_private=self.outbound_allow_private,
                                 allowed=self.outbound_allowed_hosts)

    @property
    def trusts_loopback(self) -> bool:
        """Whether a loopback caller may use the management API without a key."""
        if self.gateway_trust_loopback is not None:
            return self.gateway_trust_loopback
        return self.kefu_env != "production"

    def management_keys(self) -> dict[str, str]:
        """``GATEWAY_MANAGEMENT_KEYS`` as access key id -> secret."""
        return dict(item.split(":", 1) for item in self.gateway_management_keys if ":" in item)

    def gateway_problem(self) -> str | None:
        """Why the self-hosted gateway must not start with this configuration, if it must not."""
        malformed = sum(1 for item in self.gateway_management_keys
                        if not all(part.strip() for part in item.partition(":")[::2]))
        if malformed:
            return ("GATEWAY_MANAGEMENT_KEYS entries must be ACCESS_KEY_ID:secret "
                    f"({malformed} malformed)")
        if self.kefu_env == "production" and not self.management_keys() \
                and not self.trusts_loopback:
            return ("GATEWAY_MANAGEMENT_KEYS must be set in production: without keys every "
                    "loopback caller may post to any connection, and a reverse proxy on this "
                    "host makes every caller loopback. Set GATEWAY_TRUST_LOOPBACK=true only "
                    "when no proxy on this host forwards to the gateway.")
        if self.metrics_token is not None and len(self.metrics_token.strip()) < 24:
            return "METRICS_TOKEN must be at least 24 characters (e.g. openssl rand -hex 24)"
        return None

    def widget_tenants(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for item in self.widget_keys:
            key, _, tenant = item.partition(":")
            if key and tenant:
                pairs[key] = tenant
        return pairs
