import logging
import socket

from pipeline.raysession import QUIET_LOGGERS, running_cluster


def test_running_cluster_only_when_its_port_answers(tmp_path):
    cluster_file = tmp_path / "ray_current_cluster"
    assert running_cluster(cluster_file) is None  # no file: no cluster
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        cluster_file.write_text(f"127.0.0.1:{port}\n")
        assert running_cluster(cluster_file) == f"127.0.0.1:{port}"
    assert running_cluster(cluster_file, timeout=0.5) is None  # stale file of a stopped cluster
    cluster_file.write_text("garbage")
    assert running_cluster(cluster_file) is None


def test_embedded_ray_quiets_rays_chatty_loggers_in_every_worker(ray_local):
    # Ray Train's placement-group cleaner runs as a detached actor: the setup hook reaches it too.
    @ray_local.remote(num_cpus=0)
    class Probe:
        def levels(self) -> dict[str, int]:
            return {name: logging.getLogger(name).getEffectiveLevel() for name in QUIET_LOGGERS}

    probe = Probe.options(lifetime="detached").remote()
    try:
        levels = ray_local.get(probe.levels.remote())
    finally:
        ray_local.kill(probe)
    assert levels == QUIET_LOGGERS and min(levels.values()) >= logging.WARNING
