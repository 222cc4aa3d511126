"""Connecting to Ray: the cluster a job was submitted to, a cluster running here, or an embedded one.

Under ``ray job submit`` (or with ``RAY_ADDRESS`` set) ``init_ray`` joins that
cluster; on a machine where ``ray start`` runs a live cluster, it joins that one.
Otherwise it starts a local Ray inside this process, bound to 127.0.0.1, without
dashboard or usage reporting, with a small object store. A cluster file left by
a stopped cluster is ignored (joining it would hang).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)

# Local Ray on a 2-core laptop: logical CPUs above the physical count, so that a
# Ray Train worker group cannot take every CPU and starve the data readers (a hang).
MIN_LOCAL_CPUS = 4


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` / ``$RAY_ADDRESS``, or start a local Ray. Idempotent."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or running_cluster()
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)
        return
    for key, value in (
        ("RAY_USAGE_STATS_ENABLED", "0"),
        ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),  # keeps every service on 127.0.0.1
        ("RAY_AUTH_MODE", "disabled"),
    ):
        os.environ.setdefault(key, value)
    cpus = num_cpus or max(MIN_LOCAL_CPUS, os.cpu_count() or 1)
    log.info("starting a local Ray with %d logical CPUs", cpus)
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=512 * 1024**2,
        log_to_driver=True,
        configure_logging=True,
        logging_level=logging.WARNING,
        runtime_env={"worker_process_setup_hook": "pipeline.raysession.quiet_workers"},
    )


# Loggers of Ray's own that repeat themselves in the embedded Ray's workers, each with the reason.
QUIET_LOGGERS = {
    # Ray Train's placement-group cleaner asks the state API, which lives in the dashboard, every
    # second whether the controller is alive; without a dashboard each answer is a warning (3,071
    # lines over one demo's training). Its job, removing the workers' placement group should the
    # controller die, needs that API anyway; an embedded Ray's groups go with its process.
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
    # Ray Data's "Dataset ... execution finished in N seconds", from the training workers and their
    # split coordinator on every pass over a split: three lines an epoch. (The driver's own stages,
    # preprocess and evaluate, keep theirs: it is not a worker.)
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
}


def quiet_workers() -> None:
    """Runs in every worker process of the embedded Ray: ``QUIET_LOGGERS`` at their levels."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def running_cluster(cluster_file: Path = Path("/tmp/ray/ray_current_cluster"), timeout: float = 1.0) -> str | None:
    """The address of a live ``ray start`` cluster on this machine, or None.

    Ray records the last started cluster in ``cluster_file``; the address is only
    returned when its GCS port answers, so a stale file from a stopped cluster
    does not make ``ray.init`` hang.
    """
    try:
        address = cluster_file.read_text().strip()
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=timeout):
            return address
    except (OSError, ValueError):
        return None
