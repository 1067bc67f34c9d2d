"""``kefu local``: what ``sam deploy`` ships, run on this machine the way AWS runs it.

``sam local`` cannot serve WebSocket APIs and needs Docker; this runner needs neither. It reads
the built template (``.aws-sam/build/template.yaml``) and runs:

- every function in its own worker processes, started as the python3.12 Lambda runtime starts
  them (the official runtime interface client against our Lambda Runtime API, the function
  folder, the layers merged as ``/opt``, boto3 and nothing else of the project's environment),
  with the environment the template gives it (``KEFU_ENV=production``), ``Timeout`` and
  ``MemorySize`` enforced (:mod:`.functions`, :mod:`.runtime`, :mod:`.template`);
- the API Gateway WebSocket API with its management API: the self-hosted gateway's contract,
  each route invoking its function (:mod:`.websocket`);
- the admin HTTP API, payload format 2.0 (:mod:`.http_api`);
- the Lambda Invoke API, for ``message``'s asynchronous invoke of ``stream`` (:mod:`.lambda_api`);
- Secrets Manager on moto's server, with the token secret created (:mod:`.aws`);
- PostgreSQL + pgvector and Redis embedded unless ``DatabaseUrl``/``RedisUrl`` are given.

See docs/deploy.md, "The deployed shape, locally".
"""

from kefu_core.local.errors import LocalStackError
from kefu_core.local.stack import LocalOptions, LocalStack, run_local

__all__ = ["LocalOptions", "LocalStack", "LocalStackError", "run_local"]
