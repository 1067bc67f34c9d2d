"""The customer-service product around a conversation.

Tenants and their resources (:mod:`.tenants`), handoff between the assistant and human agents
(:mod:`.handoff`), the append-only audit log (:mod:`.audit`), what the console shows about a
customer (:mod:`.customer`), notes, ratings and offline messages (:mod:`.service`), safe CSV
exports (:mod:`.csv_export`), whether a staff token still grants access (:mod:`.agent_auth`)
and which pages may use a widget key (:mod:`.widget_origins`). A process builds each store once:
they are fields of :class:`~kefu_core.deps.Deps`.
"""
