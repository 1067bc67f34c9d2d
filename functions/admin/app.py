"""Admin HTTP API: the FastAPI admin app behind API Gateway, through Mangum."""
from kefu_core.admin import create_admin_app
from mangum import Mangum

lambda_handler = Mangum(create_admin_app(), lifespan="off")
