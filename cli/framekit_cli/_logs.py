"""Server logging for operators: text for people, JSON lines for log shippers."""

from __future__ import annotations

import enum
import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["LogFormat", "LogLevel", "setup_logging"]


class LogLevel(enum.StrEnum):
    """The levels ``--log-level`` accepts."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    """``--log-format``: one line of text, or one JSON object, per record."""

    TEXT = "text"
    JSON = "json"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted already (a record a worker process forwarded)
            doc["traceback"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: LogLevel, form: LogFormat, *, debug: bool) -> None:
    """Send framekit's log to stderr, at ``level`` (debug with ``--debug``)."""
    handler = logging.StreamHandler(sys.stderr)
    if form is LogFormat.JSON:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else level.upper())
