"""Data-parallel training: 2 CPU processes over gloo, as `latentctl train --devices 2` runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentctl import checkpoint
from latentctl.config import ModelConfig, TrainConfig
from latentctl.data import ImageDataset
from latentctl.distributed import cpu_threads_per_process, train_parallel
from latentctl.errors import DataError
from latentctl.models import build_models
from latentctl.training import train

from conftest import blob_images

# Dropout is off for the comparison: each rank draws masks for its own share of the batch, so
# with dropout the two runs are equally valid but not comparable step by step.
MODEL = ModelConfig(image_size=32, width=8, latent_dim=8, dropout=0.0)
CFG = TrainConfig(epochs=2, batch_size=16, checkpoint_every=1, sample_every=1, snapshot_every=100)
TOLERANCE = 1e-6  # max |difference| of any weight after 8 steps (measured: 4e-8 on an AVX2 EPYC, 2.3e-7 on an AVX-512 one)


@pytest.fixture(scope="module")
def dataset():
    return ImageDataset(Path("/synthetic"), blob_images(64), [f"{i}.png" for i in range(64)], "fp-ddp")


def _train_with_threads(threads: int, *args) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return train(*args)
    finally:
        torch.set_num_threads(before)


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, dataset):
    # The reference runs with the thread count each worker uses (the cores split between 2): the
    # thread count alone changes float rounding in some CPU kernels (measured on an AVX-512 EPYC:
    # 1 vs 2 threads, same process, 5e-5 apart after 8 steps), which is not what this test is about.
    threads = cpu_threads_per_process(2)
    single = checkpoint.load(_train_with_threads(threads, tmp_path / "one", dataset, MODEL, CFG, torch.device("cpu")), training=True)
    path = train_parallel(2, torch.device("cpu"), run_dir=tmp_path / "two", dataset=dataset,
                          model_config=MODEL, train_config=CFG)
    double = checkpoint.load(path, training=True)
    worst = 0.0
    for name in ("generator", "discriminator"):
        a, b = getattr(single, name).state_dict(), getattr(double, name).state_dict()
        for k in a:
            worst = max(worst, float((a[k] - b[k]).abs().max()))
    assert worst < TOLERANCE, f"weights differ by up to {worst}"
    torch.manual_seed(CFG.seed)
    fresh = build_models(MODEL)[0].state_dict()
    moved = max(float((fresh[k] - v).abs().max()) for k, v in double.generator.state_dict().items())
    assert moved > 100 * TOLERANCE  # training changed the weights, so the match means something

    # one writer: one checkpoint, metrics logged once (not once per rank), one grid per epoch
    run = tmp_path / "two"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.safetensors", "grids", "metrics.jsonl"]
    steps = [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    assert sorted(p.name for p in (run / "grids").iterdir()) == ["epoch-0001.png", "epoch-0002.png"]


def test_resume_works_after_parallel_training(tmp_path, dataset):
    path = train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL, train_config=CFG)
    more = TrainConfig(**{**CFG.__dict__, "epochs": 3})
    path = train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL,
                          train_config=more, resume=checkpoint.load(path, training=True))
    assert checkpoint.read_header(path).state["global_step"] == 12


def test_worker_errors_come_back_as_library_errors(tmp_path, dataset):
    odd = TrainConfig(epochs=1, batch_size=6)  # 3 real images cannot be split over 2 workers
    with pytest.raises(DataError, match="cannot be split over 2 workers"):
        train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL, train_config=odd)


# --------------------------------------------------------------------------------------------------
# `torchrun --nproc-per-node 2 -m latentctl train ...`: the same training as `--devices 2`


def _cli(args: list[str], env: dict, torchrun: bool = False) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if torchrun else [sys.executable]
    return subprocess.run([*launcher, "-m", "latentctl", *args], env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_launch_trains_like_devices_2_with_one_writer(tmp_path):
    from conftest import TINY_MODEL, write_images

    folder = write_images(tmp_path / "images", blob_images(64))
    ws = tmp_path / "ws"
    env = {**os.environ, "LATENTCTL_HOME": str(ws)}
    common = ["train", str(folder), *TINY_MODEL, "--epochs", "2", "--precision", "fp32"]
    launched = _cli([*common, "--name", "launched"], env, torchrun=True)
    assert launched.returncode == 0, launched.stderr[-3000:]
    spawned = _cli([*common, "--name", "spawned", "--devices", "2"], env)
    assert spawned.returncode == 0, spawned.stderr[-3000:]

    runs = sorted(p.name for p in (ws / "runs").iterdir())
    assert len(runs) == 2, runs  # torchrun's two processes made one run folder between them
    run = next(ws / "runs" / r for r in runs if "launched" in r)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.safetensors", "grids", "metrics.jsonl"]
    steps = [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # logged once, not once per process
    assert launched.stdout.strip() == str(run / "checkpoint.safetensors")  # one process speaks

    a = checkpoint.load(run / "checkpoint.safetensors", training=True)
    b = checkpoint.load(next(ws / "runs" / r for r in runs if "spawned" in r) / "checkpoint.safetensors", training=True)
    worst = max(
        float((x - y).abs().max())
        for name in ("generator", "discriminator")
        for x, y in zip(getattr(a, name).state_dict().values(), getattr(b, name).state_dict().values())
    )
    assert worst < TOLERANCE, f"torchrun and --devices 2 differ by up to {worst}"
    assert a.info.state["global_step"] == 8


def test_torchrun_launch_reports_rank_0_errors_on_every_rank_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    ws = tmp_path / "ws"
    proc = _cli(["train", str(empty)], {**os.environ, "LATENTCTL_HOME": str(ws)}, torchrun=True)
    assert proc.returncode != 0
    assert proc.stderr.count("has no images") >= 2  # both processes stop with rank 0's error, none hangs
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())


def test_torchrun_launch_refuses_devices(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}
    proc = _cli(["train", str(tmp_path), "--devices", "2"], env)
    assert proc.returncode == 2
    assert "started by torchrun" in proc.stderr and "leave --devices out" in proc.stderr
