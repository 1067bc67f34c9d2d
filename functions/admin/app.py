"""Admin HTTP API: the FastAPI admin app behind API Gateway, through Mangum."""
from mangum import Mangum

from kefu_core.admin import create_admin_app
from kefu_core.logs import lambda_logger

logger = lambda_logger()  # redacted JSON log lines, as the WebSocket functions write
lambda_handler = Mangum(create_admin_app(), lifespan="off")
