"""stream's OnFailure queue: settle replies whose stream invocation failed, tell the visitor."""
from kefu_core.cold_start import imports_without_gc

with imports_without_gc():
    from kefu_core.flows import handle_stream_failures
    from kefu_core.lambda_runtime import sqs_handler

    lambda_handler = sqs_handler(handle_stream_failures)
