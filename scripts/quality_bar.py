"""Print the separation quality bar of a main-job run and record it in BENCHMARKS.md.

    ./demo.sh                                           # python -m pipeline run --out runs/demo
    .venv/bin/python scripts/quality_bar.py runs/demo   # table + checks → stdout and BENCHMARKS.md

Exit status 0 when every claim of the bar is met, 1 when one is not.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.qualitybar import check_bar, report, write_section  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a `python -m pipeline run` folder with evaluation/summary.json")
    parser.add_argument("--benchmarks", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md",
                        help="the Markdown file to update (default: BENCHMARKS.md)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="only print")
    args = parser.parse_args()
    if not (args.run_dir / "evaluation" / "summary.json").is_file():
        sys.exit(f"error: {args.run_dir}/evaluation/summary.json not found (run `python -m pipeline run` first)")
    body = report(args.run_dir)
    print(body)
    if not args.no_write:
        write_section(args.benchmarks, body)
        print(f"\nwritten to {args.benchmarks}")
    import json

    summary = json.loads((args.run_dir / "evaluation" / "summary.json").read_text())
    sys.exit(0 if all(c.met for c in check_bar(summary)) else 1)
