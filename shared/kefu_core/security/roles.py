"""The one vocabulary of roles: who a token or a connection is for, who did something (the
audit log), who wrote a message, and how the memory layer and the language model name them.

Every word is spelled once, below; the role types are unions of these words, so mypy checks
that a token role, an audit actor or a message role is always one of them:

========== ======================================================= ============================
word       who                                                      appears as
========== ======================================================= ============================
visitor    a widget user                                            token, connection, actor,
                                                                    message author
agent      a tenant's customer-service agent                        token, connection, actor,
                                                                    message author, agent row
admin      a tenant's administrator (a super-admin is an ``admin``  token, connection, actor,
           of the reserved ``_root`` tenant)                        agent row
super      the super-admin, as the admin API's role sets name it    admin API only
assistant  the bot: the replies it wrote                            message author
system     Kefu itself: handoff announcements, CLI actions          actor, message author
========== ======================================================= ============================
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "HUMAN_AUTHORS",
    "MODEL_ROLE",
    "STAFF_ROLES",
    "TURN_ROLE",
    "ActorType",
    "Admin",
    "Agent",
    "Assistant",
    "MessageRole",
    "ModelRole",
    "Role",
    "StaffRole",
    "SuperAdmin",
    "System",
    "TokenRole",
    "TurnRole",
    "Visitor",
]

Visitor = Literal["visitor"]
Agent = Literal["agent"]
Admin = Literal["admin"]
SuperAdmin = Literal["super"]
Assistant = Literal["assistant"]
System = Literal["system"]

Role = Literal[Visitor, Agent, Admin, SuperAdmin, Assistant, System]
TokenRole = Literal[Visitor, Agent, Admin]  # a token's ``role`` claim, a connection's role
StaffRole = Literal[Agent, Admin]  # an agent row's role; staff tokens and connections
ActorType = Literal[Visitor, Agent, Admin, System]  # who did something (the audit log)
MessageRole = Literal[Visitor, Assistant, Agent, System]  # who wrote a message

STAFF_ROLES: Final[frozenset[StaffRole]] = frozenset({"agent", "admin"})
# The people in a conversation: a visitor and the human agent who answers (not the assistant)
HUMAN_AUTHORS: Final[frozenset[MessageRole]] = frozenset({"visitor", "agent"})

# How the memory layer (kefu_memory.Turn) and the language model name a message's author.
TurnRole = Literal["user", "assistant", "agent", "system"]
ModelRole = Literal["user", "assistant"]
TURN_ROLE: Final[dict[MessageRole, TurnRole]] = {
    "visitor": "user", "assistant": "assistant", "agent": "agent", "system": "system",
}
# The model sees the visitor as the user and both the bot and agents as the assistant;
# system messages (handoff announcements) are not part of the conversation it continues.
MODEL_ROLE: Final[dict[TurnRole, ModelRole]] = {
    "user": "user", "assistant": "assistant", "agent": "assistant",
}
