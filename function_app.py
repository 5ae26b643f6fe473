"""Azure Functions entry point: create the app and register one blueprint per trigger."""

import azure.functions as func

from functions.assets import bp as assets_bp
from functions.capture import bp as capture_bp
from functions.collect import bp as collect_bp
from functions.compact import bp as compact_bp
from functions.links import bp as links_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(collect_bp)
app.register_functions(capture_bp)
app.register_functions(assets_bp)
app.register_functions(compact_bp)
# Last: its `{slug}` route sits at the root, beside the literal api/ routes above.
app.register_functions(links_bp)
