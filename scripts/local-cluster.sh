#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine: a head node and a second worker raylet, so that
# multi-node behaviour (jobs, placement across nodes, a node going away) can be tried without a
# cloud account. Everything listens on 127.0.0.1.
#
#   scripts/local-cluster.sh up        # head + 1 worker raylet; prints the address to submit to
#   ray job submit --address http://127.0.0.1:8265 --working-dir . \
#       --runtime-env cluster/runtime_env.yaml -- python jobs/preprocess.py --input data/bench --output data/shards
#   scripts/local-cluster.sh status
#   scripts/local-cluster.sh down      # stops every Ray process on this machine (`ray stop`)
#
# Settings: RAY_PORT (6380), DASHBOARD_PORT (8265), HEAD_CPUS (2), WORKER_CPUS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
RAY=${RAY:-.venv/bin/ray}
[ -x "$RAY" ] || RAY=ray
PORT=${RAY_PORT:-6380}
DASH=${DASHBOARD_PORT:-8265}
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0  # every service on 127.0.0.1, not the machine's external address
export RAY_USAGE_STATS_ENABLED=0
export PATH="$PWD/.venv/bin:$PATH"          # jobs run `python` from this project's environment

case "${1:-}" in
up)
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --include-dashboard=true \
        --dashboard-host=127.0.0.1 --dashboard-port="$DASH" --num-cpus="${HEAD_CPUS:-2}" --disable-usage-stats
    "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus="${WORKER_CPUS:-2}" \
        --resources='{"local_worker_node": 1}' --disable-usage-stats
    echo
    echo "cluster up: 2 nodes. Submit jobs with --address http://127.0.0.1:$DASH (dashboard: same URL);"
    echo "python -m pipeline commands on this machine join it automatically."
    ;;
status)
    "$RAY" status --address="127.0.0.1:$PORT"
    ;;
down)
    "$RAY" stop
    ;;
*)
    echo "usage: $0 up|status|down" >&2
    exit 2
    ;;
esac
