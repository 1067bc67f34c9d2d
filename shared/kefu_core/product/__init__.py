"""The customer-service product around a conversation.

Tenants and their resources (:mod:`.tenants`), handoff between the assistant and human agents
(:mod:`.handoff`), the append-only audit log (:mod:`.audit`), what the console shows about a
customer (:mod:`.customer`), notes, ratings and offline messages (:mod:`.service`), safe CSV
exports (:mod:`.csv_export`) and the stores a process builds once (:mod:`.stores`).
"""
