"""Connecting to Ray: the cluster a job was submitted to, or an embedded local one.

Under ``ray job submit`` (or with ``RAY_ADDRESS`` set) ``init_ray`` joins that
cluster. Otherwise it starts a local Ray inside this process, bound to
127.0.0.1, without dashboard or usage reporting, with a small object store.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

# Local Ray on a 2-core laptop: logical CPUs above the physical count, so that a
# Ray Train worker group cannot take every CPU and starve the data readers (a hang).
MIN_LOCAL_CPUS = 4


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` / ``$RAY_ADDRESS``, or start a local Ray. Idempotent."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
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
    )
