"""Data-parallel training: 2 CPU processes over gloo, as `latentctl train --devices 2` runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL, blob_dataset, image_dataset, tiny

from latentctl.config import TrainConfig
from latentctl.errors import DataError
from latentctl.files import checkpoint
from latentctl.train import listeners
from latentctl.train.distributed import cpu_threads_per_process, train_parallel
from latentctl.train.training import train

# Dropout is off for the comparison: each rank draws masks for its own share of the batch, so
# with dropout the two runs are equally valid but not comparable step by step.
MODEL = tiny(dropout=0.0)
CFG = TrainConfig(epochs=2, batch_size=16, checkpoint_every=1, sample_every=1, snapshot_every=100)
# torchrun and --devices 2 run the same two processes: the same per-rank batch shapes and thread
# counts pick the same kernels, and a 2-rank all-reduce (a + b) is exact whatever the order, so the
# two differ only if one of them computes something else. 1e-6 leaves room for nothing but that.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def dataset():
    return blob_dataset(64)


def _train_with_threads(threads: int, *args) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return train(*args)
    finally:
        torch.set_num_threads(before)


# What DDP is responsible for is the gradient: every rank must end each backward pass holding the
# mean of the ranks' gradients, i.e. the gradient of the whole batch. So the two runs are compared
# on gradients, not on trained weights: with lr = 1e-12 (the config refuses 0) no weight moves by
# more than 1e-11, far below float32 rounding of the weights' values, so every step's gradient
# is taken at the same point in both runs, and Adam's first and second moments (kept in the
# checkpoint) are fixed linear combinations of those gradients (and of their squares).
#
# The tolerance, from the arithmetic rather than from one machine: a gradient entry is a float32
# sum of n ~ 10^3-10^4 products (batch x positions). One process sums the batch of 16 in one kernel
# call, two processes sum 8 each and add the halves; oneDNN also picks differently blocked kernels
# for batch 8 and 16 on different CPUs (AVX2, AVX-512, AMX), so the order of the additions differs.
# Reordering a float32 sum changes it by at most n * 2^-24 * sum(|terms|), typically
# sqrt(n) * 2^-24 * sum(|terms|) ~ 1e-5 of the entry's scale. Bounding each tensor's largest
# difference by 1e-3 of that tensor's largest entry leaves 100x headroom for rounding and still
# catches every real fault by far: summed instead of averaged gradients are off by 100%, a rank
# that skipped the all-reduce by tens of percent. (Comparing trained weights instead is not a
# test of DDP: Adam divides by sqrt(v), so a rounding-level change of a near-zero gradient
# becomes a step of lr in that weight; seen on an Intel AMX CPU as 5e-5 after 8 steps.)
RELATIVE_GRADIENT_TOLERANCE = 1e-3
FROZEN = TrainConfig(**{**CFG.__dict__, "lr": 1e-12})


def _moments(loaded) -> dict[str, torch.Tensor]:
    return {k: v for k, v in loaded.tensors.items() if k.startswith("opt.") and k.endswith(("exp_avg", "exp_avg_sq"))}


def test_two_processes_average_gradients_like_one_process_with_the_same_global_batch(tmp_path, dataset):
    # The reference runs with the thread count each worker uses (the cores split between 2), so
    # that as many kernels as possible match.
    threads = cpu_threads_per_process(2)
    single = checkpoint.load(
        _train_with_threads(threads, tmp_path / "one", dataset, MODEL, FROZEN, torch.device("cpu")), training=True
    )
    path = train_parallel(
        2,
        torch.device("cpu"),
        run_dir=tmp_path / "two",
        dataset=dataset,
        model_config=MODEL,
        train_config=FROZEN,
        listeners=listeners.standard(),  # as runs.execute attaches them: rank 0 alone draws
    )
    double = checkpoint.load(path, training=True)
    a, b = _moments(single), _moments(double)
    assert a.keys() == b.keys() and len(a) >= 4 * 2  # both optimizers, both moments, every tensor
    worst = 0.0
    for name in a:
        scale = float(a[name].abs().max())
        assert scale > 0, f"{name}: no gradient reached this tensor"
        worst = max(worst, float((a[name] - b[name]).abs().max()) / scale)
    print(f"largest gradient difference: {worst:.2e} of its tensor's scale")
    assert worst < RELATIVE_GRADIENT_TOLERANCE, f"gradients differ by up to {worst:.2e} of their scale"
    for name in ("generator", "discriminator"):  # nothing moved beyond rounding, in either run
        for k, v in getattr(single, name).state_dict().items():
            assert torch.allclose(v, getattr(double, name).state_dict()[k], rtol=0, atol=1e-9)

    # one writer: one checkpoint, metrics logged once (not once per rank), one grid per epoch
    run = tmp_path / "two"
    assert sorted(p.name for p in run.iterdir() if p.name != "loss.png") == [
        "checkpoint.safetensors",
        "grids",
        "metrics.jsonl",
    ]
    steps = [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    assert sorted(p.name for p in (run / "grids").iterdir()) == ["epoch-0001.png", "epoch-0002.png"]


def test_a_rank_that_skips_the_gradient_average_is_caught(tmp_path, dataset):
    # The comparison above can fail: a single process on half the batch (what one rank would
    # hold without the all-reduce) is far outside the tolerance.
    half = image_dataset(dataset.images[:32], "blobs64-first-half")
    cfg = TrainConfig(**{**FROZEN.__dict__, "batch_size": 8})
    full = _moments(
        checkpoint.load(train(tmp_path / "full", dataset, MODEL, FROZEN, torch.device("cpu")), training=True)
    )
    part = _moments(checkpoint.load(train(tmp_path / "half", half, MODEL, cfg, torch.device("cpu")), training=True))
    worst = max(float((full[k] - part[k]).abs().max()) / float(full[k].abs().max()) for k in full)
    print(f"half batch without averaging: {worst:.2e} of scale")
    assert worst > 10 * RELATIVE_GRADIENT_TOLERANCE


@pytest.mark.slow
def test_resume_works_after_parallel_training(tmp_path, dataset):
    path = train_parallel(
        2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL, train_config=CFG
    )
    more = TrainConfig(**{**CFG.__dict__, "epochs": 3})
    path = train_parallel(
        2,
        torch.device("cpu"),
        run_dir=tmp_path,
        dataset=dataset,
        model_config=MODEL,
        train_config=more,
        resume=checkpoint.load(path, training=True),
    )
    assert checkpoint.read_header(path).state["global_step"] == 12


@pytest.mark.parametrize(("decoders", "grow"), [(False, 0), (True, 0), (False, 1)])
def test_the_lite_recipe_trains_in_parallel_with_lazy_r1(tmp_path, dataset, decoders, grow):
    # DDP wants a gradient for every weight after each backward pass. R1's pass alone gives none
    # to D's last bias (no input gradient depends on it) nor to --d-reconstruct's decoders, so they
    # join it at weight 0; without that the second step stopped with a DDP error. Growing leaves
    # the stages of the larger sizes out of its first steps: DDP is told to expect that.
    from latentctl.train.recipes import train_defaults

    lite = tiny(arch="lite", dropout=0.0, d_reconstruct=decoders)
    recipe = {**train_defaults("lite", lite), "epochs": 1, "batch_size": CFG.batch_size, "r1_gamma": 0.1, "r1_every": 2}
    recipe["grow_steps"] = grow
    cfg = TrainConfig(**{**CFG.__dict__, **recipe})
    path = train_parallel(
        2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=lite, train_config=cfg
    )
    loaded = checkpoint.load(path, training=True)
    assert loaded.info.state["global_step"] == 4
    assert any(k.startswith("decoders.") for k in loaded.discriminator.state_dict()) == decoders


def test_worker_errors_come_back_as_library_errors(tmp_path, dataset):
    odd = TrainConfig(epochs=1, batch_size=6)  # 3 real images cannot be split over 2 workers
    with pytest.raises(DataError, match="cannot be split over 2 workers"):
        train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL, train_config=odd)


# --------------------------------------------------------------------------------------------------
# `torchrun --nproc-per-node 2 -m latentctl train ...`: the same training as `--devices 2`


def _cli(args: list[str], env: dict, torchrun: bool = False) -> subprocess.CompletedProcess:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        if torchrun
        else [sys.executable]
    )
    return subprocess.run([*launcher, "-m", "latentctl", *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_torchrun_launch_trains_like_devices_2_with_one_writer(tmp_path, image_folder):
    folder = image_folder
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
    assert sorted(p.name for p in run.iterdir() if p.name != "loss.png") == [
        "checkpoint.safetensors",
        "grids",
        "metrics.jsonl",
    ]
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
    env = {
        **os.environ,
        "WORLD_SIZE": "2",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29999",
    }
    proc = _cli(["train", str(tmp_path), "--devices", "2"], env)
    assert proc.returncode == 2
    assert "started by torchrun" in proc.stderr and "leave --devices out" in proc.stderr
