"""One role vocabulary (kefu_core.security.roles) for tokens, connections, audit, messages and
frames; one mapping from a message's author to the memory layer's and the model's roles."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import kefu_core
from kefu_core.chat.connections import ConnectionRecord
from kefu_core.chat.conversations import StoredMessage
from kefu_core.chat.protocol import message_frame, typing_frame
from kefu_core.product.audit import AuditEntry
from kefu_core.product.tenants.agents import Agent
from kefu_core.security import roles
from kefu_core.security.tokens import Identity
from kefu_llm import ChatMessage
from kefu_memory import Turn


def _words(kind: object) -> set[str]:
    return set(typing.get_args(kind))


def _field(model: type, name: str) -> object:
    return typing.get_type_hints(model)[name]


def test_every_role_type_is_made_of_the_vocabulary_words() -> None:
    # GIVEN the role types / THEN each is a part of the one vocabulary
    vocabulary = _words(roles.Role)
    assert vocabulary == {"visitor", "agent", "admin", "super", "assistant", "system"}
    for kind in (roles.TokenRole, roles.StaffRole, roles.ActorType, roles.MessageRole):
        assert _words(kind) <= vocabulary, kind
    assert roles.STAFF_ROLES == _words(roles.StaffRole)


def test_tokens_connections_audit_messages_and_agents_use_the_vocabulary() -> None:
    # GIVEN the models that carry a role / THEN their role fields are the vocabulary's types
    assert _field(Identity, "role") == roles.TokenRole
    assert _field(ConnectionRecord, "role") == roles.TokenRole
    assert _field(AuditEntry, "actor_type") == roles.ActorType
    assert _field(StoredMessage, "role") == roles.MessageRole
    assert _field(Agent, "role") == roles.StaffRole
    # AND the frames that name an author use the vocabulary's words
    for builder in (message_frame, typing_frame):
        assert _words(typing.get_type_hints(builder)["role"]) <= _words(roles.Role)


def test_every_message_author_has_a_memory_role_and_a_model_role_or_none() -> None:
    # GIVEN every author of a message
    for author in typing.get_args(roles.MessageRole):
        # WHEN it is named for the memory layer and for the model
        turn = Turn(role=roles.TURN_ROLE[author], content="hi")
        model = roles.MODEL_ROLE.get(turn.role)
        # THEN the memory layer accepts it, and the model sees the visitor as the user, the
        # bot and agents as the assistant, and no system announcements
        expected = {"visitor": "user", "assistant": "assistant", "agent": "assistant"}
        assert model == expected.get(author)
        if model is not None:
            assert ChatMessage(role=model, content="hi").role == model


_WORDS = frozenset(typing.get_args(roles.Role))


def _role_lists(tree: ast.AST) -> list[int]:
    """Lines of a ``Literal[...]`` or a set, list or tuple spelled only with role words."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and (
                getattr(node.value, "id", None) == "Literal"
                or getattr(node.value, "attr", None) == "Literal"):
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        elif isinstance(node, ast.Set | ast.List | ast.Tuple):
            items = node.elts
            if len(items) < 2:
                continue
        else:
            continue
        words = [item.value for item in items if isinstance(item, ast.Constant)]
        if words and len(words) == len(items) and set(words) <= _WORDS:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_roles_are_listed_only_in_the_vocabulary() -> None:
    # GIVEN every module of kefu_core but the vocabulary
    root = Path(kefu_core.__file__).parent
    found = [f"{path.relative_to(root)}:{line}"
             for path in sorted(root.rglob("*.py")) if path.name != "roles.py"
             for line in _role_lists(ast.parse(path.read_text(encoding="utf-8")))]
    # THEN none spells a list of roles of its own
    assert found == []


def test_the_role_list_scan_finds_lists_of_roles() -> None:
    code = ('A = Literal["agent", "admin"]\nB = frozenset({"visitor", "system"})\n'
            'C = Literal["button", "agent"]\nD = ("agent",)\n')
    assert _role_lists(ast.parse(code)) == [1, 2]
