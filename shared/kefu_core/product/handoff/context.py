"""What handoff uses of the process's :class:`~kefu_core.deps.Deps` (which has all of it), so
the product layer does not import the composition root above it."""

from __future__ import annotations

from typing import Protocol

from kefu_core.chat.conversations import ConversationStore
from kefu_core.chat.delivery import Outbox
from kefu_core.infra.metrics import Metrics
from kefu_core.product.audit import AuditLog
from kefu_core.product.handoff.repository import HandoffRepository
from kefu_core.product.tenants.agents import AgentStore
from kefu_core.product.tenants.settings import SettingsStore

__all__ = ["HandoffDeps"]


class HandoffDeps(Outbox, Protocol):
    @property
    def conversations(self) -> ConversationStore: ...

    @property
    def handoff(self) -> HandoffRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def agents(self) -> AgentStore: ...

    @property
    def tenant_settings(self) -> SettingsStore: ...

    @property
    def metrics(self) -> Metrics: ...
