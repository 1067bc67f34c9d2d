"""Admin HTTP API: the FastAPI admin app behind API Gateway, through Mangum."""
from mangum import Mangum

from kefu_core.admin import create_admin_app

lambda_handler = Mangum(create_admin_app(), lifespan="off")
