"""Benchmarks as a Ray job: every stage against its floor on the same inputs (see BENCHMARKS.md).

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- python jobs/bench.py --out /mnt/bench

Also runs on a laptop as ``python jobs/bench.py --quick`` with an embedded local Ray.
Takes the same arguments as ``python -m pipeline bench`` (see ``--help``).
"""

import sys
from pathlib import Path

# The repository root, for the driver when `pipeline` is not installed (a bare checkout
# on a head node); Ray's workers get it from the job's working directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
