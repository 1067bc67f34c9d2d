"""Chat plumbing: how a message travels and is kept.

The WebSocket frame protocol (:mod:`.protocol`, the one place frames are shaped), conversations
and messages in PostgreSQL (:mod:`.conversations`, the zero-loss part), the connection registry
in Redis (:mod:`.connections`), posting frames and invoking the stream function
(:mod:`.transport`), sending frames to a connection or to a conversation's watchers
(:mod:`.delivery`), delta batching (:mod:`.streaming`), which replies are still being streamed
(:mod:`.liveness`) and the API Gateway WebSocket event shapes (:mod:`.events`).
Nothing here knows about tenants' settings, handoff or answers.
"""
