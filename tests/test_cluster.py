"""Cluster files: the launcher YAML passes Ray's own validation; KubeRay manifests are consistent with the code."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.cli import build_parser
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[1]
KUBERAY = ROOT / "cluster" / "kuberay"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _check_entrypoint(argv: list[str]) -> None:
    """``python jobs/X.py ARGS``: the script exists and the CLI accepts ARGS (options and --set values)."""
    assert argv[0] == "python" and argv[1].startswith("jobs/"), argv
    script = ROOT / argv[1]
    assert script.is_file(), script
    command = script.stem
    args = build_parser().parse_args([command, *argv[2:]])
    load_config(getattr(args, "preset", None), getattr(args, "config", []), getattr(args, "overrides", []))


def test_launcher_config_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((ROOT / "cluster" / "aws.yaml").read_text())
    validate_config(prepare_config(raw))
    nodes = raw["available_node_types"]
    assert nodes["gpu_worker"]["min_workers"] == 0 and nodes["gpu_worker"]["max_workers"] >= 1
    # The dashboard is bound to the head's loopback: reachable only through `ray dashboard` port forwarding.
    assert "--dashboard-host=127.0.0.1" in " ".join(raw["head_start_ray_commands"])
    assert [p["FromPort"] for p in raw["provider"]["security_group"]["IpPermissions"]] == [22]
    assert any("cluster/install-node.sh" in c for c in raw["setup_commands"])
    bad = yaml.safe_load((ROOT / "cluster" / "aws.yaml").read_text())
    bad["available_node_types"]["gpu_worker"]["max_wokers"] = 4  # a typo Ray must catch
    with pytest.raises(Exception, match="max_wokers"):
        validate_config(prepare_config(bad))


def test_kuberay_manifests_agree_with_the_code():
    runtime_env = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    workdir = next(line.split()[1] for line in (ROOT / "cluster" / "Dockerfile").read_text().splitlines()
                   if line.startswith("WORKDIR"))  # fmt: skip
    cluster = next(d for d in _docs(KUBERAY / "raycluster.yaml") if d["kind"] == "RayCluster")
    name = cluster["metadata"]["name"]
    images = {c["image"] for c in cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]}
    for group in cluster["spec"]["workerGroupSpecs"]:
        images |= {c["image"] for c in group["template"]["spec"]["containers"]}
    assert len(images) == 1
    jobs = sorted(KUBERAY.glob("rayjob-*.yaml"))
    assert {p.stem for p in jobs} == {"rayjob-synth", "rayjob-preprocess", "rayjob-train", "rayjob-evaluate"}
    for path in jobs:
        (job,) = _docs(path)
        assert job["kind"] == "RayJob" and job["spec"]["clusterSelector"]["ray.io/cluster"] == name
        env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
        assert env.pop("working_dir") == workdir and env == runtime_env, path.name
        assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] in images
        _check_entrypoint(shlex.split(job["spec"]["entrypoint"]))


def test_preprocessing_schedule_submits_to_the_cluster():
    (cron,) = _docs(KUBERAY / "preprocess-schedule.yaml")
    assert cron["kind"] == "CronJob" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:3] == ["ray", "job", "submit"]
    assert command[command.index("--address") + 1] == "http://music-gesture-head-svc:8265"
    assert (ROOT / command[command.index("--runtime-env") + 1]).is_file()
    entry = command[command.index("--") + 1 :]
    assert entry[1] == "jobs/preprocess.py"
    _check_entrypoint(entry)


def test_entrypoint_check_catches_a_wrong_argument():
    with pytest.raises(SystemExit):
        _check_entrypoint(["python", "jobs/train.py", "--shardz", "/mnt/shared/shards", "--output", "x"])
    with pytest.raises(Exception, match="unknown"):
        _check_entrypoint(["python", "jobs/train.py", "--shards", "a", "--output", "b", "--set", "train.modle=x"])
