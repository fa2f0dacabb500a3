"""Run the battery of bad and unusual inputs (issue 15) and count the outcomes per class.

``python scripts/bad_input_battery.py [--root DIR] [--classes 1,3] [--skip-slow] [--json OUT.json]``

Every case (tests/battery.py: the command line, the API and training config overrides) runs in a
fresh workspace and is classified as clean, traceback, silent wrong output, silent overwrite, refused
(a valid input refused) or unclear. Prints the table of counts and every case that is not clean;
exit status 1 if any is not. ``tests/test_battery.py`` runs the same cases as tests.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.battery import cases, prepare, run_case, table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="work folder (default: a new temporary folder)")
    ap.add_argument("--classes", default="", help="comma-separated class numbers (default: all)")
    ap.add_argument("--skip-slow", action="store_true", help="leave out the cases that refine with the "
                                                             "shipped model or train")
    ap.add_argument("--json", default=None, help="also write every case's outcome here")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    root = prepare(Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="sam-sr-battery-")))
    wanted = {int(c) for c in args.classes.split(",") if c.strip()}
    results = {}
    t0 = time.time()
    for case in cases():
        if (wanted and case.cls not in wanted) or (args.skip_slow and case.slow):
            continue
        outcome, detail = run_case(case, root)
        results[case.id] = (case.cls, outcome, detail)
        print(f"{outcome:>20}  {case.id}" + ("" if outcome == "clean" else f": {detail}"), flush=True)
    print(f"\n{len(results)} cases in {time.time() - t0:.0f} s (work folder {root})\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({k: {"class": c, "outcome": o, "detail": d}
                                               for k, (c, o, d) in results.items()}, indent=1))
    return 0 if all(o == "clean" for _, o, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
