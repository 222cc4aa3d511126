"""`ray job submit` against a real Ray head node: preprocess → train → evaluate, failures, the scheduled re-run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return env | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                  "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}  # fmt: skip


@pytest.fixture(scope="module")
def ray_head():
    """A real head node (`ray start --head --block`) on 127.0.0.1 with free ports; stopped afterwards."""
    dash = _free_port()
    temp = tempfile.mkdtemp(prefix="rayhead-", dir="/tmp")  # short: Ray's socket paths have a length limit
    cmd = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--ray-client-server-port={_free_port()}", "--num-cpus=4", f"--temp-dir={temp}",
           "--disable-usage-stats"]  # fmt: skip
    # Agents' default ports are taken by any other Ray on the machine (the tests' embedded one): pick free ones.
    for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                 "runtime-env-agent-port"):  # fmt: skip
        cmd.append(f"--{flag}={_free_port()}")
    log = open(Path(temp) / "head.log", "w")
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    tail = (Path(temp) / "head.log").read_text()[-2000:]
                    raise RuntimeError(f"Ray head did not start: {tail}") from None
                time.sleep(1)
        _wait_for_job_agent(address, deadline)
        yield address
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM the head's process group (Ray's services shut down in a few seconds), SIGKILL what is left."""
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_for_job_agent(address: str, deadline: float) -> None:
    """The dashboard answers before the node's job agent does ("No available agent"): submit a no-op until it runs."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    while True:
        try:
            job = client.submit_job(entrypoint="python -c pass")
            break
        except RuntimeError:
            if time.time() > deadline:
                raise
            time.sleep(2)
    while str(client.get_job_status(job).value) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        time.sleep(1)


def _submit(address: str, *entrypoint: str) -> subprocess.CompletedProcess:
    cmd = [RAY, "job", "submit", "--address", address, "--working-dir", str(ROOT),
           "--runtime-env", str(ROOT / "cluster" / "runtime_env.yaml"), "--", "python", *entrypoint]  # fmt: skip
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900, cwd=ROOT)


def _job_id(output: str) -> str:
    return next(w.strip("'\"") for line in output.splitlines() if "submitted successfully" in line
                for w in line.split() if w.strip("'\"").startswith("raysubmit_"))  # fmt: skip


def _status(address: str, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(job_id).value)


def test_jobs_on_a_real_head_node(ray_head, tiny_bench, tmp_path):
    out = tmp_path
    prep = _submit(ray_head, "jobs/preprocess.py", "--input", str(tiny_bench), "--output", str(out / "shards"),
                   "--preset", "tiny", "-q")  # fmt: skip
    assert prep.returncode == 0, prep.stdout[-3000:] + prep.stderr[-3000:]
    assert _status(ray_head, _job_id(prep.stdout + prep.stderr)) == "SUCCEEDED"
    shards = sorted((out / "shards").glob("v1-*/split=*/*.parquet"))
    assert len(shards) == 7 and "preprocessing done" in prep.stdout

    train = _submit(ray_head, "jobs/train.py", "--shards", str(out / "shards"), "--output", str(out / "train"),
                    "--preset", "tiny", "--workers", "1", "--set", "train.epochs=1", "-q")  # fmt: skip
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    checkpoint = out / "train" / "music_gesture" / "final" / "checkpoint.pt"
    assert checkpoint.is_file() and "training done" in train.stdout

    evaluate = _submit(ray_head, "jobs/evaluate.py", "--shards", str(out / "shards"), "--checkpoint",
                       str(checkpoint), "--output", str(out / "eval"), "--preset", "tiny", "-q")  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stdout[-3000:] + evaluate.stderr[-3000:]
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["mixtures"] > 0 and "| music_gesture |" in evaluate.stdout

    # The scheduled run with nothing new: succeeds, writes no shard.
    mtimes = {p: p.stat().st_mtime_ns for p in shards}
    again = _submit(ray_head, "jobs/preprocess.py", "--input", str(tiny_bench), "--output", str(out / "shards"),
                    "--preset", "tiny", "-q")  # fmt: skip
    assert again.returncode == 0 and "clips written     0" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in sorted((out / "shards").glob("v1-*/split=*/*.parquet"))} == mtimes


def test_a_job_with_a_missing_input_fails_with_a_one_line_reason(ray_head, tmp_path):
    missing = tmp_path / "no-such-folder"
    done = _submit(ray_head, "jobs/preprocess.py", "--input", str(missing), "--output", str(tmp_path / "s"), "-q")
    assert done.returncode != 0
    job_id = _job_id(done.stdout + done.stderr)
    assert _status(ray_head, job_id) == "FAILED"
    logs = subprocess.run([RAY, "job", "logs", "--address", ray_head, job_id], env=_env(), capture_output=True,
                          text=True, timeout=60).stdout  # fmt: skip
    reason = [line for line in logs.splitlines() if line.startswith("error: ")]
    assert len(reason) == 1 and str(missing) in reason[0] and "Traceback" not in logs
