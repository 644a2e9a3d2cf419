"""latentctl vs a plain PyTorch port of the seed's GAN: training, sampling, memory, % of peak.

    python -m benchmarks.bench                      # 64 and 128 px, batch 128 (several minutes on 2 cores)
    python -m benchmarks.bench --quick              # < 1 minute smoke run at 32 px
    python -m benchmarks.bench --scan               # every CPU lever alone and stacked
    python -m benchmarks.bench --sizes 64 --steps 6 --warmup 2 --json out.json
    python -m benchmarks.bench --profile            # where a training step and a sampling batch spend their time (64 px)

Every configuration runs in its own Python subprocess (``--quick`` shares one), so allocator
settings, which are process-wide and sticky, and allocator state never leak from one
configuration into the next, and the peak resident memory of the subprocess is that
configuration's. Figures are medians of per-step times after warm-up.

img/s for training counts real images consumed: B/2 per step (the seed's loop draws 64 real
images per step of batch 128). FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``
on one step of each configuration (at a small batch, scaled: every op is linear in the batch),
so a configuration that skips work (latentctl reuses one generator forward) is charged only for
the work it does. "% peak" compares the achieved FLOP rate with a large float32 matmul measured
in the same run.

This parent process never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_BATCH = 64

# Levers a configuration may name (comma-separated in its "levers" list):
#   alloc            latentctl.perf.tune_allocator() (glibc mmap/trim thresholds raised)
#   alloc=M:T        the same with explicit mmap/trim thresholds (bytes; "max" = INT_MAX, "never" = -1)
#   cl               channels-last weights and activations
#   inplace          latentctl.perf.inplace_activations on the networks
#   threads=N        torch.set_num_threads(N)
#   tuner=SECONDS    latentctl.perf.ThreadTuner sets the thread count before each step (re-probing every SECONDS)
#   adam=fused|foreach  Adam built with fused=True / foreach=True (a proposed trainers.py change)
#   sampleprep       latentctl.perf.prepare_for_sampling on the generator (sampling only)
#   rgbcrop          bench-only: the generator's last layer as Conv2d(padding=4) + crop instead of
#                    ZeroPad2d((3, 4, 3, 4)) + Conv2d (same result); measures a proposed gan.py change
# Environment variables (OMP_*) are given per configuration in "env" and set before torch starts.


# --------------------------------------------------------------------------------------------------
# worker side (runs in a subprocess; imports torch)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_mib() -> float | None:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024
    except (ImportError, OSError):
        return None


def _rss_mib() -> float | None:
    v = _status_kib("VmRSS")
    return None if v is None else v / 1024


def _rusage() -> tuple[float, float, int]:
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime, r.ru_stime, r.ru_minflt
    except ImportError:  # pragma: no cover - Windows
        return 0.0, 0.0, 0


def _apply_levers(levers: list[str]) -> dict:
    import torch

    applied: dict = {}
    for lever in levers:
        if lever == "alloc" or lever.startswith("alloc="):
            from latentctl import perf

            if lever == "alloc":
                applied["alloc"] = perf.tune_allocator()
            else:
                named = {"max": 2**31 - 1, "never": -1}
                mm, tr = (named[v] if v in named else int(v) for v in lever.split("=", 1)[1].split(":"))
                applied["alloc"] = perf.tune_allocator(mm, tr)
        elif lever.startswith("threads="):
            torch.set_num_threads(int(lever.split("=", 1)[1]))
    applied["threads"] = torch.get_num_threads()
    return applied


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_mem(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def _gpu_peak_mib(dev) -> float | None:
    import torch

    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return None


def _count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _real_pool(size: int, half: int, n_batches: int = 4):
    import torch

    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (half, size, size, 3), dtype=torch.uint8, generator=g) for _ in range(n_batches)]


def _rgb_crop(G) -> None:
    """Replace ZeroPad2d((3, 4, 3, 4)) + Conv2d(8x8) by Conv2d(8x8, padding=4) cropped by one pixel at
    the start: the same output (Keras "same" pads 3 before, 4 after), without the padded copy of the
    widest activation. Works on latentctl's Generator and on the plain nn.Sequential."""
    import torch
    from torch import nn

    class CroppedConv(nn.Conv2d):
        def forward(self, x):
            s = x.shape[-1]
            return super().forward(x)[:, :, 1 : s + 1, 1 : s + 1]

    def convert(conv):
        new = CroppedConv(conv.in_channels, conv.out_channels, conv.kernel_size, padding=4)
        new.to(device=conv.weight.device)
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            new.bias.copy_(conv.bias)
        if conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous():
            new.to(memory_format=torch.channels_last)
        return new

    if isinstance(G, nn.Sequential):
        i = next(k for k, m in enumerate(G) if isinstance(m, nn.ZeroPad2d))
        G[i] = nn.Identity()
        G[i + 1] = convert(G[i + 1])
    else:
        G.pad = nn.Identity()
        G.to_rgb = convert(G.to_rgb)


