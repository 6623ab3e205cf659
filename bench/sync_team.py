"""The randomised team-editing run at ten times its CI size, on demand (issue 21).

    .venv/bin/python -m bench.sync_team [--scale 10] [--seed N] [--avoid all|none|kind,...]
                                        [--backend xlsx|gsheets|both]

Runs ``tests/sync/test_team_editing.py`` through pytest (its fixtures build the app and the
org) with ``TEAM_EXAMPLES`` = scale x the CI default, a fresh seed (printed, so a run can be
repeated with ``--seed``), and ``TEAM_COLLECT``: a failing script is recorded and the run goes
on instead of stopping and shrinking. Prints per backend: examples, rounds, runs, seconds,
examples per second, and each fault found (kind, what a user would notice, the script that
reached it; paste the script into ``tests.sync.team.play`` to replay it and shrink by hand).
``--avoid none`` lets the generator reach the known, unfixed fault kinds again
(``tests.sync.team.KNOWN_FAULTS``)."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI_EXAMPLES = 70  # tests/sync/test_team_editing.py's default per backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10, help="times the CI size (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: a fresh one)")
    parser.add_argument("--avoid", default="all", help="known fault kinds to avoid: all, none or a list")
    parser.add_argument("--backend", choices=("xlsx", "gsheets", "both"), default="both")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 31)
    found = Path(tempfile.mkdtemp(prefix="crm-team-")) / "found.jsonl"
    env = {**os.environ, "TEAM_EXAMPLES": str(CI_EXAMPLES * args.scale), "TEAM_SEED": str(seed),
           "TEAM_COLLECT": str(found), "TEAM_AVOID": args.avoid}
    selected = [] if args.backend == "both" else ["-k", args.backend]
    print(f"seed {seed}, {CI_EXAMPLES * args.scale} examples per backend, avoid={args.avoid}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/sync/test_team_editing.py", *selected], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if not found.exists():
        print(result.stdout[-3000:], result.stderr[-3000:])
        return 1
    faults = 0
    for line in found.read_text(encoding="utf-8").splitlines():
        figures = json.loads(line)
        seconds = figures["seconds"] or 1
        print(f"{figures['backend']:8} examples {figures['examples']}  rounds {figures['rounds']}  runs "
              f"{figures['runs']}  {figures['seconds']} s  {figures['examples'] / seconds:.2f} examples/s  "
              f"faults found {len(figures['faults'])}")
        for fault in figures["faults"]:
            faults += 1
            print(f"  [{fault['kind']}] {fault['detail']}\n      {fault['script']}")
    return 1 if faults or result.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
