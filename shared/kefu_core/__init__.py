"""Kefu core: the chat service around the LLM adapter (kefu_llm) and the memory layer (kefu_memory).

Packages, from the wire inwards:

- :mod:`kefu_core.chat`: chat plumbing. The WebSocket frame protocol, conversations and
  messages in PostgreSQL, the connection registry, posting frames, delta batching, liveness.
- :mod:`kefu_core.flows`: what each API Gateway route (and the stream function) does; the
  Lambda handlers and the self-hosted gateway both call these.
- :mod:`kefu_core.product`: the customer-service product: tenants and their resources, handoff
  to human agents, the audit log, customer context, notes, ratings and offline messages.
- :mod:`kefu_core.answers`: what the assistant answers with: per-tenant engine chains, the
  memory layer's wiring, the query condenser.
- :mod:`kefu_core.security`: who may do what: tokens and their secrets, staff access, sign-in
  throttling, widget origins, rate limits, encryption at rest, body size limits.
- :mod:`kefu_core.infra`: settings, PostgreSQL and its schema, logs, metrics, tracing, the
  Lambda runtime glue and the embedded services of ``kefu run``.
- :mod:`kefu_core.gateway`: the self-hosted API-Gateway-compatible WebSocket gateway.
- :mod:`kefu_core.admin`: the admin HTTP API (FastAPI; Mangum on Lambda) and ``kefu admin``.
- :mod:`kefu_core.local`: ``kefu local``, the SAM template run on this machine as AWS runs it.

:mod:`kefu_core.deps` is the composition root every flow receives; :mod:`kefu_core.cli` is the
``kefu`` command. Dependencies point one way: flows -> product/answers -> chat -> infra;
security is used by all of them; nothing in the libraries (kefu_llm, kefu_memory) imports
kefu_core.
"""
