"""A customer's personal data on request (access and erasure) and on schedule (retention).

- :func:`export_customer`: everything Kefu holds about one visitor or signed-in customer, as
  one JSON document with a readable summary (an access request).
- :func:`erase_customer`: removes it from PostgreSQL and Redis (a deletion request);
  idempotent, and a retry after a partial failure completes it.
- :func:`run_retention`: deletes, per tenant, what is older than its retention settings, in
  short batches; :class:`RetentionScheduler` runs it periodically in the self-hosted gateway
  (one replica at a time), ``functions/retention`` on AWS.

What is stored where, for how long, and the admin API calls: docs/data-protection.md.
"""

from kefu_core.flows.personal_data.erasure import ErasureReport, erase_customer
from kefu_core.flows.personal_data.export import CustomerExport, ExportTooLarge, export_customer
from kefu_core.flows.personal_data.retention import RetentionReport, run_retention
from kefu_core.flows.personal_data.schedule import RetentionScheduler, retention_flow
from kefu_core.flows.personal_data.subject import CustomerRef

__all__ = [
    "CustomerExport",
    "CustomerRef",
    "ErasureReport",
    "ExportTooLarge",
    "RetentionReport",
    "RetentionScheduler",
    "erase_customer",
    "export_customer",
    "retention_flow",
    "run_retention",
]
