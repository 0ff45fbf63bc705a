"""Argument parsing for the ``refsr`` command: one-line errors and validating types.

Every option of the command takes one of the types below, so a bad value is refused while
the command line is parsed, before any work, with the one line every refsr error has::

    refsr: error: --tile: must be an integer >= 0, got '-1'

:class:`Parser` turns argparse's own complaints (a missing required option, an unknown
choice, an unrecognised argument) into the same one line (exit status 1) instead of a usage
block. The output types (:func:`output_file`, :func:`output_image`, :func:`output_dir`) run
:func:`refsr.core.atomic.check_writable` at parse time: an output that is a folder, has an
unsupported extension or sits in a folder that cannot be written fails before the work.
New options use these types (``type=positive_int``, ``type=output_image``, ...).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from refsr.core.atomic import check_writable
from refsr.core.errors import RefsrError


class UsageError(RefsrError):
    """A command line the parser refuses (``where`` is the option or argument)."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one-line :class:`UsageError` s."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        missing = re.match(r"the following arguments are required: (.*)$", message)
        if missing:
            names = [n.strip() for n in missing.group(1).split(",")]
            raise UsageError(", ".join(names), self._required_problem(names))
        m = re.match(r"argument ([^:]+): (.*)$", message)
        if m:
            raise UsageError(m.group(1), m.group(2))
        raise UsageError("command line", f"{message} (see {self.prog} --help)")

    def _required_problem(self, names: list[str]) -> str:
        if len(names) != 1:
            return f"required, missing (see {self.prog} --help)"
        for action in self._actions:
            if names[0] in action.option_strings or names[0] == action.dest:
                if action.choices:
                    return f"required: one of {', '.join(map(str, action.choices))}"
                if action.help and action.help != argparse.SUPPRESS:
                    return f"required: {action.help}"
        return f"required, missing (see {self.prog} --help)"


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number ``> 0`` (``nan``, ``inf``, 0 and negatives refused)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def device(text: str) -> str:
    """An argparse type: ``cpu``, ``cuda`` or ``cuda:N`` that this machine has."""
    from refsr.core.device import check_device

    try:
        return check_device(text)
    except RefsrError as err:
        raise argparse.ArgumentTypeError(err.problem) from None


def output_file(suffixes: Iterable[str] | None = None) -> Callable[[str], Path]:
    """An argparse type: a file the command will write, checked now (see ``check_writable``)."""
    allowed = tuple(suffixes) if suffixes is not None else None

    def parse(text: str) -> Path:
        return check_writable(text, allowed)

    parse.__name__ = "output file"
    return parse


def output_image(text: str) -> Path:
    """An argparse type: an image file the command will write (``IMAGE_EXTENSIONS``)."""
    from refsr.core.imageio import IMAGE_EXTENSIONS

    return check_writable(text, IMAGE_EXTENSIONS)


def output_dir(text: str) -> Path:
    """An argparse type: a folder the command will write (created if missing)."""
    return check_writable(text, folder=True)


def boolean(text: str) -> bool:
    """``true``/``false`` (also ``yes``/``no``, ``1``/``0``), any case."""
    value = str(text).strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
