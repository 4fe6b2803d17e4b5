"""Logging for the workflow's entry scripts: everything goes to the rule's log file."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def logged_step(log_path: str | Path | None, step: str):
    """Send logging to ``log_path`` and log any exception (with traceback) before re-raising it."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    logger = logging.getLogger(f"plateflow.{step}")
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield logger
    except Exception:
        logger.exception("%s failed", step)
        raise
    # bench/bench_example.py reads this line to separate the work from the job's start-up.
    logger.info("%s done: work %.3f s wall, %.3f s cpu", step, time.perf_counter() - wall,
                time.process_time() - cpu)
