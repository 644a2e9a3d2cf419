"""Peak memory and speed of `latentctl sample -n N` as N grows: memory must stay flat.

    python -m benchmarks.sample_memory --size 64 --counts 1000,10000,100000 [--device auto]

Builds a generator of the seed's width at ``--size`` (random weights: speed and memory do not
depend on what it learned), saves it as a checkpoint, then runs ``latentctl sample CKPT -n N
--no-pngs`` once per N in its own process, and reports the process's peak resident memory (as
the command prints it) and images/s. Only the latents grow with N (N x latent_dim float32 kept for
latents.npz); images are rendered ``--batch-size`` at a time and the grid keeps ``--grid-max``
tiles, so peak memory should be the same for 1,000 and 100,000 samples up to a few MiB.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _checkpoint(folder: Path, size: int) -> Path:
    import torch

    from latentctl.config import ModelConfig
    from latentctl.files import checkpoint
    from latentctl.models import build_models

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size)
    G, _ = build_models(cfg)
    return checkpoint.save(folder / f"g{size}.safetensors", generator=G, model_config=cfg, run_id="bench")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sample_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--counts", default="1000,10000,100000")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = _checkpoint(tmp, args.size)
        print(
            f"sample -n N --no-pngs at {args.size} px (seed's width), device {args.device}, precision {args.precision}"
        )
        print(f"{'N':>8} {'seconds':>8} {'img/s':>7} {'peak memory':>30}")
        for n in counts:
            cmd = [
                sys.executable,
                "-m",
                "latentctl",
                "sample",
                str(ckpt),
                "-n",
                str(n),
                "--no-pngs",
                "--out",
                str(tmp / f"out{n}"),
                "--device",
                args.device,
                "--precision",
                args.precision,
                "--workspace",
                str(tmp / "ws"),
            ]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                print(f"{n:>8} failed: {proc.stderr.strip().splitlines()[-1:]}")
                return 1
            peak = re.search(r"peak memory [^\n]*", proc.stderr + proc.stdout)
            print(
                f"{n:>8} {seconds:>8.1f} {n / seconds:>7.0f} {peak.group(0) if peak else 'not reported':>30}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
