"""Behaviour of the CPU speed levers and the benchmark harness (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_BATCH

from latentctl import perf
from latentctl.config import ModelConfig, TrainConfig
from latentctl.models import count_parameters
from latentctl.train.training import GANTrainer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import plain_reference  # noqa: E402  (importable once the root is on the path)

CPU = torch.device("cpu")


def test_tune_allocator_returns_a_bool_and_is_idempotent():
    # in a child process: the settings are process-wide and would stay on in the test runner
    code = (
        "import json; from latentctl import perf; "
        "a = perf.tune_allocator(); b = perf.tune_allocator(); c = perf.tune_allocator(1 << 20, 1 << 20); "
        "import sys; print(json.dumps([a, b, c, 'torch' in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    first, second, third, imported_torch = json.loads(proc.stdout)
    assert isinstance(first, bool)
    assert second is first and third is first  # later calls change nothing and return the first result
    assert imported_torch is False  # cheap to call early in the CLI
    if not sys.platform.startswith("linux"):
        assert first is False


def test_tune_allocator_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(perf, "_allocator_tuned", None)
    monkeypatch.setattr(perf, "_glibc", lambda: None)
    assert perf.tune_allocator() is False


def test_use_all_cores_never_lowers_the_thread_count():
    before = torch.get_num_threads()
    try:
        n = perf.use_all_cores()
        assert n >= before or "OMP_NUM_THREADS" in os.environ
        assert n == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_plain_reference_has_latentctls_architecture(size):
    trainer = GANTrainer(ModelConfig(image_size=size), TrainConfig(batch_size=4, channels_last=True), CPU)
    G, D = plain_reference.make_generator(size), plain_reference.make_discriminator(size)
    assert count_parameters(G) == count_parameters(trainer.G)
    assert count_parameters(D) == count_parameters(trainer.D)
    assert [tuple(p.shape) for p in G.parameters()] == [tuple(p.shape) for p in trainer.G.parameters()]
    assert [tuple(p.shape) for p in D.parameters()] == [tuple(p.shape) for p in trainer.D.parameters()]
    z = torch.randn(2, 100)
    with torch.no_grad():
        assert G(z).shape == trainer.G(z).shape == (2, 3, size, size)
        x = torch.rand(2, 3, size, size) * 2 - 1
        assert D(x).view(-1).shape == trainer.D(x).shape == (2,)


def test_plain_reference_computes_what_latentctls_networks_compute():
    """Same weights in, same images and logits out: the yardstick is the same model."""
    trainer = GANTrainer(ModelConfig(image_size=32), TrainConfig(batch_size=4), CPU)
    G, D = plain_reference.make_generator(32), plain_reference.make_discriminator(32)
    for mine, theirs in ((G, trainer.G), (D, trainer.D)):
        for p, q in zip(mine.parameters(), theirs.parameters()):
            p.data.copy_(q.data)
    G.eval(), D.eval(), trainer.G.eval(), trainer.D.eval()
    z = torch.randn(3, 100)
    with torch.no_grad():
        torch.testing.assert_close(G(z), trainer.G(z), rtol=1e-4, atol=1e-5)
        x = G(z)
        torch.testing.assert_close(D(x).view(-1), trainer.D(x), rtol=1e-4, atol=1e-5)


def test_plain_reference_step_trains_both_networks():
    torch.manual_seed(0)
    gan = plain_reference.PlainGAN(image_size=32, batch_size=8)
    before = [p.detach().clone() for p in list(gan.G.parameters()) + list(gan.D.parameters())]
    real = plain_reference.prepare_real(torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8))
    losses = gan.step(real)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    after = list(gan.G.parameters()) + list(gan.D.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_inplace_activations_keeps_training_and_sampling_results():
    torch.manual_seed(0)
    a = GANTrainer(TINY, TrainConfig(batch_size=8, channels_last=True), CPU)
    torch.manual_seed(0)
    b = GANTrainer(TINY, TrainConfig(batch_size=8, channels_last=True), CPU)
    assert perf.inplace_activations(b.G) > 0 and perf.inplace_activations(b.D) > 0
    assert perf.inplace_activations(b.G) == 0  # already switched
    real = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    torch.manual_seed(1)
    la = a.step(a.prepare_real(real))
    torch.manual_seed(1)
    lb = b.step(b.prepare_real(real))
    torch.testing.assert_close(la, lb)
    for p, q in zip(a.G.parameters(), b.G.parameters()):
        torch.testing.assert_close(p, q)


def test_prepare_for_sampling_keeps_the_images():
    from latentctl.models import build_models
    from latentctl.seeds import latents_from_seeds
    from latentctl.space.generate import generate

    torch.manual_seed(0)
    G, _ = build_models(TINY)
    z = latents_from_seeds([1, 2, 3], TINY.latent_dim)
    before = generate(G, z, device=CPU)
    perf.prepare_for_sampling(G, CPU)
    assert not G.training
    after = generate(G, z, device=CPU)
    assert abs(before.astype(int) - after.astype(int)).max() <= 1


@pytest.mark.slow
def test_bench_quick_smoke_32px_2_steps_prints_the_table(tmp_path):
    """Smoke run of `python -m benchmarks.bench --quick` at 32 px with 2 steps (no timing checked)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--quick",
            "--sizes",
            "32",
            "--batch",
            "8",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "TRAINING 32 px" in text and "SAMPLING 32 px" in text
    from latentctl.device import cpu_has_native_bf16

    native = cpu_has_native_bf16()  # without it `auto` is float32, and measured once
    for name in ("plain", "latentctl as `train` runs it", "latentctl as `sample` runs it"):
        assert name in text
    assert ("latentctl, float32" in text) == native
    assert "GFLOP/s" in text and "--help" in text
    loader = text.split("LOADER", 1)[1].splitlines()
    row = next(line.split() for line in loader if line.strip().startswith("32 "))
    assert float(row[1]) > 0 and float(row[2]) > 0  # decode and cached-batch rates measured
    data = json.loads(out.read_text())
    trains = [r for r in data["summary"] if r["kind"] == "train"]
    assert len(trains) == (3 if native else 2) and all(r["img_s"] > 0 and r["flops_per_img"] > 0 for r in trains)


