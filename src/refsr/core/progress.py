"""Progress reporting that lands in the rule's log file: tqdm writing through ``logging``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _LogWriter:
    """A file-like object that forwards tqdm's lines to a logger."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            self.logger.info(text)

    def flush(self) -> None:
        pass


def progress(items: Iterable[T], desc: str, total: int | None = None,
             logger: logging.Logger | None = None, every_s: float = 5.0) -> Iterator[T]:
    """Iterate ``items`` logging a tqdm progress line at most every ``every_s`` seconds."""
    writer = _LogWriter(logger or logging.getLogger("refsr.progress"))
    yield from tqdm(items, desc=desc, total=total, mininterval=every_s, file=writer, ascii=True)
