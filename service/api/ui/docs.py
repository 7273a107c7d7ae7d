"""`/docs`: Swagger UI from the `swagger-ui-bundle-v2` package, served by this server.

FastAPI's own page loads Swagger UI from a CDN (blank offline, and a Content-Security-Policy
would have to allow that CDN) and starts it with an inline script (which the policy forbids).
This page takes the same assets from the installed package, under `/docs/static`, and starts
them from `/ui/static/js/docs.js`. There is no `/redoc`: no package ships ReDoc's assets.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>warmzoo API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/ui/static/js/docs.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)
router.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-ui")


@router.get("/docs")
def docs() -> HTMLResponse:
    return HTMLResponse(PAGE)