def test_auto_precision_is_bf16_only_where_the_hardware_computes_in_it(monkeypatch):
    from latentctl import device
    from latentctl.errors import UsageError

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is ~15x slower
    assert device.resolve_precision("auto", cpu) == "fp32"
    assert device.resolve_precision("bf16", cpu) == "bf16"  # asked for explicitly: kept
    with pytest.raises(UsageError, match="--precision must be auto, fp32 or bf16"):
        device.resolve_precision("fp16", cpu)
    monkeypatch.undo()
    assert isinstance(device.cpu_has_native_bf16(), bool)


def _bench_script(*args: str, timeout: int = 180) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_sample_memory_benchmark_reports_a_peak_for_every_count():
    out = _bench_script("benchmarks.sample_memory", "--size", "32", "--counts", "8,40", "--precision", "fp32")
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in ("8", "40")]
    assert [r[0] for r in rows] == ["8", "40"]
    assert all("peak memory" in " ".join(r) and float(r[r.index("memory") + 1]) > 0 for r in rows)


@pytest.mark.slow
def test_bf16_quality_benchmark_scores_both_precisions():
    out = _bench_script(
        "benchmarks.bf16_quality",
        "--size",
        "32",
        "--width",
        "8",
        "--images",
        "64",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--seeds",
        "0",
        "--samples",
        "64",
    )
    assert "real vs real" in out and "fp32 seed 0" in out and "bf16 seed 0" in out


# --------------------------------------------------------------------------------------------------
# Busy machines (issue 17): OpenMP wait policy, --threads, and the measured thread choice


