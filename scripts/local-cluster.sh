#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine: a head node and a second worker raylet, so that
# multi-node behaviour (jobs, placement across nodes, a node going away) can be tried without a
# cloud account. Everything listens on 127.0.0.1.
#
#   scripts/local-cluster.sh up        # head + 1 worker raylet; prints the address to submit to
#   ray job submit --address http://127.0.0.1:8265 --working-dir . \
#       --runtime-env cluster/runtime_env.yaml -- python jobs/preprocess.py --input data/bench --output data/shards
#   scripts/local-cluster.sh status
#   scripts/local-cluster.sh down      # stops this cluster's processes (other Ray instances are left alone)
#
# Settings: RAY_PORT (6380), DASHBOARD_PORT (8265), HEAD_CPUS (2), WORKER_CPUS (2),
# AGENT_PORT (52365; the worker raylet's agent takes the next), RAY_TEMP_DIR (/tmp/ray-local-cluster: the
# cluster's logs and sockets; `down` finds its processes by it).
set -euo pipefail
cd "$(dirname "$0")/.."
RAY=${RAY:-.venv/bin/ray}
[ -x "$RAY" ] || RAY=ray
PORT=${RAY_PORT:-6380}
DASH=${DASHBOARD_PORT:-8265}
TEMP=${RAY_TEMP_DIR:-/tmp/ray-local-cluster}
AGENT=${AGENT_PORT:-52365}  # each raylet's dashboard agent needs its own port on one machine
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1  # allow a second raylet on this machine (Ray calls it "multi-node")
export RAY_USAGE_STATS_ENABLED=0
export PATH="$PWD/.venv/bin:$PATH"          # jobs run `python` from this project's environment

case "${1:-}" in
up)
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --include-dashboard=true \
        --dashboard-host=127.0.0.1 --dashboard-port="$DASH" --num-cpus="${HEAD_CPUS:-2}" --temp-dir="$TEMP" \
        --dashboard-agent-listen-port="$AGENT" --disable-usage-stats
    "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus="${WORKER_CPUS:-2}" \
        --resources='{"local_worker_node": 1}' --temp-dir="$TEMP" --dashboard-agent-listen-port="$((AGENT + 1))" \
        --disable-usage-stats
    echo
    echo "cluster up: 2 nodes. Submit jobs with --address http://127.0.0.1:$DASH (dashboard: same URL);"
    echo "python -m pipeline commands join it with: export RAY_ADDRESS=127.0.0.1:$PORT"
    ;;
status)
    "$RAY" status --address="127.0.0.1:$PORT"
    ;;
down)
    # `ray stop` would stop every Ray on the machine; stop only the processes of this cluster.
    pkill -TERM -f -- "$TEMP" || { echo "no local cluster running (nothing under $TEMP)"; exit 0; }
    for _ in $(seq 30); do pgrep -f -- "$TEMP" >/dev/null || break; sleep 1; done
    pkill -KILL -f -- "$TEMP" || true
    echo "local cluster stopped"
    ;;
*)
    echo "usage: $0 up|status|down" >&2
    exit 2
    ;;
esac
