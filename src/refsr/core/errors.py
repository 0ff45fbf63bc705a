"""The one exception type users see: a one-line message naming the file or key and the problem."""


class RefsrError(Exception):
    """A user-facing error. ``str(err)`` is a single line: ``<file or key>: <problem>``."""

    def __init__(self, where, problem: str):
        self.where = str(where)
        self.problem = " ".join(str(problem).split())  # force one line
        super().__init__(f"{self.where}: {self.problem}")
