"""Does bfloat16 autocast keep GAN training quality? fp32 and bf16 runs side by side, two seeds each.

    python -m benchmarks.bf16_quality                       # 32 px, width 32, 12 epochs (demo-sized)
    python -m benchmarks.bf16_quality --size 64 --width 64 --epochs 8

Each run trains the seed's GAN on the same synthetic faces with the same seed in fp32 and in bf16
(autocast), then draws 1,000 samples (always rendered in fp32, so only training differs) and scores
them against 1,000 held-out faces the model never saw:

- pixel FD: the Fréchet distance between Gaussians fitted to 8x8 area-downsampled images (192
  numbers per image); 0 for identical distributions. The "real vs real" row (training faces against
  the held-out ones) is the floor a perfect model would reach.
- attribute error: the mean absolute difference, over the four synthetic attributes, between the
  rate the attribute detector finds in the samples and in the held-out faces.

Two seeds per precision show how far runs differ by chance alone: bf16 keeps quality when its
numbers fall inside the spread of the fp32 seeds. Times are wall-clock per run on this machine.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _features(images: np.ndarray) -> np.ndarray:
    n, s = images.shape[:2]
    k = s // 8
    x = images.astype(np.float64).reshape(n, 8, k, 8, k, 3).mean(axis=(2, 4))
    return x.reshape(n, -1) / 255.0


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b``."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # trace of sqrt(c1 c2) from the eigenvalues of sqrt(c1) c2 sqrt(c1), which is symmetric PSD
    w, v = np.linalg.eigh(c1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = np.linalg.eigvalsh(r1 @ c2 @ r1)
    covmean_trace = np.sqrt(np.clip(m, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * covmean_trace)


def attribute_error(images: np.ndarray, reference: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    from latentctl.pictures.synthetic import detect_attributes

    found = detect_attributes(images)
    rates = {k: float(v.mean()) for k, v in found.items()}
    return float(np.mean([abs(rates[k] - float(reference[k].mean())) for k in rates])), rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bf16_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--samples", type=int, default=1000)
    args = p.parse_args(argv)

    import torch

    from latentctl import perf
    from latentctl.config import ModelConfig, TrainConfig
    from latentctl.files import checkpoint
    from latentctl.pictures.data import prepare_dataset
    from latentctl.pictures.synthetic import detect_attributes, make_dataset, synthetic_faces
    from latentctl.seeds import latents_from_seeds
    from latentctl.space.generate import generate
    from latentctl.train.training import train

    perf.use_all_cores()
    perf.tune_allocator()
    dev = torch.device("cpu")
    print(
        f"machine: {platform.processor() or platform.machine()}, {perf.available_cores()} cores, torch {torch.__version__}; "
        f"native bf16: {_native_bf16()}"
    )
    held_out, _ = synthetic_faces(args.samples, args.size, seed=12345)
    held_labels = detect_attributes(held_out)
    ref = _features(held_out)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp) / "faces", args.images, args.size, seed=0)
        dataset = prepare_dataset(root, args.size, Path(tmp) / "cache")
        train_imgs = np.asarray(dataset.images[: args.samples])
        err, _ = attribute_error(train_imgs, held_labels)
        print(
            f"\n{'run':<18} {'train s':>8} {'pixel FD':>9} {'attr err':>9}   detector rates (glasses/smile/dark_hair/dark_skin)"
        )
        rates = detect_attributes(train_imgs)
        print(
            f"{'real vs real':<18} {'-':>8} {frechet_distance(_features(train_imgs), ref):>9.4f} {err:>9.3f}   "
            + "/".join(f"{float(v.mean()):.2f}" for v in rates.values())
        )
        for seed in (int(s) for s in args.seeds.split(",")):
            for precision in ("fp32", "bf16"):
                model_cfg = ModelConfig(image_size=args.size, width=args.width)
                train_cfg = TrainConfig(
                    epochs=args.epochs,
                    batch_size=args.batch,
                    seed=seed,
                    precision=precision,
                    channels_last=True,
                    checkpoint_every=args.epochs,
                    snapshot_every=10**6,
                    sample_every=10**6,
                )
                run_dir = Path(tmp) / f"run-{precision}-{seed}"
                run_dir.mkdir()
                t = time.perf_counter()
                ckpt = train(run_dir, dataset, model_cfg, train_cfg, dev)
                dt = time.perf_counter() - t
                G = checkpoint.load(ckpt, device=dev).generator
                z = latents_from_seeds(range(10_000, 10_000 + args.samples), model_cfg.latent_dim)
                imgs = generate(G, z, device=dev)
                err, rates = attribute_error(imgs, held_labels)
                fd = frechet_distance(_features(imgs), ref)
                print(
                    f"{precision + ' seed ' + str(seed):<18} {dt:>8.1f} {fd:>9.4f} {err:>9.3f}   "
                    + "/".join(f"{v:.2f}" for v in rates.values()),
                    flush=True,
                )
    return 0


def _native_bf16() -> bool:
    from latentctl.device import cpu_has_native_bf16

    return cpu_has_native_bf16()


if __name__ == "__main__":
    raise SystemExit(main())
