"""The admin API's routes, one ``APIRouter`` per resource; :data:`ROUTERS` in the order the
OpenAPI document lists them. A route declares who may call it with an identity dependency
(:mod:`kefu_core.admin.dependencies`) and audits every change (:mod:`kefu_core.admin.audit_trail`).
"""

from fastapi import APIRouter

from kefu_core.admin.routers import (
    audit,
    canned_replies,
    conversations,
    curated_answers,
    engine_trial,
    engines,
    health,
    knowledge,
    knowledge_files,
    learned_answers,
    missing_knowledge,
    offline_messages,
    personal_data,
    prompts,
    reports,
    retention,
    service_reports,
    sessions,
    settings,
    team,
    tenants,
    visitor,
    widget_keys,
    workbench,
)

__all__ = ["ROUTERS", "TAGS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router, visitor.router, sessions.router, tenants.router, conversations.router,
    offline_messages.router, canned_replies.router, team.router, widget_keys.router,
    settings.router, prompts.router,
    workbench.router, engines.router, engine_trial.router, knowledge.router,
    knowledge_files.router, curated_answers.router, missing_knowledge.router,
    learned_answers.router, reports.router, service_reports.router, audit.router,
    personal_data.router, retention.router, personal_data.super_router,
)

# OpenAPI tag descriptions (Swagger UI groups routes by tag): who may call each group.
TAGS: list[dict[str, str]] = [
    {"name": "public", "description": "No token: health, visitor tokens, agent sign-in."},
    {"name": "session", "description": "Anyone signed in: refresh the token, sign out, whoami."},
    {"name": "tenants", "description": "The super-admin (organisation `_root`) only."},
    {"name": "conversations", "description": "Agents and admins of the tenant."},
    {"name": "team", "description": "Admins: agents, roles, revocation."},
    {"name": "widget", "description": "Admins: widget keys and the identity secret."},
    {"name": "settings", "description": "Admins: the tenant's settings and prompts."},
    {"name": "workbench", "description": "Admins: the tuning workbench (draft prompt and "
                                         "knobs, side-by-side answers, publish, roll back)."},
    {"name": "engines", "description": "Admins: the tenant's engine chain and its secrets."},
    {"name": "knowledge", "description": "Admins: the knowledge base (documents, file "
                                         "uploads, chunks, a search tester)."},
    {"name": "learning", "description": "Admins, and agents when the tenant's "
                                        "`agents_curate` allows: curated answers; "
                                        "admins: the missing-knowledge queue and the "
                                        "answers learned from agents."},
    {"name": "reports", "description": "Admins: CSAT figures and service reports."},
    {"name": "audit", "description": "Admins: the audit log."},
    {"name": "personal data", "description": "Admins: a customer's export and erasure, the "
                                             "retention settings; the super-admin for any "
                                             "tenant (docs/data-protection.md)."},
]
