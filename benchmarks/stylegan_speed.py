"""StyleGAN2 (and StyleGAN3) synthesis speed on this CPU: s/image and % of the float32 matmul peak, ours vs NVIDIA's.

    python -m benchmarks.stylegan_speed                         # 256, 512 and 1024 px (long on 2 cores)
    python -m benchmarks.stylegan_speed --quick                 # 256 px only, fewer repetitions
    python -m benchmarks.stylegan_speed --nvidia ~/stylegan2-ada-pytorch --json out.json
    python -m benchmarks.stylegan_speed --levers --sizes 256    # each speed lever of stylegan2.py alone
    python -m benchmarks.stylegan_speed --tasks preview --sizes 512,1024   # the explorer's 256 px preview
    python -m benchmarks.stylegan_speed --tasks sg3 --sizes 256 --nvidia-sg3 ~/stylegan3   # StyleGAN3 T and R

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

``--tasks preview`` times the skip StyleGAN2 in full against ``synthesis(ws, stop_at=256)`` (the
RGB image summed up to the 256 px stage, what the explorer shows first), batch 1 under inference
mode, interleaved, with the share of the FLOPs the stages up to 256 px carry (same counter).

``--tasks sg3`` times ``latentctl.models.stylegan3.StyleGAN3Generator`` sampling at batch 1 for
configs T and R (NVIDIA's train.py settings at its default capacity), and with ``--nvidia-sg3 DIR``
NVIDIA's StyleGAN3 Generator from the user's stylegan3 checkout (imported at run time, never
copied; off CUDA its filtered_lrelu and bias_act fall back to their reference implementations),
carrying the same random weights and filters. Its FLOPs are counted analytically too (``sg3_flops``:
the work the layers need, without the multiplied zeros of zero-stuffed upsampling), and torch's
FlopCounterMode reports what each implementation actually executed. ``--nvidia`` and
``--nvidia-sg3`` both import a top-level package ``training``, so they go in separate runs.
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
# Tasks run only when named in --tasks: the explorer's preview (ours full vs stopped at --preview-at
# px) and StyleGAN3 sampling (--sg3-configs, NVIDIA's with --nvidia-sg3).
EXTRA_TASKS = ("preview", "sg3")


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


def synthesis_flops(gen, stop_at: int | None = None) -> int:
    """FLOPs (2 x multiply-adds) of one image's mapping + synthesis, from the layer shapes.

    ``stop_at``: count the stages up to that resolution only (``synthesis(..., stop_at=...)``).
    """
    from latentctl.models.stylegan2 import _StyledConv

    flops = 0
    for layer in gen.mapping_net.layers:
        flops += 2 * layer.weight.numel()
    for stage_res, stage in zip(gen.stage_resolutions, gen.stages):
        if stop_at is not None and stage_res > stop_at:
            break
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


def _import_nvidia(nvidia_dir: Path, module: str = "training.networks"):
    """NVIDIA's ``module``.Generator, imported from the user's checkout (stylegan2-ada-pytorch's
    training.networks, or stylegan3's training.networks_stylegan3)."""
    import importlib

    sys.path.insert(0, str(nvidia_dir))
    try:
        import requests  # noqa: F401  (dnnlib imports it at module level, only to download)
    except ModuleNotFoundError:
        sys.modules["requests"] = types.ModuleType("requests")
    return importlib.import_module(module).Generator


def _nvidia_common(res: int, mapping_layers: int) -> dict:
    """The keyword arguments NVIDIA's StyleGAN2 and StyleGAN3 Generators share: z/w 512, RGB, unconditional."""
    return dict(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs=dict(num_layers=mapping_layers),
    )


def build_nvidia(Generator, res: int, ours):
    """NVIDIA's Generator with the same config; its random init copied into ``ours`` too."""
    import torch

    from latentctl.importers.nvidia_pickle import _stylegan2_names

    torch.manual_seed(0)
    nv = Generator(
        **_nvidia_common(res, mapping_layers=8),
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


# ---- the explorer's preview: the skip StyleGAN2 stopped at a stage ---------------------------------


def run_preview(sizes: list[int], reps_for, warmup: int, peak: float, stop_at: int) -> list[dict]:
    """Ours in full vs ours stopped at ``stop_at`` px (``synthesis(..., stop_at=)``, what the explorer
    shows first), batch 1 under inference mode, interleaved; with the FLOP share of the stages run."""
    import torch

    results = []
    for size in sizes:
        gen = build_ours(size)
        if stop_at not in gen.preview_resolutions:
            print(f"# preview: a {size} px generator has no {stop_at} px preview {gen.preview_resolutions}; skipped")
            continue
        z = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))

        def run(stop, gen=gen, z=z):
            with torch.inference_mode():
                return gen.synthesis(gen.mapping(z), noise_mode="const", stop_at=stop)

        times = _time_interleaved({"full": lambda: run(None), "preview": lambda: run(stop_at)}, reps_for(size), warmup)
        flops = {"full": synthesis_flops(gen), "preview": synthesis_flops(gen, stop_at)}
        rows = {k: _row(f"ours {k}", size, f"stop_at {stop_at}", 1, times[k], flops[k], peak) for k in times}
        full, part = rows["full"]["s_per_img"], rows["preview"]["s_per_img"]
        results.append(
            {
                "size": size,
                "stop_at": stop_at,
                "full": rows["full"],
                "preview": rows["preview"],
                "speedup": full / part,
                "time_share": part / full,
                "flop_share": flops["preview"] / flops["full"],
            }
        )
        del gen
        _print_preview(results[-1:], header=len(results) == 1)
    return results


