"""Handoff between the assistant and human agents, in three layers:

- :mod:`.repository`: the shared state in Redis (presence, load, queue, round-robin, failed
  replies), one instance per process on :class:`~kefu_core.deps.Deps` (``deps.handoff``);
- :mod:`.moves`: the state machine (request, assign, take over, transfer, release, close, and
  the check after each reply);
- :mod:`.notify`: what each step tells the visitor, the agent and the tenant's consoles;
- :mod:`.context`: what the moves use of the process's ``Deps`` (a protocol: the product layer
  does not import the composition root).

Import from the modules: this package imports none of them, so the composition root can
import the repository without loading the moves.
"""