def test_openmp_env_sets_passive_waiting_unless_the_user_chose():
    # in a child process: openmp_env does nothing once torch is imported (as it is here)
    code = (
        "import json, os; from latentctl import perf; "
        "a = perf.openmp_env(); u1 = {'OMP_WAIT_POLICY': 'ACTIVE'}; u2 = {'GOMP_SPINCOUNT': '10000'}; "
        "print(json.dumps([a, os.environ.get('OMP_WAIT_POLICY'), perf.openmp_env(u1), u1, perf.openmp_env(u2), u2]))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=True
    )
    applied, seen, r1, u1, r2, u2 = json.loads(proc.stdout)
    assert applied == {"OMP_WAIT_POLICY": "PASSIVE"} and seen == "PASSIVE"
    assert r1 == {} and u1 == {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's choice stands
    assert r2 == {} and u2 == {"GOMP_SPINCOUNT": "10000"}
    assert perf.openmp_env({}) == {}  # torch is imported in this process: too late, sets nothing


def test_set_threads_overrides_and_zero_restores_the_default():
    before = torch.get_num_threads()
    try:
        assert perf.set_threads(1) == 1 == torch.get_num_threads()
        assert perf.use_all_cores() == 1  # an explicit --threads is never raised
        assert "1 thread (--threads)" in perf.thread_choice()
        n = perf.set_threads(0)
        assert n == torch.get_num_threads() and n >= 1
        assert "--threads" not in perf.thread_choice()
        with pytest.raises(ValueError):
            perf.set_threads(-1)
    finally:
        perf.set_threads(None)
        torch.set_num_threads(before)


def test_thread_choice_says_how_threads_wait(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert "OpenMP waits passive" in perf.thread_choice()
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "10000")
    assert "spin count 10000" in perf.thread_choice()


def _simulate(tuner, cost, steps):
    used = []
    for _ in range(steps):
        n = tuner.before_step()
        used.append(n)
        tuner.after_step(cost[n])
    return used


def test_thread_tuner_keeps_the_faster_count_and_follows_a_change_of_load():
    before = torch.get_num_threads()
    try:
        tuner = perf.ThreadTuner([2, 1], interval=5.0)
        busy = _simulate(tuner, {2: 1.0, 1: 0.3}, 30)  # a neighbour took a core: 1 thread is faster
        assert tuner.choice == 1 and busy.count(1) >= 25
        assert busy.count(2) <= 4  # 3 steps in the first probe, then 1 per re-probe: dropped once seen slower
        quiet = _simulate(tuner, {2: 0.5, 1: 0.9}, 40)  # the neighbour left
        # the slow steps at 1 thread start a probe at once; then 2 threads, but for the 3 steps at 1
        # of each re-probe (every 5 s of steps here)
        assert tuner.choice == 2 and quiet.count(2) >= 28 and quiet[:7].count(2) >= 1
        assert "fastest measured" in tuner.describe()
    finally:
        torch.set_num_threads(before)


def test_thread_tuner_drops_a_hopeless_candidate_after_one_step():
    before = torch.get_num_threads()
    try:
        tuner = perf.ThreadTuner([2, 1], interval=1e9, probe=3, settle=1)
        used = _simulate(tuner, {2: 0.2, 1: 5.0}, 10)
        assert used[:4] == [2, 2, 2, 2] and used[4] == 1 and used[5:] == [2] * 5  # one 5 s step, not four
        assert tuner.choice == 2 and tuner.probes == 1
    finally:
        torch.set_num_threads(before)


def test_thread_tuner_reprobes_at_once_when_load_arrives_mid_interval():
    before = torch.get_num_threads()
    try:
        tuner = perf.ThreadTuner([2, 1], interval=1e9)  # the interval alone would never re-probe
        quiet = _simulate(tuner, {2: 0.2, 1: 0.35}, 10)
        assert tuner.choice == 2 and quiet[-3:] == [2] * 3
        busy = _simulate(tuner, {2: 4.0, 1: 0.4}, 12)  # a second job starts: 2 threads 20x slower
        assert tuner.choice == 1
        # 3 slow steps, then a probe of 1 thread only: those 3 steps already measured 2 threads
        assert busy == [2, 2, 2] + [1] * 9 and tuner.measured == {2: 4.0, 1: 0.4}
        steady = _simulate(tuner, {2: 4.0, 1: 0.45}, 20)  # ordinary jitter does not re-probe
        assert steady == [1] * 20
    finally:
        torch.set_num_threads(before)


def test_thread_tuner_reprobe_runs_only_the_other_counts():
    before = torch.get_num_threads()
    try:
        tuner = perf.ThreadTuner([2, 1], interval=2.0)
        used = _simulate(tuner, {2: 3.0, 1: 0.25}, 60)  # 15 s of steps: several periodic re-probes
        assert tuner.choice == 1 and tuner.probes >= 5
        # after the first probe (3 steps at 2 threads) each re-probe costs one step at 2 threads,
        # dropped against the 1-thread steps just run
        assert used[:3] == [2, 2, 2] and used.count(2) == 3 + (tuner.probes - 1)
        # and nothing else: 2 s of 0.25 s steps at 1 thread, then that one step (re-running 1 thread
        # for the probe, as before, would add 3 steps to every cycle)
        at_two = [i for i, n in enumerate(used) if n == 2][3:]
        assert len(at_two) >= 4 and {b - a for a, b in zip(at_two, at_two[1:])} == {9}
        one_core = perf.ThreadTuner([1], interval=0.5)
        assert _simulate(one_core, {1: 0.3}, 10) == [1] * 10 and one_core.measured == {1: 0.3}
    finally:
        torch.set_num_threads(before)


def test_one_rule_says_when_threads_follow_step_times(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert isinstance(perf.auto_tuner(cpu), perf.ThreadTuner)
    assert perf.auto_tuner(torch.device("meta")) is None  # not a CPU
    assert perf.auto_tuner(cpu, devices=2) is None and perf.auto_tuner(cpu, group=object()) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert perf.auto_tuner(cpu) is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        perf.set_threads(1)
        assert perf.auto_tuner(cpu) is None  # --threads N fixes the count
    finally:
        perf.set_threads(None)
        torch.set_num_threads(before)


@pytest.fixture
def tuned_steps(monkeypatch) -> list[int]:
    """A list that grows by one each time a ThreadTuner made by ``perf.auto_tuner`` starts a step."""
    steps: list[int] = []

    class Recording(perf.ThreadTuner):
        def before_step(self):
            steps.append(1)
            return super().before_step()

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(perf, "ThreadTuner", Recording)
    return steps


def test_python_callers_get_the_same_thread_rule_as_the_cli(tuned_steps, image_folder, workspace):
    import latentctl

    steps = tuned_steps
    run_dir = latentctl.train_run(
        image_folder,
        workspace=workspace,
        device="cpu",
        image_size=TINY.image_size,
        width=TINY.width,
        latent_dim=TINY.latent_dim,
        batch_size=TINY_BATCH,
        epochs=1,
    )
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == max(r["global_step"] for r in lines if "global_step" in r) >= 1  # asked before every step


def test_encode_and_the_gan_encoder_follow_the_same_thread_rule(tuned_steps, tiny_run):
    """A projection or encoder-training step is a forward and backward through G, as slow with a
    busy neighbour as a training step: Python callers get the tuner around every one by default."""
    import numpy as np

    from latentctl.files.checkpoint import load
    from latentctl.space import gan_encoder as GE
    from latentctl.space.encode import encode_images

    steps = tuned_steps
    before = torch.get_num_threads()
    try:
        loaded = load(tiny_run / "checkpoint.safetensors")
        images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        encode_images(loaded, images, torch.device("cpu"), steps=7, restarts=2, batch_size=2)
        assert len(steps) == 2 * 7  # two chunks of 7 steps
        cfg = loaded.info.model
        config = GE.GanEncoderConfig(cfg.image_size, cfg.channels, cfg.latent_dim, width=8, steps=5, batch_size=4)
        net, _ = GE.train(loaded.generator, config)
        encode_images(loaded, images, torch.device("cpu"), gan_encoder=net, refine_steps=4)
        assert len(steps) == 14 + 5 + 5  # L-BFGS: the gradient at the guess, then 4 steps
        encode_images(loaded, images, torch.device("cpu"), steps=3, restarts=1, thread_tuner=None)
        assert len(steps) == 24  # None: the count as set
    finally:
        torch.set_num_threads(before)
