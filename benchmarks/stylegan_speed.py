"""StyleGAN2 synthesis speed on this CPU: s/image and % of the float32 matmul peak, ours vs NVIDIA's.

    python -m benchmarks.stylegan_speed                         # 256, 512 and 1024 px (long on 2 cores)
    python -m benchmarks.stylegan_speed --quick                 # 256 px only, fewer repetitions
    python -m benchmarks.stylegan_speed --nvidia ~/stylegan2-ada-pytorch --json out.json
    python -m benchmarks.stylegan_speed --levers --sizes 256    # each speed lever of stylegan2.py alone

Randomly initialised generators with NVIDIA's paper configurations (FFHQ-like: z/w 512, 8 mapping
layers, channel_max 512, skip architecture, conv_clamp 256; channel_base 16384 at 256 px as in
the ADA paper's paper256 config, 32768 at 512 and 1024 px). Timed: sampling (mapping + synthesis
under ``torch.inference_mode``) at batch 1 and 4, and one projection step at batch 1 (synthesis
forward from ws that require grad, a scalar loss, backward to ws; the generator's own parameters
frozen, as a projector does).

``--nvidia DIR`` also times NVIDIA's Generator from the user's own stylegan2-ada-pytorch checkout
(imported at run time from DIR, never copied; NVIDIA's licence is non-commercial) on its float32
reference path (``force_fp32=True``; on CPU its custom ops fall back to their reference
implementations), built with the same config and carrying the same weights (copied from NVIDIA's
random init into ours), interleaved repetition by repetition with ours so both see the same load.
The largest pixel difference between the two is printed too.

FLOPs are counted analytically from the layer shapes (multiply-adds x 2): the modulated 3x3
convolutions (an upsampling one as the stride-2 transposed convolution it is, i.e. at its input
resolution), the 4x4 FIR filters, the 1x1 ToRGB convolutions, the mapping network and the weight
modulation; activations, noise and biases are not counted. A projection step counts 3x the
synthesis FLOPs (forward, gradient w.r.t. the activations, gradient w.r.t. the modulated weights).
"% peak" compares the achieved rate with a large float32 torch.mm measured in the same run
(the best of several, before and after the timings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

from benchmarks.machine import cpu_model

CONFIGS = {256: 16384, 512: 32768, 1024: 32768}  # resolution -> channel_base (channel_max 512)

# The clock every timing reads: wall time (perf_counter), or with --clock cpu the CPU time of this
# process (process_time), which a busy machine's other processes do not inflate; use it with
# --threads 1, where it is the one core's compute time (with more threads it counts their waits).
CLOCK = time.perf_counter
ALL_TASKS = {"sample1": ("sample", 1), "sample4": ("sample", 4), "project": ("project step", 1)}
TASKS = list(ALL_TASKS.values())


def _machine() -> dict:
    import torch

    info = {"cpu": cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads()}
    info["platform"] = platform.platform()
    info["torch"] = torch.__version__
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["simd"] = [f for f in ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    except (OSError, StopIteration):
        pass
    from latentctl.device import cpu_has_native_bf16

    info["native_bf16"] = cpu_has_native_bf16()
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def matmul_peak(n: int = 2048, reps: int = 8) -> float:
    """Best float32 GFLOP/s of an n x n torch.mm (the first run is warm-up)."""
    import torch

    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    best = float("inf")
    for i in range(reps):
        t = CLOCK()
        torch.mm(a, b, out=c)
        if i:
            best = min(best, CLOCK() - t)
    return 2 * n**3 / best / 1e9


def synthesis_flops(gen) -> int:
    """FLOPs (2 x multiply-adds) of one image's mapping + synthesis, from the layer shapes."""
    from latentctl.models.stylegan2 import _StyledConv

    flops = 0
    for layer in gen.mapping_net.layers:
        flops += 2 * layer.weight.numel()
    for stage in gen.stages:
        for conv in stage.modules():
            if not isinstance(conv, _StyledConv):
                continue
            out_c, in_c, k, _ = conv.weight.shape
            res = conv.resolution
            in_res = res // conv.up
            flops += 2 * conv.style.weight.numel()  # the style (affine) layer
            flops += 2 * out_c * in_c * k * k  # modulation (and demodulation) of the weights
            flops += 2 * out_c * in_c * k * k * in_res * in_res  # the (transposed) convolution
            if conv.up > 1:
                taps = int(conv.fir.numel())
                flops += 2 * taps * out_c * res * res  # the FIR after the transposed convolution
        if not stage.is_first and gen.architecture == "skip":  # the RGB skip path's 2x upsampling
            flops += 2 * int(stage.fir.numel()) * gen.img_channels * (stage.rgb.resolution // 2) ** 2
    return flops


def build_ours(res: int):
    import torch

    from latentctl.models.stylegan2 import StyleGAN2Generator

    torch.manual_seed(0)
    gen = StyleGAN2Generator(
        resolution=res, channel_base=CONFIGS[res], channel_max=512, architecture="skip", conv_clamp=256
    ).eval()
    with torch.no_grad():  # a random but plausible net: the FIR NVIDIA stores, some noise
        f = torch.tensor([1.0, 3.0, 3.0, 1.0])
        for name, buf in gen.named_buffers():
            if name.endswith("fir"):
                buf.copy_(torch.outer(f, f) / 64)
        for name, p in gen.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    gen.requires_grad_(False)
    return gen


def _import_nvidia(nvidia_dir: Path):
    """NVIDIA's training.networks.Generator, imported from the user's checkout."""
    sys.path.insert(0, str(nvidia_dir))
    try:
        import requests  # noqa: F401  (dnnlib imports it at module level, only to download)
    except ModuleNotFoundError:
        sys.modules["requests"] = types.ModuleType("requests")
    from training.networks import Generator  # type: ignore[import-not-found]

    return Generator


def build_nvidia(Generator, res: int, ours):
    """NVIDIA's Generator with the same config; its random init copied into ``ours`` too."""
    import torch

    from latentctl.importers.nvidia_pickle import _stylegan2_names

    torch.manual_seed(0)
    nv = Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(
            channel_base=CONFIGS[res], channel_max=512, num_fp16_res=4, conv_clamp=256, architecture="skip"
        ),
    ).eval()
    with torch.no_grad():
        for name, p in nv.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
        mapped = {}
        for name, value in nv.state_dict().items():
            ours_name = _stylegan2_names(name)
            if ours_name:
                mapped[ours_name] = value
        missing, unexpected = ours.load_state_dict(mapped, strict=False)
        assert not unexpected and not [m for m in missing if not m.endswith("fir")], (missing, unexpected)
    nv.requires_grad_(False)
    return nv


