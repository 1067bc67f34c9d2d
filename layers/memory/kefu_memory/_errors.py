"""Exceptions raised by kefu_memory.

Tree::

    KefuMemoryError                 base of everything this package raises
    ├── StoreError                  Redis or PostgreSQL failed (the driver error is the __cause__)
    ├── MigrationError              a schema migration could not be applied
    ├── EmbedderError               an embedder failed or returned vectors of the wrong shape
    │   └── EmbedderMismatchError   stored vectors were made by another embedder (name or dim)
    ├── IngestError                 a document could not be ingested
    │   └── UnsupportedContentType  the content type is not one we can parse
    ├── ExtractionError             a fact extractor returned something unusable
    └── CrmError                    the CRM did not answer as the contract says
        └── CrmNotFound             the CRM answered 404 for the customer
"""

from __future__ import annotations

__all__ = [
    "CrmError",
    "CrmNotFound",
    "EmbedderError",
    "EmbedderMismatchError",
    "ExtractionError",
    "IngestError",
    "KefuMemoryError",
    "MigrationError",
    "StoreError",
    "UnsupportedContentType",
]


class KefuMemoryError(Exception):
    """Base class of every error raised by kefu_memory."""


class StoreError(KefuMemoryError):
    """Redis or PostgreSQL failed."""


class MigrationError(KefuMemoryError):
    """A schema migration could not be applied."""


class EmbedderError(KefuMemoryError):
    """An embedder failed or returned vectors of the wrong shape."""


class EmbedderMismatchError(EmbedderError):
    """Stored vectors were made by a different embedder than the one in use."""


class IngestError(KefuMemoryError):
    """A document could not be ingested."""


class UnsupportedContentType(IngestError):
    """The content type is not one the knowledge base can parse."""


class ExtractionError(KefuMemoryError):
    """A fact extractor returned something unusable."""


class CrmError(KefuMemoryError):
    """The CRM failed or did not answer as the contract says."""


class CrmNotFound(CrmError):
    """The CRM does not know the customer."""
