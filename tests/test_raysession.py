import socket

from pipeline.raysession import running_cluster


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
