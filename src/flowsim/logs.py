"""Logging for workflow jobs: everything goes to the job's log file and to the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

__all__ = ["job_logging"]

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@contextlib.contextmanager
def job_logging(log_path: str | os.PathLike[str] | None, level: int = logging.INFO) -> Iterator[None]:
    """Send log records to ``log_path`` and stderr; record any exception before re-raising it
    (``sys.exit()`` with no or a zero code is a success, not a failure).

    Snakemake shows stderr on the terminal and keeps the log file next to the job's outputs,
    so a failure can be read in either place with its full traceback.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    root = logging.getLogger()
    previous = (root.level, list(root.handlers))
    root.handlers = []
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    except SystemExit as exc:  # a deliberate exit: its message says it all, no traceback
        if exc.code not in (None, 0):
            logging.getLogger("flowsim").error("job failed: %s", exc.code)
        raise
    except BaseException:
        logging.getLogger("flowsim").exception("job failed")
        raise
    finally:
        for handler in handlers:
            handler.close()
        root.setLevel(previous[0])
        root.handlers = previous[1]
