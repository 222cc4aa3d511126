"""Evaluate checkpoints on the test split as a Ray job (inference actors on GPUs when evaluate.gpus_per_worker > 0).

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- python jobs/evaluate.py --shards /mnt/shards \
        --checkpoint /mnt/runs/music_gesture/final --checkpoint /mnt/runs/audio_only/final \
        --output /mnt/eval --workers 8 --set evaluate.gpus_per_worker=1

Also runs on a laptop as ``python jobs/evaluate.py ...`` with an embedded local Ray.
Takes the same arguments as ``python -m pipeline evaluate`` (see ``--help``).
"""

import sys
from pathlib import Path

# The repository root, for the driver when `pipeline` is not installed (a bare checkout
# on a head node); Ray's workers get it from the job's working directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