def _print_preview(results: list[dict], header: bool = True) -> None:
    if header:
        print(
            f"{'size':>5} {'full s/img':>10} {'@px':>5} {'@ s/img':>8} {'full/@':>7} {'time share':>10} "
            f"{'GFLOP full':>10} {'GFLOP @':>8} {'FLOP share':>10} {'% peak full':>11} {'% peak @':>8}"
        )
    for r in results:
        full, part = r["full"], r["preview"]
        print(
            f"{r['size']:>5} {full['s_per_img']:>10.3f} {r['stop_at']:>5} {part['s_per_img']:>8.3f} "
            f"{r['speedup']:>6.2f}x {100 * r['time_share']:>9.0f}% {full['gflop_per_img']:>10.1f} "
            f"{part['gflop_per_img']:>8.1f} {100 * r['flop_share']:>9.0f}% {full['pct_peak']:>11.0f} "
            f"{part['pct_peak']:>8.0f}",
            flush=True,
        )


# ---- StyleGAN3 ---------------------------------------------------------------------------------------

SG3_CONFIGS = {
    # NVIDIA's train.py --cfg stylegan3-t / stylegan3-r at its defaults (--cbase 32768 --cmax 512 --map 2,
    # conv_clamp 256): R doubles channel_base and channel_max, uses 1x1 convolutions and radially
    # symmetric downsampling filters. The rest (14 layers, 2 critical, margin 10, filter size 6) is
    # the SynthesisNetwork's defaults, which are StyleGAN3Generator's too.
    "T": dict(channel_base=32768, channel_max=512, conv_kernel=3, use_radial_filters=False),
    "R": dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True),
}


def build_sg3(cfg: str, res: int):
    import torch

    from latentctl.models.stylegan3 import StyleGAN3Generator

    torch.manual_seed(0)
    gen = StyleGAN3Generator(resolution=res, mapping_layers=2, conv_clamp=256, **SG3_CONFIGS[cfg]).eval()
    gen.requires_grad_(False)
    return gen


def build_nvidia_sg3(Generator, cfg: str, res: int, ours):
    """NVIDIA's StyleGAN3 Generator with the same config; its random init (filters included) loaded into ``ours``."""
    import torch

    from latentctl.models.stylegan3 import _rename

    torch.manual_seed(0)
    nv = Generator(
        **_nvidia_common(res, mapping_layers=2),
        conv_clamp=256,
        num_fp16_res=4,
        **SG3_CONFIGS[cfg],
    ).eval()
    index = {name: i for i, name in enumerate(nv.synthesis.layer_names)}
    state = {}
    for name, value in nv.state_dict().items():
        ours_name = _rename(name, index)
        assert ours_name, name
        state[ours_name] = value
    ours.load_state_dict(state, strict=True)
    nv.requires_grad_(False)
    return nv


