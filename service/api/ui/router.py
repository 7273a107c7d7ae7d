"""Serves the browser UI: `index.html` at `/` and its assets under `/ui/static`.

Pages are addressed by the URL fragment (`/#/models/NAME`), so the server needs only these two
routes and can never shadow the API (`/v1`, `/v2`, `/docs`, `/metrics`, `/healthz`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
router.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


@router.get("/")
def index() -> FileResponse:
    """The page shell; `no-cache` so a new release's assets are picked up at once."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
