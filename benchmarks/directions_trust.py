"""Directions a user can trust (issue 12), measured on the synthetic faces whose attributes are known.

    .venv/bin/python benchmarks/directions_trust.py [--run RUN_DIR] [--workspace DIR] [--arch seed]

Without --run it trains the demo's GAN (32 px; its lite recipe, or --arch) on 2,000 synthetic
faces first. It reports:

1. mean and boundary directions from the same picks (samples sorted by the pixel detector): the
   detector rate on held-out latents at strengths 0 and 1 (one meaning of strength: both are
   stored at the groups' mean gap).
2. the out-of-sample report for a random split of those picks (near chance, warned) and for the
   real attribute (not).
3. GAN encoder (trained here on the GAN's own samples) vs 300-step projection on held-out training
   images: RMS error and seconds per image, encoder alone, with 30 L-BFGS refinement steps (the
   default), and, for comparison, with 30 and 100 Adam steps at each --adam-lrs (Adam at 0.1 was
   the refinement before L-BFGS).
4. the labelled route: `latentctl attr-vector --images FACES --column glasses --pos-if ==1` on
   2,000 images, timed end to end (encoder already trained, as on a second use).
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.directions import train_demo_gan  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402
from latentctl.demo import DemoConfig  # noqa: E402
from latentctl.files import checkpoint  # noqa: E402
from latentctl.files.workspace import Workspace  # noqa: E402
from latentctl.pictures import synthetic
from latentctl.space import gan_encoder as GE  # noqa: E402
from latentctl.space import latents as L  # noqa: E402
from latentctl.space.encode import encode_images  # noqa: E402
from latentctl.space.generate import generate  # noqa: E402

CPU = torch.device("cpu")
REFINE_LR = inspect.signature(encode_images).parameters["refine_lr"].default  # Adam's, with refine_method="adam"
DEFAULT_ROW = "encoder + 30 L-BFGS steps (the default)"


def rates(G, z: np.ndarray) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in synthetic.detect_attributes(generate(G, z, device=CPU)).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--run", type=Path, help="a run trained on the synthetic faces (copied, so its folder is not written)"
    )
    ap.add_argument("--workspace", type=Path, help="where to train and cache [default: a temporary folder]")
    ap.add_argument("--attribute", default="glasses", choices=synthetic.ATTRIBUTES)
    ap.add_argument("--picks", type=int, default=400, help="samples sorted by the detector into the two piles")
    ap.add_argument("--encoder-steps", type=int, default=500)
    ap.add_argument("--arch", default=None, help="train this recipe instead of the demo's (e.g. seed)")
    ap.add_argument(
        "--adam-lrs", default=f"{REFINE_LR:g}", help="Adam learning rates for the comparison rows (comma-separated)"
    )
    ap.add_argument(
        "--held-out", type=int, default=16, help="training images projected (300 steps each is the slow part)"
    )
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out, e.g. 1,2,4")
    args = ap.parse_args()

    print(f"CPU: {cpu_model()} ({torch.get_num_threads()} torch threads); torch {torch.__version__}")
    ws = Workspace(args.workspace or Path(tempfile.mkdtemp(prefix="bench-trust-")))
    cfg = DemoConfig() if args.arch is None else replace(DemoConfig(), arch=args.arch)
    t0 = time.perf_counter()
    if args.run:
        run_dir = ws.root / "runs" / args.run.name
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(args.run / "checkpoint.safetensors", run_dir / "checkpoint.safetensors")
    else:
        run_dir = train_demo_gan(ws, cfg)
        print(f"trained the demo GAN in {time.perf_counter() - t0:.0f} s: {run_dir}")
    ckpt = run_dir / "checkpoint.safetensors"
    loaded = checkpoint.load(ckpt)
    G = loaded.generator
    dim = G.config.latent_dim
    rng = np.random.default_rng(0)
    a = args.attribute

    skip = {int(x) for x in args.skip.split(",") if x}
    # 1. one meaning of strength
    z_pick = rng.standard_normal((args.picks, dim)).astype(np.float32)
    has = synthetic.detect_attributes(generate(G, z_pick, device=CPU))[a]
    pos, neg = z_pick[has], z_pick[~has]
    z_test = rng.standard_normal((300, dim)).astype(np.float32)
    print(
        f"\n1. {a}: {len(pos)} pos / {len(neg)} neg picks of {args.picks} samples; detector rate at strength 0: "
        f"{rates(G, z_test)[a]:.2f}"
    )
    built = {}
    for method in () if 1 in skip else ("mean", "boundary"):
        t = time.perf_counter()
        b = L.build_direction(pos, neg, method)
        built[method] = b
        r1 = rates(G, z_test + b.vector)[a]
        print(
            f"   {method:<8} length {b.meta['length']:.2f} (gap {b.meta['gap']:.2f}); rate at strength 1: {r1:.2f}; "
            f"{b.held_out.summary()} [{time.perf_counter() - t:.1f} s]"
        )
    if 1 not in skip:
        diff = abs(rates(G, z_test + built["mean"].vector)[a] - rates(G, z_test + built["boundary"].vector)[a])
        print(f"   mean vs boundary at strength 1: {diff * 100:.0f} points apart (target: within 10)")

    # 2. honest statistics
    shuffled = rng.permutation(np.concatenate([pos, neg]))
    rp, rn = shuffled[: len(pos)], shuffled[len(pos) :]
    for name, (p, n) in () if 2 in skip else (("random split", (rp, rn)), (f"real ({a})", (pos, neg))):
        r = L.out_of_sample(p, n, "mean")
        print(f"\n2. {name}: {r.summary()}")
        for w in r.warnings:
            print(f"   warning: {w}")
        if not r.warnings:
            print("   no warning")

    # 3. GAN encoder vs projection on held-out training images
    faces_dir = ws.root / "faces"
    faces_dir = synthetic.make_dataset(faces_dir, cfg.images, G.config.image_size, cfg.seed)
    images, _ = synthetic.synthetic_faces(cfg.images + args.held_out, G.config.image_size, cfg.seed)
    held = images[-args.held_out :]  # beyond the 2,000 the GAN trained on
    if 3 not in skip:
        t = time.perf_counter()
        net, path, _ = GE.ensure(loaded, ckpt, CPU, train_new=True, steps=args.encoder_steps)
        t_train = time.perf_counter() - t
        print(f"\n3. GAN encoder trained in {t_train:.0f} s ({args.encoder_steps} steps of 64 samples): {path}")
        runs = {}
        lrs = [float(x) for x in args.adam_lrs.split(",") if x]
        adam = {"gan_encoder": net, "refine_method": "adam"}
        for label, kw in (
            ("projection 300 steps x 4 restarts", {"steps": 300}),
            ("encoder alone", {"gan_encoder": net}),
            (DEFAULT_ROW, {"gan_encoder": net, "refine_steps": 30}),
            *(
                row
                for lr in lrs
                for row in (
                    (f"encoder + 30 Adam steps at lr {lr:g}", {**adam, "refine_steps": 30, "refine_lr": lr}),
                    (f"encoder + 100 Adam steps at lr {lr:g}", {**adam, "refine_steps": 100, "refine_lr": lr}),
                )
            ),
        ):
            t = time.perf_counter()
            enc = encode_images(loaded, held, CPU, **kw)
            runs[label] = (time.perf_counter() - t, float(enc.errors.mean()))
            print(f"   {label:<44} RMS error {runs[label][1]:6.2f}   {runs[label][0] / len(held) * 1000:8.1f} ms/image")
        base_t = runs["projection 300 steps x 4 restarts"][0]
        print(
            f"   speed-up: encoder alone {base_t / runs['encoder alone'][0]:.0f}x, "
            f"encoder + 30 steps {base_t / runs[DEFAULT_ROW][0]:.0f}x"
        )

    # 4. the labelled route, end to end through the CLI
    if 4 in skip:
        return
    t = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentctl",
            "attr-vector",
            "--images",
            str(faces_dir),
            "--column",
            a,
            "--pos-if",
            "==1",
            "--model",
            str(run_dir),
            "--save",
            f"{a}-labelled",
            "--force",
            "--workspace",
            str(ws.root),
        ],
        capture_output=True,
        text=True,
    )
    print(f"\n4. attr-vector --images on {cfg.images} images: exit {out.returncode} in {time.perf_counter() - t:.0f} s")
    print("   " + "\n   ".join((out.stderr + out.stdout).strip().splitlines()[-8:]))


if __name__ == "__main__":
    main()
