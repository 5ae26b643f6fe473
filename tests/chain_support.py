"""The chain of coroutines a request's task resumes through, as the code under test sees it."""

from __future__ import annotations

import sys


def awaiting_chain() -> list[str]:
    """The names of the frames that led to the caller's, outermost first, the caller's last: while a
    task runs, a coroutine's frame was resumed by the one awaiting it, and every one of them is
    resumed again each time the task is."""
    names = []
    frame = sys._getframe(1)
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names[::-1]
