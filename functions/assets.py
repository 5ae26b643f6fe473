"""GET /api/hubcap.js: the tracker script (workers/assets.py decides caching and encoding)."""

import json

import azure.functions as func

from workers.assets import AssetMissing, tracker_response

bp = func.Blueprint()


@bp.route(route="api/hubcap.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hubcap_js(req: func.HttpRequest) -> func.HttpResponse:
    try:
        out = tracker_response(dict(req.params), {k.lower(): v for k, v in req.headers.items()})
    except AssetMissing as error:
        body = json.dumps({"error": error.code, "message": error.message})
        return func.HttpResponse(body, status_code=error.status, mimetype="application/json")
    # mimetype too: the Functions worker may fill Content-Type from it.
    return func.HttpResponse(
        out.body, status_code=out.status, headers=out.headers, mimetype="text/javascript"
    )
