"""Request IDs, and log lines as JSON objects (`log_format: json`) for a log collector.

Every request gets an ID: the client's `X-Request-ID` when it is a short plain token (so a
gateway's ID follows the request through), a fresh one otherwise. It is sent back in the
response's `X-Request-ID`, and every log line written while the request runs carries it, so an
error in the log can be matched with the response a client saw. Nothing secret goes into a
line: keys are never logged, callers by their key's name, listeners by pseudonym.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time

REQUEST_ID = contextvars.ContextVar("cadenza_request_id", default=None)
CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(header: str | None) -> str:
    """The client's X-Request-ID if it is a plain token of at most 64 characters, else new."""
    if header and CLIENT_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


class RequestIdFilter(logging.Filter):
    """Puts the running request's ID on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, and any `fields`
    passed as `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        line |= getattr(record, "fields", None) or {}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def use_json_logs() -> None:
    """Every handler of the root logger writes JSON, and uvicorn's loggers go through them
    (cli/serve.py starts uvicorn with log_config=None, so it adds no handlers of its own)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
