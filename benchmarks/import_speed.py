"""How long `latentctl import` takes on a Keras file, and whether `sample -n 9` from the imported
generator is as fast as from a native model of the same architecture and size, in one run.

    python -m benchmarks.import_speed FILE.h5 [--rounds 5]

FILE is a Keras generator written by Keras itself; the blog's generator at full size (width 128,
128 px, 1.9 M parameters, 7.6 MB) is what `python3 tests/writers/keras_fixtures.py --full-seed
FILE` writes. Each figure is the median wall time of whole processes (interpreter and imports
included, as a user waits), the two models' sampling commands interleaved round by round so a
busy neighbour slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_model


def _timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _native_seed_model(path: Path) -> None:
    """A native seed model at the blog's size (random weights: the work per image is the same)."""
    from latentctl.config import ModelConfig
    from latentctl.files import checkpoint
    from latentctl.models import build_generator

    cfg = ModelConfig()  # the seed's GAN: 128 px, width 128, latent 100
    checkpoint.save(path, generator=build_generator(cfg), model_config=cfg)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a Keras generator file (.h5 or .keras)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    exe = [sys.executable, "-m", "latentctl"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LATENTCTL_HOME": tmp}
        imports = [
            _timed([*exe, "import", str(args.file), "--name", "bench", "--force"], env) for _ in range(args.rounds)
        ]
        imported = Path(tmp) / "runs"
        imported = next(imported.iterdir()) / "checkpoint.safetensors"
        native = Path(tmp) / "native.safetensors"
        _native_seed_model(native)
        torch_only = [_timed([sys.executable, "-c", "import torch"], env) for _ in range(args.rounds)]
        times: dict[str, list[float]] = {"imported": [], "native": []}
        for r in range(args.rounds):
            for name, model in (("imported", imported), ("native", native)):
                out = Path(tmp) / f"out-{name}-{r}"
                cmd = [*exe, "sample", str(model), "-n", "9", "--out", str(out)]
                times[name].append(_timed(cmd, env))
    result = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "file": args.file.name,
        "file_mb": round(args.file.stat().st_size / 1e6, 2),
        "import_s": round(statistics.median(imports), 2),
        "python_import_torch_s": round(statistics.median(torch_only), 2),
        "sample9_imported_s": round(statistics.median(times["imported"]), 2),
        "sample9_native_s": round(statistics.median(times["native"]), 2),
        "rounds": args.rounds,
    }
    print(f"{result['cpu']}, {result['cores']} cores; medians of {args.rounds} whole processes")
    print(f"  latentctl import {result['file']} ({result['file_mb']} MB)   {result['import_s']:6.2f} s")
    print(f"  python -c 'import torch' (for scale)          {result['python_import_torch_s']:6.2f} s")
    print(f"  sample -n 9, imported generator               {result['sample9_imported_s']:6.2f} s")
    print(f"  sample -n 9, native seed model, same size     {result['sample9_native_s']:6.2f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
