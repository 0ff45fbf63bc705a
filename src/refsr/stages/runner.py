"""Glue shared by the Snakemake rule scripts in ``scripts/``.

A rule script is three lines: import its stage function, and hand it to
:func:`run` together with the ``snakemake`` object. ``run`` sends logging to
the rule's ``log:`` file, sets the thread count from ``threads:``, keeps freed memory in the
process (:mod:`refsr.core.heap`), and turns a
:class:`~refsr.core.errors.RefsrError`, and the machine's faults that
:func:`~refsr.core.errors.user_error` knows (``OSError``: a full disk, a folder that cannot
be written; running out of memory), into one clear line and a non-zero exit instead of a
traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from refsr.core.errors import user_error
from refsr.core.heap import keep_freed_memory
from refsr.pipeline import jobs

log = logging.getLogger("refsr")


def setup_logging(logfile: str | None = None, level: int = logging.INFO) -> None:
    """Log to ``logfile`` (and stderr) with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, mode="w"))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def settings(smk) -> dict:
    """The job's settings (:data:`refsr.pipeline.jobs.SETTINGS`: memory budget, logging and
    saving intervals), which change no output and so are not params. The one place a stage's
    values come from the config rather than its params."""
    return jobs.settings(smk.config)


def run(stage: Callable[[object], None], smk) -> None:
    """Run ``stage(smk)`` as a rule body: logging, threads, one-line errors; an interrupt
    (Ctrl-C) is one log line and exit status 130."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    keep_freed_memory()
    try:
        import torch

        torch.set_num_threads(max(1, int(smk.threads)))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    log.info("rule %s started", smk.rule)
    try:
        stage(smk)
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: one line, the shell's exit status for it
        log.error("rule %s interrupted", smk.rule)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - user_error decides; a bug keeps its traceback
        err = user_error(exc, where=f"rule {smk.rule}")
        if err is None:
            raise
        log.error("%s", err)
        sys.exit(1)
    log.info("rule %s finished", smk.rule)
