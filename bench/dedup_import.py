"""The customer import bench (``bench.import_customers``) with stored duplicate clusters
in place: the database is built, then scanned once, so the import pays the incremental
hooks (dirty rows per flush; the update itself runs in the jobs pool after the commits).

    .venv/bin/python -m bench.dedup_import [--rows 100000] [--existing 10000] [--runs 1]

Compare with ``bench.import_customers`` on the same machine, in the same minute.
"""

from __future__ import annotations

import sys
from typing import Any

from bench import import_customers


def _scan() -> None:
    from app.services import background, dedup_clusters

    held = []
    background.submit = lambda func, *args: held.append((func, args))  # run it here, not in a pool
    dedup_clusters.start_scan(None)
    for func, args in held:
        func(*args)


def _child() -> None:
    """The measured import, then the clusters' catch-up it queued: in a server both run in
    the one jobs worker, one after the other (here the import runs on the main thread)."""
    import time

    import app as package
    from app.services import background

    held, apps, create = [], [], package.create_app
    background.submit = lambda func, *args: held.append((func, args))
    package.create_app = lambda *args: apps.append(create(*args)) or apps[-1]  # the child's app, kept
    import_customers.main()
    started = time.perf_counter()
    with apps[0].app_context():
        for func, args in held:
            func(*args)
    print(f"clusters caught up after the import in {time.perf_counter() - started:.2f} s "
          f"({len(held)} queued job(s))", file=sys.stderr)


def main() -> None:
    if "--build" in sys.argv:
        import_customers.build_database(int(sys.argv[sys.argv.index("--build") + 1]), then=_scan)
        return
    if "--child" in sys.argv:
        _child()
        return
    run = import_customers.subprocess.run

    def via_this_module(command: list[str], *args: Any, **kwargs: Any) -> Any:
        """The bench starts its children as ``bench.import_customers``: build through this one."""
        if "--build" in command or "--child" in command:
            command = [part.replace("bench.import_customers", "bench.dedup_import") for part in command]
        return run(command, *args, **kwargs)

    import_customers.subprocess.run = via_this_module
    import_customers.main()


if __name__ == "__main__":
    main()
