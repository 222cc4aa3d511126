"""Generate the synthetic benchmark as a Ray job (pieces rendered as Ray tasks).

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- python jobs/synth.py --out DIR --preset full

Also runs on a laptop as ``python jobs/synth.py ...`` with an embedded local Ray.
Takes the same arguments as ``python -m pipeline synth`` (see ``--help``).
"""

import sys
from pathlib import Path

# The repository root, for the driver when `pipeline` is not installed (a bare checkout
# on a head node); Ray's workers get it from the job's working directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
