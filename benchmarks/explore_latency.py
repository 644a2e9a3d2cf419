"""Request-to-image latency of `latentctl explore` through a real uvicorn server on loopback.

For each image size it saves an untrained tiny-width generator (latency does not depend on what it
learned), starts `latentctl explore CKPT --no-browser --port 0` as a separate process, stores one
random direction, then times POST /api/steer requests one after another as a slider drag sends
them (a new weight each time), and a page of browse tiles. Prints median and p95 per size.

    .venv/bin/python benchmarks/explore_latency.py                  # 32, 64, 128 px, width 16
    .venv/bin/python benchmarks/explore_latency.py --sizes 64 --requests 200
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# run by path (python benchmarks/NAME.py) as well as with -m: make the package importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import cpu_model  # noqa: E402


def _checkpoint(folder: Path, size: int, width: int, latent: int) -> Path:
    import torch

    from latentctl.config import ModelConfig
    from latentctl.files import checkpoint
    from latentctl.models import build_models

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, width=width, latent_dim=latent)
    G, _ = build_models(cfg)
    return checkpoint.save(folder / f"g{size}.safetensors", generator=G, model_config=cfg, run_id="bench")


def _direction(ws: Path, latent: int) -> None:
    import numpy as np

    from latentctl.space.store import LatentEntry, LatentStore

    v = np.random.default_rng(0).standard_normal((1, latent)).astype(np.float32)
    LatentStore(ws / "latents").save("bench", LatentEntry(z=v, kind="direction"), force=True)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(size: int, width: int, latent: int, requests: int, tiles: int) -> dict:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        ckpt = _checkpoint(ws, size, width, latent)
        _direction(ws, latent)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "latentctl",
                "explore",
                str(ckpt),
                "--no-browser",
                "--port",
                "0",
                "--workspace",
                str(ws),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            url = proc.stdout.readline().strip()
            if not url.startswith("http"):
                raise SystemExit(f"explore did not start: {proc.stderr.read()}")
            base, token = url.split("/?token=")
            headers = {"X-Latentctl-Token": token, "X-Latentctl-Client": "bench"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                for _ in range(100):
                    try:
                        c.get("/api/info").raise_for_status()
                        break
                    except httpx.ConnectError:
                        time.sleep(0.1)

                def steer(i: int) -> float:
                    body = {
                        "base": {"seed": 42},
                        "directions": [{"name": "bench", "weight": round(-3 + 6 * (i % 61) / 60, 3)}],
                    }
                    t0 = time.perf_counter()
                    r = c.post("/api/steer", json=body)
                    r.raise_for_status()
                    return (time.perf_counter() - t0) * 1000

                for i in range(10):  # warm-up: first-call allocations, oneDNN primitive caches
                    steer(i)
                slider = [steer(i) for i in range(requests)]
                browse = []
                for i in range(max(requests // 10, 5)):
                    t0 = time.perf_counter()
                    c.post("/api/tiles", json={"start": i * tiles, "count": tiles}).raise_for_status()
                    browse.append((time.perf_counter() - t0) * 1000)
        finally:
            proc.terminate()
            proc.wait(20)
    return {"size": size, "slider": slider, "browse": browse}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64,128", help="image sizes, comma-separated")
    ap.add_argument("--width", type=int, default=16, help="generator width (tiny: 16)")
    ap.add_argument("--latent", type=int, default=100)
    ap.add_argument("--requests", type=int, default=100, help="slider requests per size")
    ap.add_argument("--tiles", type=int, default=24, help="tiles per browse request")
    args = ap.parse_args(argv)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; python {platform.python_version()}")
    print(f"width {args.width}, latent {args.latent}; {args.requests} slider requests per size, sequential, loopback")
    print(
        f"{'size':>5} {'slider median':>14} {'slider p95':>11} {f'browse {args.tiles} median':>18} {'browse p95':>11}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        m = measure(size, args.width, args.latent, args.requests, args.tiles)
        print(
            f"{size:>4}px {statistics.median(m['slider']):>11.1f} ms {_pct(m['slider'], 0.95):>8.1f} ms "
            f"{statistics.median(m['browse']):>15.1f} ms {_pct(m['browse'], 0.95):>8.1f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