def _make_trainer(impl: str, size: int, batch: int, levers: list[str], dev, width: int = 128):
    """(step(uint8 batch) callable, description) for one training configuration."""
    import torch

    if impl == "plain":
        from benchmarks.plain_reference import PlainGAN, prepare_real

        gan = PlainGAN(size, batch, dev, width=width)
        if "rgbcrop" in levers:
            _rgb_crop(gan.G)
            gan.opt_G = torch.optim.Adam(gan.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        if "inplace" in levers:
            from latentctl.perf import inplace_activations

            inplace_activations(gan.G)
            inplace_activations(gan.D)
        if "cl" in levers:  # plain port with channels-last weights and inputs (lever scan only)
            gan.G.to(memory_format=torch.channels_last)
            gan.D.to(memory_format=torch.channels_last)

            def step(batch_u8):
                real = prepare_real(batch_u8.to(dev)).contiguous(memory_format=torch.channels_last)
                return gan.step(real)
        else:

            def step(batch_u8):
                return gan.step(prepare_real(batch_u8.to(dev)))

        return step, {"G": gan.G, "D": gan.D}

    from latentctl.config import ModelConfig, TrainConfig
    from latentctl.device import resolve_precision
    from latentctl.train.training import GANTrainer

    precision = "fp32" if "fp32" in levers else resolve_precision("auto", dev)
    cfg = TrainConfig(batch_size=batch, precision=precision, channels_last="cl" in levers)
    trainer = GANTrainer(ModelConfig(image_size=size, width=width), cfg, dev)
    if "rgbcrop" in levers:
        _rgb_crop(trainer.G)
        trainer.opt_G = torch.optim.Adam(trainer.G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if "inplace" in levers:
        from latentctl.perf import inplace_activations

        inplace_activations(trainer.G)
        inplace_activations(trainer.D)

    adam = next((lv.split("=", 1)[1] for lv in levers if lv.startswith("adam=")), None)
    if adam:  # adam=fused | adam=foreach: a proposed trainers.py change (_build_optimizers)
        kw = {"fused": True} if adam == "fused" else {"foreach": True}
        betas = (cfg.beta1, cfg.beta2)
        trainer.opt_G = torch.optim.Adam(trainer.G.parameters(), lr=trainer.config.lr, betas=betas, **kw)
        trainer.opt_D = torch.optim.Adam(trainer.D.parameters(), lr=trainer.config.d_lr, betas=betas, **kw)
    if "compile" in levers:  # in place, so the trainer and its optimizers keep the same modules
        trainer.G.compile()
        trainer.D.compile()

    def step(batch_u8):
        return trainer.step(trainer.prepare_real(batch_u8)).tolist()

    return step, {"G": trainer.G, "D": trainer.D, "precision": precision}


def _make_sampler(impl: str, size: int, levers: list[str], dev, width: int = 128):
    import torch

    if impl == "plain":
        from benchmarks.plain_reference import make_generator, sample

        G = make_generator(size, width=width).to(dev)
        if "rgbcrop" in levers:
            _rgb_crop(G)

        def run(z):
            return sample(G, torch.from_numpy(z).to(dev))

        return run, G, "fp32"

    from latentctl.config import ModelConfig
    from latentctl.device import resolve_precision
    from latentctl.models import build_models
    from latentctl.space.generate import generate_batches

    G, _ = build_models(ModelConfig(image_size=size, width=width))
    G.to(dev)
    if "rgbcrop" in levers:
        _rgb_crop(G)
    if "sampleprep" in levers:
        from latentctl.perf import prepare_for_sampling

        prepare_for_sampling(G, dev)
    precision = "fp32" if "fp32" in levers else resolve_precision("auto", dev)
    if "compile" in levers:
        G.compile()

    def run(z):
        return list(generate_batches(G, z, device=dev, batch_size=SAMPLE_BATCH, precision=precision))

    return run, G, precision


PROJECT_IMAGES, PROJECT_STEPS = 32, 5  # encode's default chunk (32 photos x 4 restarts), steps per "step"


def _make_projector(size: int, dev, width: int, tuner):
    """latentctl encode's projection: ``project`` on a chunk of 32 images, PROJECT_STEPS steps a call,
    the tuner (if any) setting each step's thread count inside, as ``encode_images`` does."""
    from latentctl.config import ModelConfig
    from latentctl.models import build_models
    from latentctl.space.encode import project

    G, _ = build_models(ModelConfig(image_size=size, width=width))
    G.to(dev)
    images = _real_pool(size, PROJECT_IMAGES, 1)[0].numpy()

    def run(_):
        return project(G, images, dev, steps=PROJECT_STEPS, restarts=4, thread_tuner=tuner)

    return run


class _Config:
    """One configuration inside a worker process: built once, then stepped on command."""

    def __init__(self, spec: dict, dev):
        import numpy as np
        import torch

        self.spec, self.dev = spec, dev
        self.kind, self.levers = spec["kind"], spec.get("levers", [])
        self.threads = next((int(lv.split("=", 1)[1]) for lv in self.levers if lv.startswith("threads=")), None)
        self.default_threads = torch.get_num_threads()
        # tuner=SECONDS: latentctl.perf.ThreadTuner picks the thread count per step (re-probing
        # every SECONDS); measures the proposed default for busy machines
        tuner = next((float(lv.split("=", 1)[1]) for lv in self.levers if lv.startswith("tuner=")), None)
        if tuner is not None:
            from latentctl.perf import ThreadTuner

            self.tuner = ThreadTuner(interval=tuner)
        else:
            self.tuner = None
        self._set_threads()
        size = spec["size"]
        self.flops_per_img = None
        if self.kind == "train":
            half = spec["batch"] // 2
            if spec.get("count_flops", True):
                # FLOPs of one step at a small batch on a throwaway instance, per real image: every op
                # is linear in the batch, so this is exact for the full batch.
                torch.manual_seed(1)
                plain_levers = [lv for lv in self.levers if lv != "compile"]  # same FLOPs, no second compile
                fstep, _ = _make_trainer(spec["impl"], size, 4, plain_levers, dev, spec.get("width", 128))
                small = _real_pool(size, 2, 1)[0]
                self.flops_per_img = _count_flops(lambda: fstep(small)) / 2
                del fstep
            torch.manual_seed(0)
            self.rss_before = _rss_mib()
            self.fn, info = _make_trainer(spec["impl"], size, spec["batch"], self.levers, dev, spec.get("width", 128))
            pool = _real_pool(size, half)
            self.arg = lambda i: pool[i % len(pool)]
            self.images_per_step = half
        elif self.kind == "encode":  # the tuner goes inside, around each projection step
            self.rss_before = _rss_mib()
            self.fn, info = _make_projector(size, dev, spec.get("width", 128), self.tuner), {}
            self.tuner = None  # project() brackets each of its steps itself
            self.arg = lambda i: None
            self.images_per_step = PROJECT_IMAGES * PROJECT_STEPS  # image-steps of projection per call
        else:
            run, G, precision = _make_sampler(spec["impl"], size, self.levers, dev, spec.get("width", 128))
            with torch.inference_mode():
                was = G.training
                G.eval()
                zf = torch.randn(2, 100, device=dev)
                self.flops_per_img = _count_flops(lambda: G.forward(zf)) / 2  # forward: not the compiled call
                G.train(was)
            rng = np.random.default_rng(0)
            zs = [rng.standard_normal((SAMPLE_BATCH, 100)).astype(np.float32) for _ in range(2)]
            self.rss_before = _rss_mib()
            self.fn, info = run, {"precision": precision}
            self.arg = lambda i: zs[i % 2]
            self.images_per_step = SAMPLE_BATCH
        self.precision = info.get("precision", "fp32")
        self.n = 0
        self.usage = [0.0, 0.0, 0]
        self._set_threads(default=True)

    def _set_threads(self, default: bool = False) -> None:
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.default_threads if default else self.threads)

    def step(self, measured: bool) -> float:
        self._set_threads()
        a = self.arg(self.n)
        self.n += 1
        if measured and not getattr(self, "_reset", False):
            _reset_mem(self.dev)
            self._reset = True
        _sync(self.dev)
        u0, s0, f0 = _rusage()
        if self.tuner is not None:
            self.tuner.before_step()
        t = time.perf_counter()
        self.fn(a)
        _sync(self.dev)
        dt = time.perf_counter() - t
        if self.tuner is not None:
            self.tuner.after_step(dt)
        if self.n == 1:
            self.first_step_s = dt  # includes torch.compile's compiling, where that lever is on
        u1, s1, f1 = _rusage()
        if measured:
            self.usage = [self.usage[0] + u1 - u0, self.usage[1] + s1 - s0, self.usage[2] + f1 - f0]
        self._set_threads(default=True)
        return dt

    def result(self, n_measured: int) -> dict:
        n = max(n_measured, 1)
        return {
            "flops_per_img": self.flops_per_img,
            "images_per_step": self.images_per_step,
            "rss_before_mib": self.rss_before,
            "peak_rss_mib": _peak_rss_mib(),  # the process's: one configuration per process except --quick
            "gpu_peak_mib": _gpu_peak_mib(self.dev),
            "precision": self.precision,
            "first_step_s": getattr(self, "first_step_s", None),
            "user_s_per_step": self.usage[0] / n,
            "sys_s_per_step": self.usage[1] / n,
            "minflt_per_step": self.usage[2] / n,
        }


def _worker_peak(spec: dict, dev) -> dict:
    import torch

    out = {}
    n = spec.get("n") or (8192 if dev.type == "cuda" else 2048)
    from latentctl.device import cpu_has_native_bf16

    native_bf16 = dev.type == "cuda" or (dev.type == "cpu" and cpu_has_native_bf16())
    dtypes = [torch.float32] + ([torch.bfloat16] if native_bf16 else [])
    for dt in dtypes:
        a = torch.randn(n, n, device=dev, dtype=dt)
        b = torch.randn(n, n, device=dev, dtype=dt)
        c = torch.empty(n, n, device=dev, dtype=dt)
        best = float("inf")
        for i in range(spec.get("reps", 8)):
            _sync(dev)
            t = time.perf_counter()
            torch.mm(a, b, out=c)
            _sync(dev)
            if i:  # the first is warm-up
                best = min(best, time.perf_counter() - t)
        out[str(dt).replace("torch.", "")] = 2 * n**3 / best / 1e9
    return {"peak_gflops": out, "n": n}


def _bucket(e) -> str:
    """Which part of a step a profiler event's self time belongs to (first match wins)."""
    chain, p = [e.name], e.cpu_parent
    while p is not None:
        chain.append(p.name)
        p = p.cpu_parent
    if any(n.startswith("Optimizer.") for n in chain):
        return "optimizer (Adam step, zero_grad)"
    if e.name in ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous", "aten::to") or e.name.endswith(
        "ToCopyBackward0"
    ):
        return "layout and dtype conversions (to/copy/clone)"
    if any("cross_entropy" in n.lower() or "log_sigmoid" in n.lower() or "CrossEntropy" in n for n in chain):
        return "loss (BCE with logits, fwd+bwd)"
    conv = any(n in ("aten::convolution", "aten::convolution_backward") for n in chain)
    back = any(n.startswith("autograd::engine::evaluate_function") for n in chain)
    linear = any(n in ("aten::addmm", "aten::mm", "aten::linear") for n in chain)
    part = (
        "convolutions"
        if conv
        else "dense layers"
        if linear
        else "everything else (activations, padding, sampling z, ...)"
    )
    return f"{'backward' if back else 'forward'}: {part}"