# ---- what is timed ---------------------------------------------------------------------------------


def _sampler(kind: str, gen, batch: int):
    import torch

    z = torch.randn(batch, 512, generator=torch.Generator().manual_seed(1))

    if kind == "nvidia":

        def run():
            with torch.inference_mode():
                ws = gen.mapping(z, None)
                return gen.synthesis(ws, noise_mode="const", force_fp32=True)

    else:

        def run():
            with torch.inference_mode():
                return gen(z, noise_mode="const")

    return run


def _projection_step(kind: str, gen):
    import torch

    with torch.no_grad():
        ws0 = gen.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(2)), None)
    res = gen.img_resolution if kind == "nvidia" else gen.resolution
    target = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(5))

    def run():
        ws = ws0.clone().requires_grad_(True)
        if kind == "nvidia":
            img = gen.synthesis(ws, noise_mode="const", force_fp32=True)
        else:
            img = gen.synthesis(ws, noise_mode="const")
        loss = (img - target).square().mean()
        loss.backward()
        return ws.grad

    return run


def _time_interleaved(fns: dict, reps: int, warmup: int) -> dict[str, list[float]]:
    """Run every function ``warmup`` times, then ``reps`` rounds of one call each, interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = CLOCK()
            fn()
            times[name].append(CLOCK() - t)
    return times


def _row(impl: str, size: int, task: str, batch: int, times: list[float], flops_img: float, peak: float) -> dict:
    med = statistics.median(times)
    gflops = flops_img * batch / med / 1e9
    return {
        "impl": impl,
        "size": size,
        "task": task,
        "batch": batch,
        "s_per_img": med / batch,
        "best_s_per_img": min(times) / batch,
        "img_s": batch / med,
        "gflop_per_img": flops_img / 1e9,
        "gflops_s": gflops,
        "pct_peak": 100 * gflops / peak,
        "times": times,
    }


def _print_rows(rows: list[dict]) -> None:
    print(
        f"{'size':>5} {'task':<16} {'impl':<8} {'s/img':>8} {'best':>8} {'img/s':>7} "
        f"{'GFLOP/img':>9} {'GFLOP/s':>8} {'% peak':>6} {'vs NVIDIA':>9}"
    )
    ref = {(r["size"], r["task"], r["batch"]): r for r in rows if r["impl"] == "nvidia"}
    for r in rows:
        base = ref.get((r["size"], r["task"], r["batch"]))
        speedup = f"{base['s_per_img'] / r['s_per_img']:.2f}x" if base and r["impl"] != "nvidia" else ""
        task = f"{r['task']} b{r['batch']}"
        print(
            f"{r['size']:>5} {task:<16} {r['impl']:<8} {r['s_per_img']:>8.3f} {r['best_s_per_img']:>8.3f} "
            f"{r['img_s']:>7.2f} {r['gflop_per_img']:>9.1f} {r['gflops_s']:>8.1f} {r['pct_peak']:>6.0f} {speedup:>9}",
            flush=True,
        )


def run_table(sizes: list[int], reps_for, warmup: int, nvidia_dir: Path | None, peak: float) -> tuple[list, dict]:
    import torch

    Generator = _import_nvidia(nvidia_dir) if nvidia_dir else None
    rows, parity = [], {}
    for size in sizes:
        ours = build_ours(size)
        nv = build_nvidia(Generator, size, ours) if Generator else None
        flops = synthesis_flops(ours)
        reps = reps_for(size)
        if nv is not None:
            with torch.inference_mode():
                z = torch.randn(2, 512, generator=torch.Generator().manual_seed(3))
                a = ours(z, noise_mode="const")
                b = nv.synthesis(nv.mapping(z, None), noise_mode="const", force_fp32=True)
                parity[size] = {"max_abs_diff": (a - b).abs().max().item(), "max_abs_pixel": b.abs().max().item()}
            print(
                f"{size} px: max |ours - NVIDIA| = {parity[size]['max_abs_diff']:.2e} "
                f"(pixels up to {parity[size]['max_abs_pixel']:.2f})",
                flush=True,
            )
        for task, batch in TASKS:
            fns = {}
            for impl, gen in (("ours", ours), ("nvidia", nv)):
                if gen is None:
                    continue
                fns[impl] = _sampler(impl, gen, batch) if task == "sample" else _projection_step(impl, gen)
            times = _time_interleaved(fns, reps, warmup)
            mult = 3 if task == "project step" else 1
            new = [_row(impl, size, task, batch, t, flops * mult, peak) for impl, t in times.items()]
            _print_rows(new) if not rows else _print_rows_cont(new)
            rows += new
        del ours, nv
    return rows, parity


def _print_rows_cont(rows: list[dict]) -> None:
    """Table rows without repeating the header."""
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        _print_rows(rows)
    print("\n".join(buf.getvalue().splitlines()[1:]), flush=True)


# ---- levers ------------------------------------------------------------------------------------------

LEVERS = {
    # name: (module settings, grad mode while sampling)
    "reference": ({"_FAST": False}, "inference"),
    "fast (all kept)": ({}, "inference"),
    "fast, NCHW": ({"_CHANNELS_LAST": False}, "inference"),
    "fast, old FIR": ({"_FAST_FIR": False}, "inference"),
    "fast, grouped": ({"_MODCONV": "grouped"}, "inference"),
    "fast, grad on": ({}, "grad"),
}


def run_levers(sizes: list[int], reps: int, warmup: int, peak: float) -> list[dict]:
    import contextlib

    import torch

    import latentctl.models.stylegan2 as sg2

    defaults = {k: getattr(sg2, k) for k in ("_FAST", "_CHANNELS_LAST", "_FAST_FIR", "_MODCONV")}

    def configured(settings: dict, mode: str, fn):
        ctx = {"inference": torch.inference_mode, "no_grad": torch.no_grad, "grad": contextlib.nullcontext}[mode]

        def run():
            for k, v in {**defaults, **settings}.items():
                setattr(sg2, k, v)
            try:
                with ctx():
                    return fn()
            finally:
                for k, v in defaults.items():
                    setattr(sg2, k, v)

        return run

    rows = []
    for size in sizes:
        gen = build_ours(size)
        flops = synthesis_flops(gen)
        for task, batch in TASKS:
            fns = {}
            for name, (settings, mode) in LEVERS.items():
                if task == "project step":
                    if mode != "inference":
                        continue
                    step = _projection_step("ours", gen)
                    fns[name] = configured(settings, "grad", step)
                else:
                    z = torch.randn(batch, 512, generator=torch.Generator().manual_seed(1))
                    fns[name] = configured(settings, mode, lambda z=z, gen=gen: gen(z, noise_mode="const"))
            times = _time_interleaved(fns, reps, warmup)
            mult = 3 if task == "project step" else 1
            new = [_row(name, size, task, batch, t, flops * mult, peak) for name, t in times.items()]
            base = new[0]["s_per_img"]
            print(f"{size} px {task} b{batch}  (median of {reps}, interleaved)")
            for r in new:
                r["vs_reference"] = base / r["s_per_img"]
                print(
                    f"  {r['impl']:<20} {r['s_per_img']:8.3f} s/img (best {r['best_s_per_img']:.3f})  "
                    f"{r['pct_peak']:4.0f} % peak  {r['vs_reference']:.2f}x reference",
                    flush=True,
                )
            rows += new
    return rows


# ---- bf16 ------------------------------------------------------------------------------------------


def bf16_effect(size: int = 256) -> dict:
    """Pixels under torch.autocast("cpu", bfloat16) vs float32, and that the path runs at all."""
    import torch

    gen = build_ours(size)
    z = torch.randn(2, 512, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ref = gen(z, noise_mode="const").float()
        t = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16):
            out = gen(z, noise_mode="const")
        secs = time.perf_counter() - t
    err = (out.float() - ref).abs()
    # Images are judged in [-1, 1] (clamped, as saving does); 1/127.5 is one 8-bit level.
    clamped = (out.float().clamp(-1, 1) - ref.clamp(-1, 1)).abs()
    return {
        "size": size,
        "out_dtype": str(out.dtype),
        "max_abs_err": err.max().item(),
        "mean_abs_err": err.mean().item(),
        "max_abs_err_clamped": clamped.max().item(),
        "max_err_8bit_levels": clamped.max().item() * 127.5,
        "ref_abs_max": ref.abs().max().item(),
        "s_per_img_bf16": secs / 2,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stylegan_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated, from 256, 512, 1024 [all; --quick: 256]")
    p.add_argument(
        "--reps", type=int, default=None, help="timed repetitions per case [5 at 256, 3 at 512, 2 at 1024; --quick: 2]"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per case first [1]")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads [torch's default]")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (with --threads 1) [wall]",
    )
    p.add_argument("--tasks", default=",".join(ALL_TASKS), help=f"comma-separated, from {', '.join(ALL_TASKS)} [all]")
    p.add_argument("--nvidia", type=Path, default=None, help="a stylegan2-ada-pytorch checkout to time side by side")
    p.add_argument("--levers", action="store_true", help="time each speed lever of latentctl's StyleGAN2 alone")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast pixel check")
    p.add_argument("--quick", action="store_true", help="256 px only, 2 repetitions")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = p.parse_args(argv)

    import torch

    global CLOCK, TASKS
    TASKS = [ALL_TASKS[t] for t in args.tasks.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        CLOCK = time.process_time
    sizes = [int(s) for s in (args.sizes or ("256" if args.quick else "256,512,1024")).split(",")]
    for s in sizes:
        if s not in CONFIGS:
            p.error(f"--sizes: {s} is not one of {', '.join(map(str, CONFIGS))}")
    if args.nvidia and not (args.nvidia / "training" / "networks.py").is_file():
        p.error(f"--nvidia: {args.nvidia} has no training/networks.py (a stylegan2-ada-pytorch checkout?)")

    def reps_for(size: int) -> int:
        if args.reps:
            return args.reps
        return 2 if args.quick else {256: 5, 512: 3, 1024: 2}[size]

    info = _machine()
    print(
        f"# {info['cpu']}, {info['cpus']} CPUs, torch {info['torch']} with {info['threads']} threads; "
        f"SIMD {' '.join(info.get('simd', []))}; native bf16: {info['native_bf16']}; "
        f"load average {info.get('loadavg', ['?'])[0]:.2f}; clock: {args.clock}",
        flush=True,
    )
    peaks = [matmul_peak()]
    print(f"# float32 matmul peak (2048^2 torch.mm, best of 7): {peaks[0]:.1f} GFLOP/s", flush=True)
    started = time.time()
    result: dict = {"machine": info, "sizes": sizes, "clock": args.clock}
    if args.levers:
        result["levers"] = run_levers(sizes, reps_for(sizes[0]), args.warmup, peaks[0])
    else:
        rows, parity = run_table(sizes, reps_for, args.warmup, args.nvidia, peaks[0])
        result["rows"], result["parity"] = rows, parity
    peaks.append(matmul_peak())
    peak = max(peaks)
    result["peak_gflops"], result["peaks"] = peak, peaks
    print(f"# float32 matmul peak after: {peaks[1]:.1f} GFLOP/s; % peak above used {peaks[0]:.1f}", flush=True)
    if not args.levers:
        for r in result["rows"]:
            r["pct_peak"] = 100 * r["gflops_s"] / peak
        print(f"\n# summary, % of the better matmul peak ({peak:.1f} GFLOP/s); s/img = median, best = fastest rep")
        _print_rows(result["rows"])
    if not args.no_bf16:
        bf = bf16_effect(256)
        result["bf16"] = bf
        print(
            f"# bf16 autocast at 256 px: runs, output {bf['out_dtype']}; max |bf16 - fp32| = {bf['max_abs_err']:.3f} "
            f"(mean {bf['mean_abs_err']:.4f}; {bf['max_err_8bit_levels']:.1f} 8-bit levels after clamping to [-1, 1]); "
            f"{bf['s_per_img_bf16']:.2f} s/img "
            f"({'native' if info['native_bf16'] else 'emulated: no native bf16 on this CPU, so auto picks fp32'})",
            flush=True,
        )
    try:
        result["loadavg_after"] = list(os.getloadavg())
    except OSError:
        pass
    result["wall_s"] = time.time() - started
    print(f"# load average after: {result.get('loadavg_after', ['?'])[0]:.2f}; {result['wall_s']:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
