"""Structured logs: one JSON object per line on stderr, for every process of the service.

`configure_logging` is called once by the `warmzoo serve` and `warmzoo worker` commands (never
on import, so that tests and embedding applications keep their own logging). Every record
becomes `{"ts", "level", "logger", "message", ...}` plus the `extra={...}` fields it was
logged with (`event`, `job_id`, `route`, ...) and, inside an HTTP request, `request_id`.

Events worth a dashboard carry a stable `event` name: `http.request` (the access log),
`job.claimed`, `job.progress` (debug), `job.succeeded`, `job.failed`, `job.canceled`,
`job.requeued`, `job.lease_lost`.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

LEVELS = ("critical", "error", "warning", "info", "debug")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the HTTP request being served (set by the metrics middleware), or None."""

# Attributes every LogRecord has: anything else on a record came from `extra=` and is logged.
# Also skipped: uvicorn's `color_message`, and the stamp Ray's record factory adds after ray.init.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message", "_ray_timestamp_ns"}
_MAX_REQUEST_ID = 200
_ids = random.Random()  # seeded from os.urandom once


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON; values JSON cannot hold are written with `str`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every logger's records at `level` and above to `stream` (stderr) as JSON lines.

    Replaces the root logger's handlers, so calling it twice does not double the lines.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings become `py.warnings` records, JSON like the rest
    for noisy in ("httpx", "httpcore", "multipart"):
        # one line per outgoing request or parsed form part is debug detail, not info
        logging.getLogger(noisy).setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)


def valid_request_id(value: str | None) -> str:
    """The client's X-Request-ID if it is a sane token (printable ASCII, at most 200 characters),
    else a fresh one: a request id ends up in every log line, so it must not inject anything."""
    if value and len(value) <= _MAX_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    # Not uuid4: its os.urandom releases the GIL, and under load the event loop then waits up to
    # a switch interval to get it back from the threadpool. An id need not be unpredictable.
    return f"{_ids.getrandbits(128):032x}"
