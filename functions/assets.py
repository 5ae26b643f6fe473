"""GET /api/hubcap.js: the tracker script (workers/assets.py decides caching and encoding)."""

import azure.functions as func

from workers import logs
from workers.assets import AssetMissing, tracker_response
from workers.collect.http import JSON, http_error_response

bp = func.Blueprint()


@bp.route(route="api/hubcap.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hubcap_js(req: func.HttpRequest) -> func.HttpResponse:
    logs.configure()
    try:
        out = tracker_response(dict(req.params), {k.lower(): v for k, v in req.headers.items()})
    except AssetMissing as error:
        answer = http_error_response(error)
        return func.HttpResponse(
            answer.body, status_code=answer.status, headers=answer.headers, mimetype=JSON
        )
    # mimetype too: the Functions worker may fill Content-Type from it.
    return func.HttpResponse(
        out.body, status_code=out.status, headers=out.headers, mimetype="text/javascript"
    )