def _layer_key(e) -> str | None:
    """A convolution layer named by its input and weight shapes (from the nearest conv op)."""
    p = e
    while p is not None and p.name not in ("aten::convolution", "aten::convolution_backward"):
        p = p.cpu_parent
    if p is None or not p.input_shapes:
        return None
    shapes = p.input_shapes
    x, w = (shapes[0], shapes[1]) if p.name == "aten::convolution" else (shapes[1], shapes[2])
    transposed = (
        bool(p.concrete_inputs[6])
        if p.name == "aten::convolution" and len(getattr(p, "concrete_inputs", []) or []) > 6
        else None
    )
    kind = "convT" if transposed else "conv"
    if (
        transposed is None
    ):  # backward: the weight layout says (in, out) for transposed ones; not recorded, so shapes only
        kind = "conv/convT"
    return f"{kind} in {tuple(x[1:])} w {tuple(w)} ({'bwd' if p.name.endswith('backward') else 'fwd'})"


def _profile(spec: dict) -> dict:
    """Where one training step and one sampling batch spend their time (torch.profiler, self CPU
    time per op, grouped), and the convolutions' FLOP rate against the matmul peak."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from latentctl import perf

    perf.tune_allocator()
    dev = torch.device("cpu")
    size, batch, steps = spec["size"], spec["batch"], spec["steps"]
    out = {"size": size, "batch": batch, "threads": torch.get_num_threads()}
    for kind in ("train", "sample"):
        if kind == "train":
            fn, info = _make_trainer("latentctl", size, batch, ["cl", "alloc"] + spec.get("levers", []), dev)
            pool = _real_pool(size, batch // 2)
            run = lambda i: fn(pool[i % len(pool)])  # noqa: E731, B023 (used in this iteration only)
            small_fn, _ = _make_trainer("latentctl", size, 4, ["cl", "alloc"] + spec.get("levers", []), dev)
            small = _real_pool(size, 2, 1)[0]
            count, scale = (lambda: small_fn(small)), batch / 4  # noqa: B023
        else:
            sampler, G, precision = _make_sampler("latentctl", size, ["sampleprep", "alloc"], dev)
            import numpy as np

            z = np.random.default_rng(0).standard_normal((SAMPLE_BATCH, 100)).astype(np.float32)
            run = lambda i: sampler(z)  # noqa: E731, B023
            info = {"precision": precision}

            def count():
                with torch.inference_mode():
                    sampler(z[:2])  # noqa: B023

            scale = SAMPLE_BATCH / 2
        for i in range(2):  # warm-up: oneDNN picks and caches its kernels
            run(i)
        with FlopCounterMode(display=False) as fc:
            count()
        flops = {str(k): v * scale for k, v in fc.get_flop_counts().get("Global", {}).items()}
        conv_flops = sum(v for k, v in flops.items() if "convolution" in k) / 1  # per step (or batch)
        t = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for i in range(steps):
                run(i)
        wall = (time.perf_counter() - t) / steps
        buckets: dict[str, float] = {}
        layers: dict[str, float] = {}
        others: dict[str, float] = {}  # the ops outside convolutions, dense layers and the named parts
        for e in prof.events():
            self_s = e.self_cpu_time_total / 1e6 / steps
            b = _bucket(e)
            buckets[b] = buckets.get(b, 0.0) + self_s
            if "convolutions" in b:
                key = _layer_key(e)
                if key:
                    layers[key] = layers.get(key, 0.0) + self_s
            elif "everything else" in b:
                key = f"{e.name} ({b.split(':')[0]})"
                others[key] = others.get(key, 0.0) + self_s
        conv_s = sum(v for k, v in buckets.items() if "convolutions" in k)
        out[kind] = {
            "wall_s": wall,
            "buckets": buckets,
            "layers": layers,
            "others": others,
            "conv_flops": conv_flops,
            "conv_s": conv_s,
            "precision": info.get("precision", "fp32"),
            "flops": flops,
        }
    out["peak"] = _worker_peak({"n": 2048, "reps": 6}, dev)["peak_gflops"]
    return out


def _print_profile(p: dict) -> None:
    peak = p["peak"]
    for kind in ("train", "sample"):
        r = p[kind]
        what = f"one training step, batch {p['batch']}" if kind == "train" else f"one sampling batch of {SAMPLE_BATCH}"
        print(
            f"\nPROFILE {p['size']} px, {what}, {r['precision']}, {p['threads']} threads: {r['wall_s']:.3f} s wall "
            "(profiler on; self CPU time per op, summed by part)"
        )
        total = sum(r["buckets"].values())
        for name, v in sorted(r["buckets"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:<58} {v:>8.3f} s {100 * v / total:>5.1f} %")
        pk = peak.get("bfloat16" if r["precision"] == "bf16" else "float32") or peak["float32"]
        rate = r["conv_flops"] / r["conv_s"] / 1e9 if r["conv_s"] else 0.0
        print(
            f"  convolutions: {r['conv_flops'] / 1e9:.1f} GFLOP in {r['conv_s']:.3f} s = {rate:.0f} GFLOP/s, "
            f"{100 * rate / pk:.0f} % of the {r['precision']} matmul peak ({pk:.0f} GFLOP/s)"
        )
        print("  convolution layers (self time):")
        for name, v in sorted(r["layers"].items(), key=lambda kv: -kv[1])[:10]:
            print(f"    {name:<70} {v:>7.3f} s")
        print("  everything else, by op (self time):")
        for name, v in sorted(r["others"].items(), key=lambda kv: -kv[1])[:8]:
            print(f"    {name:<70} {v:>7.3f} s")


def _emit(tag: str, obj) -> None:
    sys.stdout.write(f"@@{tag} {json.dumps(obj)}\n")
    sys.stdout.flush()


def _worker_serve(specs: list[dict]) -> None:
    """Build every configuration in ``specs``, then answer commands on stdin, one JSON per line:
    {"op": "step", "cfg": i, "measured": bool} -> @@STEP seconds; {"op": "peak"} -> @@PEAK {...};
    {"op": "done", "n": [measured steps per configuration]} -> @@RESULT [...] and exit."""
    sys.path.insert(0, str(ROOT))
    import torch

    applied = _apply_levers(sorted({lv for s in specs for lv in s.get("levers", []) if lv.startswith("alloc")}))
    from latentctl.device import resolve_device

    dev = resolve_device(specs[0].get("device", "auto"))
    configs = [_Config(s, dev) if s["kind"] != "peak" else None for s in specs]
    _emit("READY", {"device": str(dev), "torch": torch.__version__, "applied": applied})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "step":
            _emit("STEP", configs[cmd["cfg"]].step(cmd["measured"]))
        elif cmd["op"] == "profile":
            _emit("PROFILE", _profile(cmd))
        elif cmd["op"] == "peak":
            _emit("PEAK", _worker_peak(cmd, dev))
        elif cmd["op"] == "done":
            _emit("RESULT", [c.result(cmd["n"][i]) if c else {} for i, c in enumerate(configs)])
            return


# --------------------------------------------------------------------------------------------------
# parent side (no torch)


class _Worker:
    """A worker subprocess hosting one or more configurations (parent side)."""

    def __init__(self, specs: list[dict]):
        import tempfile

        env = dict(os.environ)
        for k in specs[0].get("unset", []):  # e.g. a wait policy inherited from the parent
            env.pop(k, None)
        env.update(specs[0].get("env", {}))  # OpenMP reads its environment when torch loads
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.specs = specs
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed with the worker
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench", "--worker", json.dumps(specs)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.info = self._read("READY")

    def _read(self, tag: str):
        for line in self.proc.stdout:
            if line.startswith(f"@@{tag} "):
                return json.loads(line[len(tag) + 3 :])
        self.proc.wait()
        self.stderr.seek(0)
        names = [s.get("name") for s in self.specs]
        raise SystemExit(
            f"benchmark worker for {names} failed (exit {self.proc.returncode}):\n{self.stderr.read()[-4000:]}"
        )

    def ask(self, tag: str, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read(tag)

    def close(self, n_measured: list[int]) -> list[dict]:
        res = self.ask("RESULT", op="done", n=n_measured)
        self.proc.wait()
        return res


def _run_group(groups: list[list[dict]], warmup: int, steps: int, budget: float | None, label: str) -> list[dict]:
    """Run configurations step-interleaved: every round does one step of each, in a rotating order,
    so a slow spell of a shared machine hits all of them alike. ``groups`` lists the configurations
    per worker process. Returns one result per configuration, in order."""
    t0 = time.perf_counter()
    workers = [_Worker(g) for g in groups]
    slots = [(w, i) for w in workers for i in range(len(w.specs))]
    print(
        f"  {label}: {len(slots)} configurations ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True
    )
    times: list[list[float]] = [[] for _ in slots]
    for _ in range(warmup):
        for w, i in slots:
            w.ask("STEP", op="step", cfg=i, measured=False)
    measured_s = 0.0
    for r in range(steps):
        k = r % len(slots)
        for j in list(range(k, len(slots))) + list(range(k)):
            w, i = slots[j]
            dt = w.ask("STEP", op="step", cfg=i, measured=True)
            times[j].append(dt)
            measured_s += dt
        print(f"    round {r + 1}: " + ", ".join(f"{t[-1]:.2f}" for t in times) + " s", file=sys.stderr, flush=True)
        if budget and r + 1 >= 2 and measured_s > budget * len(slots):
            break
    results = []
    for w in workers:
        idx = [j for j, (ww, _) in enumerate(slots) if ww is w]
        res = w.close([len(times[j]) for j in idx])
        for j, r in zip(idx, res):
            r.update(w.info)
            r["step_times"] = times[j]
            results.append((j, r))
    return [r for _, r in sorted(results, key=lambda x: x[0])]


def _peak(device: str, reps: int) -> dict:
    w = _Worker([{"name": "peak", "kind": "peak", "device": device, "levers": []}])
    res = w.ask("PEAK", op="peak", reps=reps)
    w.close([0])
    return {**res, **w.info}


def _help_time(reps: int) -> dict:
    exe = Path(sys.executable).with_name("latentctl")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "latentctl", "--help"]
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    shown = "latentctl" if exe.exists() else "python -m latentctl"
    return {"command": shown, "median_s": statistics.median(times), "times": times}


def _machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    info["cpu"] = cpu_model()
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    except (OSError, StopIteration):
        pass
    return info


def _steps_for(size: int, args) -> tuple[int, int]:
    warm, steps = (1, 2) if args.quick else (1, 5) if size >= 128 else (2, 8)
    return (args.warmup if args.warmup is not None else warm), (args.steps if args.steps is not None else steps)


OMP_ENV = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_PROC_BIND": "close"}
THP_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}  # malloc madvises transparent huge pages

# The summary: plain vs latentctl as `train` / `sample` run it (auto precision: bf16 on GPUs and on
# CPUs with native bf16), and the same in float32 to show what bf16 adds.
TRAIN_CONFIGS = [
    ("plain", "plain", [], {}),
    ("latentctl, float32", "latentctl", ["cl", "alloc", "fp32"], {}),
    ("latentctl as `train` runs it (auto precision)", "latentctl", ["cl", "alloc"], {}),
]
SAMPLE_CONFIGS = [
    ("plain", "plain", [], {}),
    ("latentctl, float32", "latentctl", ["sampleprep", "alloc", "fp32"], {}),
    ("latentctl as `sample` runs it (auto precision)", "latentctl", ["sampleprep", "alloc"], {}),
]

# --scan: each lever alone on the plain port, then stacked on latentctl's trainer (in auto precision:
# bf16 on GPUs and on CPUs with native bf16). Spinning OpenMP threads (OMP_WAIT_POLICY=ACTIVE) take
# cores from the configurations interleaved with them, so those rows are only fair measured alone.
SCAN_TRAIN = [
    ("plain", "plain", [], {}),
    ("plain, 1 thread", "plain", ["threads=1"], {}),
    ("plain + alloc (mmap 1 GiB, trim 1 GiB)", "plain", ["alloc=1073741824:1073741824"], {}),
    ("plain + alloc (mmap 1 GiB, trim INT_MAX)", "plain", ["alloc=1073741824:max"], {}),
    ("plain + alloc (never mmap, never trim) = perf", "plain", ["alloc"], {}),
    ("plain + channels-last", "plain", ["cl"], {}),
    ("plain + in-place LeakyReLU", "plain", ["inplace"], {}),
    ("plain + pad-free last conv (rgbcrop)", "plain", ["rgbcrop"], {}),
    ("plain + OMP_WAIT_POLICY=ACTIVE, PROC_BIND=close", "plain", [], OMP_ENV),
    ("latentctl loop, NCHW (one G forward reused)", "latentctl", [], {}),
    ("latentctl + channels-last (CLI default)", "latentctl", ["cl"], {}),
    ("latentctl + cl + alloc", "latentctl", ["cl", "alloc"], {}),
    ("latentctl + cl + alloc + in-place = perf", "latentctl", ["cl", "alloc", "inplace"], {}),
    ("latentctl + cl + alloc + in-place + rgbcrop", "latentctl", ["cl", "alloc", "inplace", "rgbcrop"], {}),
    ("latentctl + cl + alloc + in-place + OMP env", "latentctl", ["cl", "alloc", "inplace"], OMP_ENV),
    (
        "latentctl + cl + alloc + in-place + OMP_WAIT_POLICY=ACTIVE",
        "latentctl",
        ["cl", "alloc", "inplace"],
        {"OMP_WAIT_POLICY": "ACTIVE"},
    ),
    (
        "latentctl + cl + alloc + in-place + OMP_PROC_BIND=close",
        "latentctl",
        ["cl", "alloc", "inplace"],
        {"OMP_PROC_BIND": "close"},
    ),
    ("latentctl + cl + alloc + in-place + THP (GLIBC_TUNABLES)", "latentctl", ["cl", "alloc", "inplace"], THP_ENV),
    ("latentctl + cl + alloc + torch.compile", "latentctl", ["cl", "alloc", "compile"], {}),
    ("latentctl as `train` runs it, Adam as trainers.py builds it", "latentctl", ["cl", "alloc"], {}),
    ("latentctl as `train` runs it, Adam(fused=True)", "latentctl", ["cl", "alloc", "adam=fused"], {}),
    ("latentctl as `train` runs it, Adam(foreach=True)", "latentctl", ["cl", "alloc", "adam=foreach"], {}),
]
SCAN_SAMPLE = [
    ("plain", "plain", [], {}),
    ("generate, as is", "latentctl", [], {}),
    ("generate + alloc", "latentctl", ["alloc"], {}),
    ("generate + prepare_for_sampling", "latentctl", ["sampleprep"], {}),
    ("generate + prepare_for_sampling + alloc = perf", "latentctl", ["sampleprep", "alloc"], {}),
    ("generate + prepare_for_sampling + alloc + rgbcrop", "latentctl", ["sampleprep", "alloc", "rgbcrop"], {}),
    ("generate + prepare_for_sampling + alloc + OMP env", "latentctl", ["sampleprep", "alloc"], OMP_ENV),
    ("generate + prepare_for_sampling + alloc + THP", "latentctl", ["sampleprep", "alloc"], THP_ENV),
    ("generate + prepare_for_sampling + alloc + torch.compile", "latentctl", ["sampleprep", "alloc", "compile"], {}),
]


def _fmt(v, spec: str = ".2f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _row(name: str, spec: dict, runs: list[dict], base_runs: list[dict] | None) -> dict:
    """One table row from one or more interleaved runs of a configuration."""
    times = [t for r in runs for t in r["step_times"]]
    first = runs[0]
    row = {k: spec[k] for k in ("kind", "impl", "size", "batch", "levers", "env") if k in spec}
    row["name"] = name
    row["step_times"] = times
    row["step_s"] = statistics.median(times)
    row["img_s"] = first["images_per_step"] / row["step_s"]
    # paired ratio: each interleaved round's plain step time over this configuration's, median
    ratios = []
    if base_runs is not None:
        for r, b in zip(runs, base_runs):
            ratios += [tb / t for t, tb in zip(r["step_times"], b["step_times"])]
    row["vs_plain"] = statistics.median(ratios) if ratios else None
    row["flops_per_img"] = next((r["flops_per_img"] for r in runs if r.get("flops_per_img")), None)
    row["gflops_s"] = row["flops_per_img"] * row["img_s"] / 1e9 if row["flops_per_img"] else None
    for key in ("peak_rss_mib", "gpu_peak_mib"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        row[key] = max(vals) if vals else None
    for key in ("user_s_per_step", "sys_s_per_step", "minflt_per_step"):
        row[key] = statistics.mean(r[key] for r in runs)
    row["precision"] = first.get("precision")
    row["device"] = first.get("device")
    row["first_step_s"] = first.get("first_step_s")
    return row


def _print_table(title: str, rows: list[dict], peaks: dict[str, float], quick: bool) -> None:
    """% peak is against the matmul peak of the row's precision (bfloat16 rows: the bf16 peak)."""
    print(f"\n{title}")
    head = (
        f"{'configuration':<56} {'prec':>4} {'step s':>8} {'img/s':>7} {'vs plain':>8} {'GFLOP/img':>9} {'GFLOP/s':>7} "
        f"{'% peak':>6} {'peak MiB':>8} {'sys s/step':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        peak = peaks.get("bfloat16" if r.get("precision") == "bf16" else "float32") or peaks.get("float32")
        r["pct_peak"] = 100 * r["gflops_s"] / peak if peak and r.get("gflops_s") else None
        mem = r["gpu_peak_mib"] if r.get("gpu_peak_mib") is not None else (None if quick else r.get("peak_rss_mib"))
        print(
            f"{r['name']:<56} {r.get('precision') or '-':>4} {r['step_s']:>8.3f} {r['img_s']:>7.2f} {_fmt(r['vs_plain'], '.2f') + 'x':>8} "
            f"{_fmt(r['flops_per_img'] and r['flops_per_img'] / 1e9, '.2f'):>9} {_fmt(r.get('gflops_s'), '.1f'):>7} "
            f"{_fmt(r['pct_peak'], '.0f'):>6} {_fmt(mem, '.0f'):>8} {_fmt(r.get('sys_s_per_step'), '.2f'):>10}"
        )
    for r in rows:
        if "compile" in r.get("levers", []) and r.get("first_step_s") is not None:
            print(
                f"  {r['name']}: first step {r['first_step_s']:.1f} s (includes compiling) vs {r['step_s']:.2f} s after"
            )


def _measure(kind: str, size: int, cfgs: list, args, batch: int, budget: float | None, group_size: int) -> list[dict]:
    """Interleaved runs of ``cfgs`` (the first is the baseline, "plain"), in groups that each repeat
    the baseline, so every ratio is paired with a baseline run interleaved with it."""
    warm, steps = _steps_for(size, args) if kind == "train" else (1, args.sample_steps or (2 if args.quick else 3))
    specs = []
    for name, impl, levers, env in cfgs:
        spec = {
            "name": name,
            "kind": kind,
            "impl": impl,
            "size": size,
            "levers": levers,
            "env": env,
            "device": args.device,
        }
        if kind == "train":
            spec["batch"] = batch
        specs.append(spec)
    base, others = specs[0], specs[1:]
    chunks = [others[i : i + group_size] for i in range(0, len(others), group_size)] or [[]]
    runs: dict[int, list[dict]] = {i: [] for i in range(len(specs))}
    for c, chunk in enumerate(chunks):
        group = [base] + chunk
        ids = [0] + [1 + others.index(x) for x in chunk]
        for k, spec in zip(range(len(group)), group):
            spec["count_flops"] = not runs[ids[k]]
        label = f"{kind} {size} px" + (f", group {c + 1}/{len(chunks)}" if len(chunks) > 1 else "")
        procs = [group] if args.quick else [[g] for g in group]
        res = _run_group(procs, warm, steps, budget, label)
        for i, r in zip(ids, res):
            runs[i].append(r)
    rows = []
    for i, spec in enumerate(specs):
        rows.append(_row(spec["name"], spec, runs[i], runs[0]))
    for r in rows:
        r["warmup"] = warm
    return rows


def _loader_table(sizes: list[int], tables: list, args) -> None:
    """First-time decode and cached batch rates (benchmarks/loader_speed.py, in a subprocess), set
    against the fastest latentctl training rate measured above at the same size."""
    n = 256 if args.quick else 2000
    print(
        f"\nLOADER ({n} synthetic PNGs per size; batches of 64 real images from the decoded cache, to floats on the device)"
    )
    print(f"{'size':>5} {'decode img/s':>13} {'cached img/s':>13} {'training img/s':>15} {'cached / training':>18}")
    for size in sizes:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.loader_speed",
                "--size",
                str(size),
                "--images",
                str(n),
                "--device",
                args.device,
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"{size:>5} loader benchmark failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        trained = [
            row["img_s"]
            for kind, sz, rows in tables
            if kind == "train" and sz == size
            for row in rows
            if row["impl"] == "latentctl"
        ]
        best = max(trained) if trained else None
        print(
            f"{size:>5} {r['decode_img_s']:>13.0f} {r['cached_img_s']:>13.0f} {_fmt(best, '.2f'):>15} "
            f"{_fmt(best and r['cached_img_s'] / best, '.0f') + 'x':>18}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="image sizes, comma-separated [64,128; --quick: 32]")
    p.add_argument("--batch", type=int, default=None, help="training batch B (D sees B/2 real) [128; --quick: 16]")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="at most this many measured (interleaved) steps per configuration [8 below 128 px, 5 at 128 px and up; --quick: 2]",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="warm-up steps per configuration [2 below 128 px, 1 at 128 px and up]"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="stop measuring (after at least 2 steps) once the configurations used this many seconds each [60; --quick: none]",
    )
    p.add_argument("--sample-steps", type=int, default=None, help="measured sampling batches of 64 [3]")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 32 px, batch 16, 1+2 steps, all configurations in one process"
    )
    p.add_argument(
        "--scan", action="store_true", help="measure every CPU lever alone and stacked instead of the summary"
    )
    p.add_argument(
        "--only",
        default=None,
        help="with --scan: only configurations whose name contains one of these comma-separated strings (plain is always run)",
    )
    p.add_argument(
        "--group",
        type=int,
        default=None,
        help="configurations interleaved together besides plain [--scan: 3, else all]",
    )
    p.add_argument("--no-sample", action="store_true", help="skip sampling")
    p.add_argument("--no-train", action="store_true", help="skip training")
    p.add_argument("--no-loader", action="store_true", help="skip the data loader measurement")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    p.add_argument(
        "--profile",
        action="store_true",
        help="where a training step and a sampling batch spend their time (torch.profiler; CPU), at --sizes [64]",
    )
    p.add_argument("--adam", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker is not None:
        _worker_serve(json.loads(args.worker))
        return 0

    sizes = [int(s) for s in (args.sizes or ("32" if args.quick else "64" if args.profile else "64,128")).split(",")]
    batch = args.batch or (16 if args.quick else 128)
    if args.profile:
        machine = _machine()
        print(
            f"machine: {machine.get('cpu', '?')}, {machine.get('cpus')} CPUs, SIMD {'/'.join(machine.get('simd', []))}",
            flush=True,
        )
        for size in sizes:
            levers = [f"adam={args.adam}"] if args.adam else []
            w = _Worker([{"name": "profile", "kind": "peak", "device": "cpu", "levers": []}])
            res = w.ask("PROFILE", op="profile", size=size, batch=batch, steps=args.steps or 2, levers=levers)
            w.close([0])
            _print_profile(res)
            if args.json:
                args.json.write_text(json.dumps(res, indent=2))
        return 0
    budget = args.budget if args.budget is not None else (None if args.quick else 60.0)
    if budget is not None and budget <= 0:
        budget = None
    t_start = time.perf_counter()
    machine = _machine()
    print(
        f"machine: {machine.get('cpu', '?')}, {machine.get('cpus')} CPUs, SIMD {'/'.join(machine.get('simd', [])) or '?'}; "
        f"python {machine['python']}",
        flush=True,
    )

    train_cfgs = [] if args.no_train else (SCAN_TRAIN if args.scan else TRAIN_CONFIGS)
    sample_cfgs = [] if args.no_sample else (SCAN_SAMPLE if args.scan else SAMPLE_CONFIGS)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        train_cfgs, sample_cfgs = (
            [c for i, c in enumerate(cfgs) if i == 0 or any(k in c[0] for k in keys)]
            for cfgs in (train_cfgs, sample_cfgs)
        )
    reps = 3 if args.quick else 12
    peaks = [_peak(args.device, reps)]
    if not args.scan and "bfloat16" not in peaks[0]["peak_gflops"]:
        # No native bf16 (AVX2-only CPUs): `auto` is float32, so the float32 row would measure the
        # same configuration twice, and at 128 px three ~9 GiB processes do not fit in 24 GiB.
        train_cfgs, sample_cfgs = ([c for c in cfgs if "fp32" not in c[2]] for cfgs in (train_cfgs, sample_cfgs))
        print("  no native bf16 here: `auto` is float32, measured once", flush=True)
    tables = []
    for size in sizes:
        for kind, cfgs in (("train", train_cfgs), ("sample", sample_cfgs)):
            if cfgs:
                tables.append(
                    (kind, size, _measure(kind, size, cfgs, args, batch, budget, args.group or (3 if args.scan else 8)))
                )
    if not args.quick:
        peaks.append(_peak(args.device, reps))
    peak = {k: max(pk["peak_gflops"][k] for pk in peaks) for k in peaks[0]["peak_gflops"]}
    device = peaks[0]["device"]

    print(
        f"\ndevice {device}, torch {peaks[0]['torch']}; peak = best "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
        + f" ({peaks[0]['n']}^2 matmul; float32 at start {peaks[0]['peak_gflops']['float32']:.0f}"
        + (f", at end {peaks[-1]['peak_gflops']['float32']:.0f}" if len(peaks) > 1 else "")
        + ")"
    )
    if args.quick:
        print(
            "--quick: all configurations of a table share one process (allocator tuning applies to all of them, "
            "peak memory is not per configuration); figures are for smoke testing only"
        )
    else:
        print(
            "every configuration in its own process; steps interleaved round by round; 'vs plain' = median of "
            "per-round paired ratios"
            + (f"; measuring stops after {budget:.0f} s per configuration (at least 2 steps)" if budget else "")
        )
    summary = []
    for kind, size, rows in tables:
        n_steps = "/".join(str(len(r["step_times"])) for r in rows)
        if kind == "train":
            title = (
                f"TRAINING {size} px, batch {batch} ({batch // 2} real images per step; img/s = real images/s), "
                f"median of {n_steps} steps after {rows[0]['warmup']} warm-up"
            )
        else:
            title = (
                f"SAMPLING {size} px, batch {SAMPLE_BATCH}, generator only, inference (+ uint8 conversion), "
                f"median of {n_steps} batches after 1 warm-up"
            )
        _print_table(title, rows, peak, args.quick)
        summary += rows

    if not args.no_loader:
        _loader_table(sizes, tables, args)

    help_t = _help_time(2 if args.quick else 5)
    status = "meets" if help_t["median_s"] <= 0.3 else "misses"
    print(
        f"\n`{help_t['command']} --help`: median {help_t['median_s']:.2f} s of {len(help_t['times'])} runs ({status} the 0.3 s target)"
    )
    total = time.perf_counter() - t_start
    print(f"total benchmark time {total:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "peak": peak,
                    "peaks": peaks,
                    "device": device,
                    "summary": summary,
                    "help": help_t,
                    "total_s": total,
                    "argv": sys.argv[1:] if argv is None else argv,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
