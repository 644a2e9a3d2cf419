"""`torchrun --nnodes 2` on one machine: two "nodes" of one process each, gloo over loopback.

    torchrun --nnodes 2 --node-rank R --rdzv-endpoint 127.0.0.1:PORT --rdzv-backend c10d \\
        --nproc-per-node 1 -m latentctl train DIR

Each node gets its own workspace (LATENTCTL_HOME), as separate machines have separate disks, and
its own core (its affinity mask), as separate machines have their own CPUs: each process then
splits one core among its one process, exactly as the 1-node run below splits 2 cores among 2
processes, so both runs use 1 thread per rank.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_MODEL

from latentctl.files import checkpoint

# Why equality to 1e-6 (not a looser bound like test_distributed's gradient test): both runs are 2
# ranks of the same half batch (8 images), 1 intra-op thread each, the same seed and the same data
# shards, so every rank runs the same kernels on the same inputs in the same order. The only sum
# across ranks is DDP's 2-rank all-reduce, a + b, which is exact in any order (commutative, and
# there is no third term to reassociate). Nothing differs but the launcher's rendezvous, so the
# weights should agree bit for bit; 1e-6 is far below what any real fault moves (an un-averaged
# or skipped all-reduce changes each Adam step by up to lr = 2e-4).
TOLERANCE = 1e-6
EPOCHS = ["--epochs", "2", "--precision", "fp32"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(cores: set[int] | None):
    return (lambda: os.sched_setaffinity(0, cores)) if cores else None


def _torchrun(launch: list[str], args: list[str], home: Path, cores: set[int] | None = None) -> subprocess.Popen:
    env = {**os.environ, "LATENTCTL_HOME": str(home)}
    env.pop("OMP_NUM_THREADS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "latentctl", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_pin(cores),
    )


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out


def _two_nodes(args: list[str], homes: list[Path]) -> list[tuple[int, str, str]]:
    cores = sorted(os.sched_getaffinity(0))
    port = _port()
    procs = []
    for node, home in enumerate(homes):
        launch = [
            "--nnodes",
            "2",
            "--node-rank",
            str(node),
            "--rdzv-endpoint",
            f"127.0.0.1:{port}",
            "--rdzv-backend",
            "c10d",
            "--nproc-per-node",
            "1",
        ]
        procs.append(_torchrun(launch, args, home, {cores[node % len(cores)]}))
    return _finish(procs)


def _weights(path: Path) -> dict:
    loaded = checkpoint.load(path, training=True)
    return {f"{n}.{k}": v for n in ("generator", "discriminator") for k, v in getattr(loaded, n).state_dict().items()}


@pytest.mark.slow
def test_two_nodes_train_like_one_node_of_two_processes_and_resume(tmp_path, image_folder):
    folder = image_folder
    homes = [tmp_path / "node0", tmp_path / "node1"]
    common = ["train", str(folder), *TINY_MODEL, *EPOCHS, "--name", "multi"]

    # launched together: the 2-node run, and the 1-node 2-process run it must match
    single = _torchrun(
        ["--standalone", "--nproc-per-node", "2"],
        ["train", str(folder), *TINY_MODEL, *EPOCHS, "--name", "single"],
        tmp_path / "one",
    )
    nodes = _two_nodes(common, homes)
    [(rc, _, err)] = _finish([single])
    assert rc == 0, err[-3000:]
    for rc, _, err in nodes:
        assert rc == 0, err[-3000:]

    # each node decoded the images into its own cache; one writer (rank 0, on whichever node the
    # rendezvous numbered first) made the only run folder
    for home in homes:
        assert any((home / "cache").iterdir()), f"{home.name} has no image cache"
    with_runs = [h for h in homes if (h / "runs").exists() and any((h / "runs").iterdir())]
    assert len(with_runs) == 1, with_runs
    [run] = list((with_runs[0] / "runs").iterdir())
    assert sorted(p.name for p in run.iterdir() if p.name != "loss.png") == [
        "checkpoint.safetensors",
        "grids",
        "metrics.jsonl",
    ]
    steps = [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # logged once, not once per node
    printed = [out.strip() for _, out, _ in nodes if out.strip()]
    assert printed == [str(run / "checkpoint.safetensors")]  # one process speaks

    a = _weights(run / "checkpoint.safetensors")
    [one_run] = list((tmp_path / "one" / "runs").iterdir())
    b = _weights(one_run / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"largest weight difference, 2 nodes vs 1 node: {worst:.2e}")
    assert worst < TOLERANCE, f"2 nodes x 1 process and 1 node x 2 processes differ by up to {worst}"

    # resume the 2-node run for a third epoch, on both nodes
    resumed = _two_nodes(["train", "--resume", str(run), "--epochs", "3"], homes)
    for rc, _, err in resumed:
        assert rc == 0, err[-3000:]
    assert checkpoint.read_header(run / "checkpoint.safetensors").state["global_step"] == 12
    steps = [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))
    assert not any(p.is_dir() and any((p / "runs").glob("*")) for p in homes if p not in with_runs)