def sg3_flops(gen) -> int:
    """FLOPs (2 x multiply-adds) of one StyleGAN3 image, counted as the work the layers need.

    Counted: the mapping, the Fourier input (phases and the channel mixing), each layer's affine,
    weight modulation and convolution (padded by k - 1: its output is in_size + k - 1 square), the
    upsampling filter as a separable polyphase filter (only the filter_size = up_taps / up taps
    that meet a non-zero sample of the zero-stuffed signal), the downsampling filter only at the
    kept samples (separable, or 2-D for R's radial filters). Not counted: bias, leaky ReLU, clamp.
    An implementation that multiplies the inserted zeros or filters every sample before decimating
    executes more than this (FlopCounterMode's count, in ``run_sg3``).
    """
    flops = sum(2 * layer.weight.numel() for layer in gen.mapping_net.layers)
    f = gen.fourier
    channels = f.weight.shape[0]
    flops += 2 * f.affine.weight.numel() + 2 * f.size**2 * channels * (2 + channels)
    for layer in gen.layers:
        g = layer.geometry
        o, i, k = g.out_channels, g.in_channels, g.kernel
        conv = g.in_size + k - 1
        flops += 2 * layer.affine.weight.numel() + 2 * o * i * k * k * (1 + conv * conv)
        length = conv + g.pad[0] + g.pad[1]
        if layer.up_filter is not None:
            length = conv * g.up + g.pad[0] + g.pad[1] - g.up_taps + 1
            flops += 2 * o * (g.up_taps // g.up) * (conv * length + length * length)
        if layer.down_filter is not None:
            out = g.out_size
            assert (length - g.down_taps) // g.down + 1 == out, (g, length)
            if layer.down_filter.ndim == 2:
                flops += 2 * o * out * out * g.down_taps**2
            else:
                flops += 2 * o * g.down_taps * (length * out + out * out)
    return flops


def _counted(fn):
    """``fn()`` under torch's FlopCounterMode: (its output, the FLOPs its matmuls and convolutions
    executed, multiplied zeros and filtered-then-discarded samples included)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    return out, counter.get_total_flops()


def run_sg3(
    sizes: list[int], configs: list[str], reps_for, warmup: int, nvidia_dir: Path | None, peak: float
) -> tuple[list[dict], dict]:
    """Sampling (mapping + synthesis, batch 1, inference mode): ours, and NVIDIA's if given, interleaved.

    The first warm-up call of each runs under FlopCounterMode (FLOPs executed) and its images are
    compared (ours vs NVIDIA's); with --warmup 0 neither is reported.
    """
    Generator = _import_nvidia(nvidia_dir, "training.networks_stylegan3") if nvidia_dir else None
    rows, parity = [], {}
    for size in sizes:
        for cfg in configs:
            ours = build_sg3(cfg, size)
            nv = build_nvidia_sg3(Generator, cfg, size, ours) if Generator else None
            fns = {"ours": _sampler("ours", ours, 1)}
            if nv is not None:
                fns["nvidia"] = _sampler("nvidia", nv, 1)
            counted = {impl: _counted(fn) for impl, fn in fns.items()} if warmup else {}
            if "nvidia" in counted:
                (a, _), (b, _) = counted["ours"], counted["nvidia"]
                key = f"{cfg}{size}"
                parity[key] = {"max_abs_diff": (a - b).abs().max().item(), "max_abs_pixel": b.abs().max().item()}
                print(
                    f"SG3-{cfg} {size} px: max |ours - NVIDIA| = {parity[key]['max_abs_diff']:.2e} "
                    f"(pixels up to {parity[key]['max_abs_pixel']:.2f})",
                    flush=True,
                )
            times = _time_interleaved(fns, reps_for(size), max(warmup - 1, 0))
            flops = sg3_flops(ours)
            new = [_row(impl, size, f"SG3-{cfg} sample", 1, t, flops, peak) for impl, t in times.items()]
            for r in new:
                if r["impl"] in counted:
                    r["executed_gflop_per_img"] = counted[r["impl"]][1] / 1e9
            _print_sg3(new, header=not rows)
            rows += new
            del ours, nv, counted
    return rows, parity


def _print_sg3(rows: list[dict], header: bool = True) -> None:
    if header:
        print(
            f"{'size':>5} {'task':<14} {'impl':<7} {'s/img':>8} {'best':>8} {'img/s':>6} {'GFLOP/img':>9} "
            f"{'executed':>8} {'GFLOP/s':>8} {'% peak':>6} {'vs NVIDIA':>9}"
        )
    ref = {(r["size"], r["task"]): r for r in rows if r["impl"] == "nvidia"}
    for r in rows:
        base = ref.get((r["size"], r["task"]))
        speedup = f"{base['s_per_img'] / r['s_per_img']:.2f}x" if base and r["impl"] != "nvidia" else ""
        executed = f"{r['executed_gflop_per_img']:.1f}" if "executed_gflop_per_img" in r else "-"
        print(
            f"{r['size']:>5} {r['task']:<14} {r['impl']:<7} {r['s_per_img']:>8.3f} {r['best_s_per_img']:>8.3f} "
            f"{r['img_s']:>6.2f} {r['gflop_per_img']:>9.1f} {executed:>8} {r['gflops_s']:>8.1f} "
            f"{r['pct_peak']:>6.0f} {speedup:>9}",
            flush=True,
        )


# ---- levers ------------------------------------------------------------------------------------------

LEVERS = {
    # name: (module settings, grad mode while sampling)
    "reference": ({"_FAST": False}, "inference"),
    "fast (all kept)": ({}, "inference"),
    "fast, NCHW": ({"_CHANNELS_LAST": False}, "inference"),
    "fast, old FIR": ({"_FAST_FIR": False}, "inference"),
    "fast, grouped": ({"_MODCONV": "grouped"}, "inference"),
    "fast, transposed conv": ({"_PHASES": False}, "inference"),
    "fast, grad on": ({}, "grad"),
}


def run_levers(sizes: list[int], reps: int, warmup: int, peak: float, names: list[str] | None = None) -> list[dict]:
    import contextlib

    import torch

    import latentctl.models.stylegan2 as sg2

    defaults = {k: getattr(sg2, k) for k in ("_FAST", "_CHANNELS_LAST", "_FAST_FIR", "_MODCONV", "_PHASES")}

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
                if names and name not in names:
                    continue
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


def _summary(result: dict, peak: float) -> None:
    """Every table again, its % peak against the better of the two matmul peaks."""
    rows = result.get("rows", []) + result.get("sg3", [])
    rows += [r[k] for r in result.get("preview", []) for k in ("full", "preview")]
    for r in rows:
        r["pct_peak"] = 100 * r["gflops_s"] / peak
    print(f"\n# summary, % of the better matmul peak ({peak:.1f} GFLOP/s); s/img = median, best = fastest rep")
    if result.get("rows"):
        _print_rows(result["rows"])
    if result.get("preview"):
        _print_preview(result["preview"])
    if result.get("sg3"):
        _print_sg3(result["sg3"])


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
    p.add_argument(
        "--tasks",
        default=",".join(ALL_TASKS),
        help=f"comma-separated, from {', '.join([*ALL_TASKS, *EXTRA_TASKS])} [{','.join(ALL_TASKS)}]",
    )
    p.add_argument("--nvidia", type=Path, default=None, help="a stylegan2-ada-pytorch checkout to time side by side")
    p.add_argument("--preview-at", type=int, default=256, help="preview task: the stage to stop at, in px [256]")
    p.add_argument("--sg3-configs", default="T,R", help="sg3 task: comma-separated, from T, R [T,R]")
    p.add_argument("--nvidia-sg3", type=Path, default=None, help="sg3 task: a stylegan3 checkout to time side by side")
    p.add_argument("--levers", action="store_true", help="time each speed lever of latentctl's StyleGAN2 alone")
    p.add_argument(
        "--lever-names",
        default="",
        help=f"--levers: separated by semicolons (the names hold commas), from {', '.join(LEVERS)} [all]; the first is the ratios' reference",
    )
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast pixel check")
    p.add_argument("--quick", action="store_true", help="256 px only, 2 repetitions")
    p.add_argument(
        "--glibc-default",
        action="store_true",
        help="leave glibc's allocator as it is (latentctl's commands tune it: perf.tune_allocator)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = p.parse_args(argv)

    import torch

    global CLOCK, TASKS
    tasks = args.tasks.split(",")
    for t in tasks:
        if t not in ALL_TASKS and t not in EXTRA_TASKS:
            p.error(f"--tasks: {t} is not one of {', '.join([*ALL_TASKS, *EXTRA_TASKS])}")
    TASKS = [ALL_TASKS[t] for t in tasks if t in ALL_TASKS]
    sg3_configs = args.sg3_configs.split(",")
    if any(c not in SG3_CONFIGS for c in sg3_configs):
        p.error(f"--sg3-configs: from {', '.join(SG3_CONFIGS)}, not {args.sg3_configs}")
    lever_names = [n.strip() for n in args.lever_names.split(";") if n.strip()]
    if any(n not in LEVERS for n in lever_names):
        p.error(f"--lever-names: from {', '.join(LEVERS)}, not {args.lever_names}")
    if args.levers and not TASKS:
        p.error("--levers times the StyleGAN2 tasks only (sample1, sample4, project)")
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
    if args.nvidia_sg3 and not (args.nvidia_sg3 / "training" / "networks_stylegan3.py").is_file():
        p.error(f"--nvidia-sg3: {args.nvidia_sg3} has no training/networks_stylegan3.py (a stylegan3 checkout?)")
    if args.nvidia and args.nvidia_sg3:
        # Both checkouts are imported as the top-level package `training`: one per process.
        p.error("--nvidia and --nvidia-sg3 both import a package named `training`: time them in separate runs")

    def reps_for(size: int) -> int:
        if args.reps:
            return args.reps
        return 2 if args.quick else {256: 5, 512: 3, 1024: 2}[size]

    info = _machine()
    if not args.glibc_default:
        # As every latentctl command does (perf.cpu_speedups): big buffers stay in the heap instead of
        # being mapped, page-faulted and zero-filled again on every call (a 1024 px image allocates
        # several 134 MB activations). Process-wide, so NVIDIA's path gets it too.
        from latentctl import perf

        info["allocator_tuned"] = perf.tune_allocator()
    print(
        f"# {info['cpu']}, {info['cpus']} CPUs, torch {info['torch']} with {info['threads']} threads; "
        f"SIMD {' '.join(info.get('simd', []))}; native bf16: {info['native_bf16']}; allocator tuned: {info.get('allocator_tuned', False)}; "
        f"load average {info.get('loadavg', ['?'])[0]:.2f}; clock: {args.clock}",
        flush=True,
    )
    peaks = [matmul_peak()]
    print(f"# float32 matmul peak (2048^2 torch.mm, best of 7): {peaks[0]:.1f} GFLOP/s", flush=True)
    started = time.time()
    result: dict = {"machine": info, "sizes": sizes, "clock": args.clock}
    if args.levers:
        result["levers"] = run_levers(sizes, reps_for(sizes[0]), args.warmup, peaks[0], lever_names)
    elif TASKS:
        rows, parity = run_table(sizes, reps_for, args.warmup, args.nvidia, peaks[0])
        result["rows"], result["parity"] = rows, parity
    if "preview" in tasks and not args.levers:
        print(f"# preview: ours full vs stopped at {args.preview_at} px, batch 1, inference mode", flush=True)
        result["preview"] = run_preview(sizes, reps_for, args.warmup, peaks[0], args.preview_at)
    if "sg3" in tasks and not args.levers:
        print(f"# StyleGAN3 sampling, batch 1, configs {args.sg3_configs}", flush=True)
        result["sg3"], result["sg3_parity"] = run_sg3(
            sizes, sg3_configs, reps_for, args.warmup, args.nvidia_sg3, peaks[0]
        )
    peaks.append(matmul_peak())
    peak = max(peaks)
    result["peak_gflops"], result["peaks"] = peak, peaks
    print(f"# float32 matmul peak after: {peaks[1]:.1f} GFLOP/s; % peak above used {peaks[0]:.1f}", flush=True)
    if not args.levers:
        _summary(result, peak)
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
