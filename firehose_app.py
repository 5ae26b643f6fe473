"""The real-time Function App's entry point: the same package, only the firehose's, the inspector's and
the live metrics' functions (functions/metrics.py: the metrics sink, /api/metrics, the dashboard).

The second Function App runs this file instead of function_app.py (app setting
PYTHON_SCRIPT_FILE_NAME=firehose_app.py, infra/bicep), so that its Event Hubs batch options, set per
app through AzureFunctionsJobHost__extensions__eventHubs__*, never shape the lake's files; the dev
stack runs it as a second dev-host process (`python -m devstack.host --app firehose_app`). The
inspector (functions/inspect.py) lives here too: its window is in memory, so its trigger and its routes
must share a process, and this app's small, quick batches suit it.
"""

import azure.functions as func

from functions.firehose import bp as firehose_bp
from functions.inspect import bp as inspect_bp
from functions.metrics import bp as metrics_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(firehose_bp)
app.register_functions(inspect_bp)
app.register_functions(metrics_bp)
