"""Running the same work in several threads at the same moment (two workers, two scheduler
ticks): each in its own app context and session, released together by a barrier."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from app.extensions import db


def at_once(app: Any, work: Callable[[], Any], count: int = 2, timeout: float = 60) -> list[Any]:
    """``work()`` in ``count`` threads started together; their results in finishing order.
    An exception in a thread is raised here (a thread's failure fails the test)."""
    barrier, results, errors = threading.Barrier(count), [], []

    def run() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=timeout)
                results.append(work())
            except BaseException as exc:  # re-raised in the test's thread below
                errors.append(exc)
                barrier.abort()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    assert len(results) == count, "a thread did not finish in time"
    return results
