"""What the assistant answers with.

Which engine chain answers a tenant (:mod:`.tenant_engines`), the memory layer's wiring into the
reply (:mod:`.memory`: knowledge passages, short- and long-term memory, business records) and
the language-model condenser of the search query (:mod:`.query_condenser`).
Imported only by the functions that answer (stream, agent suggestions): jieba and the
tokenizers stay out of the cold start of ``connect`` and ``message``.
"""
