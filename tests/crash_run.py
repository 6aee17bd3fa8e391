"""`python crash_run.py BOUNDARY ARGS...`: `newsbeam ARGS...`, killed with SIGKILL at one write boundary.

Boundaries:
  state:NAME       just after the first file of DIR/_state/NAME is written
  table:NAME       just after the first file of that table is written
  manifest:before  every file written and checked, the manifest (the commit) not yet written
  manifest:after   the manifest written, the run's own clean-up of its id's other files not yet done
  launcher         the pipeline finished and committed; the launcher's counters and sweep not yet done
  compact:STEP     `newsbeam compact` killed after STEP (compact_cmd's stop_after points): journal, files
                   (all written and read back, not committed), commit (the manifest written), swap (one
                   partition swapped in)

A kill, not an exception: nothing gets to clean up, as when the machine dies or the OOM killer strikes.
"""

from __future__ import annotations

import os
import signal
import sys


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(boundary: str) -> None:
    kind, _, name = boundary.partition(":")
    if kind in ("state", "table"):
        from newsbeam.transforms import write

        original = write.write_file
        folder = f"/_state/{name}/" if kind == "state" else f"/{name}/"

        def write_file(path, data, expected_rows=None):
            rows = original(path, data, expected_rows)
            if folder in path:
                die()
            return rows

        write.write_file = write_file
    elif kind == "manifest":
        from newsbeam.transforms import commits

        original_write = commits.write_manifest

        def write_manifest(out, run_id, payload):
            if name == "before":
                die()
            path = original_write(out, run_id, payload)
            die()
            return path

        commits.write_manifest = write_manifest
    elif kind == "compact":
        from newsbeam.pipeline import compact_cmd

        original_compact = compact_cmd._compact

        def compact_then_die(out, plan, now, stop_after):
            original_compact(out, plan, now, name)
            die()

        compact_cmd._compact = compact_then_die
    elif kind == "launcher":
        from newsbeam.pipeline import job

        job.committed_manifest = lambda *args, **kwargs: die()
    else:
        raise SystemExit(f"unknown boundary {boundary!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from newsbeam.pipeline.cli import main

    sys.exit(main(sys.argv[2:]))
