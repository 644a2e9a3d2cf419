"""Directions without hand-picking, measured on the synthetic faces whose attributes are known.

    .venv/bin/python benchmarks/directions.py [--run RUN_DIR] [--workspace DIR] [--steps 300]

Without --run it trains the demo's model (its recipe: 32 px, 2,000 faces, latent 100) first. It reports:

1. SeFa top-5 (and GANSpace top-5) vs 5 random unit directions: image change per unit strength,
   and per known attribute the best |change of the detector rate| over strengths -3..3.
2. Learned zoom and shift-x walks vs the zero walk vs the best unsupervised direction (each SeFa /
   PCA direction at its best scale): masked RMS error against the edited image on held-out latents.
3. A GANalyze direction from a classifier trained on the faces' smile labels: its score curve on
   held-out latents and whether the pixel detector agrees with the classifier along it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# run by path (python benchmarks/NAME.py) as well as with -m: make the package importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch

from benchmarks.machine import cpu_model  # noqa: E402
from latentctl.demo import DemoConfig
from latentctl.files import checkpoint
from latentctl.files.workspace import Workspace
from latentctl.perf import prepare_for_sampling
from latentctl.pictures import synthetic
from latentctl.space import directions as D
from latentctl.space.assessor import ClassifierConfig, learn_direction, score_curve, train_classifier
from latentctl.space.generate import generate
from latentctl.space.steer import EDITS, eval_alphas, learn_walk, walk_errors

STRENGTHS = D.SWEEP_STRENGTHS


def train_demo_gan(ws: Workspace, cfg: DemoConfig) -> Path:
    """The demo's model (its recipe, size, data and epochs), trained the way `latentctl train` does."""
    import latentctl

    faces = synthetic.make_dataset(ws.root / "faces", cfg.images, cfg.image_size, cfg.seed)
    return latentctl.train_run(
        faces,
        workspace=ws.root,
        device="cpu",
        name="bench-directions",
        arch=cfg.arch,
        image_size=cfg.image_size,
        width=cfg.width,
        channels=3,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        checkpoint_every=cfg.epochs,
        snapshot_every=10**6,
        precision=cfg.precision,
    )


def detector_rates(G, z: np.ndarray) -> dict[str, float]:
    return {
        k: float(v.mean()) for k, v in synthetic.detect_attributes(generate(G, z, device=torch.device("cpu"))).items()
    }


def best_rate_change(G, z: np.ndarray, v: np.ndarray) -> dict[str, float]:
    """Per attribute: max over strengths of |rate(s) - rate(0)|."""
    rates = [detector_rates(G, (z + s * v).astype(np.float32)) for s in STRENGTHS]
    zero = rates[STRENGTHS.index(0.0)]
    return {a: max(abs(r[a] - zero[a]) for r in rates) for a in synthetic.ATTRIBUTES}


def mean_error(errors) -> tuple[float, float]:
    moved = [e for e in errors if e.alpha != 0]
    return float(np.mean([e.walk for e in moved])), float(np.mean([e.zero for e in moved]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="reuse a run folder trained on the synthetic faces")
    ap.add_argument("--workspace", type=Path, help="where to train and cache [default: a temporary folder]")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps for the walks and the GANalyze direction")
    ap.add_argument("--test-seeds", type=int, default=200, help="held-out latents the detector rates use")
    ap.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 3")
    args = ap.parse_args()
    parts = {int(p) for p in args.parts.split(",")}

    print(f"CPU: {cpu_model()} ({torch.get_num_threads()} torch threads); torch {torch.__version__}")
    cfg = DemoConfig()
    ws = Workspace(args.workspace or Path(tempfile.mkdtemp(prefix="bench-directions-")))
    t0 = time.perf_counter()
    run_dir = args.run or train_demo_gan(ws, cfg)
    if args.run is None:
        print(
            f"trained the demo model ({cfg.arch}, {cfg.image_size} px, {cfg.images} faces, {cfg.epochs} epochs) in {time.perf_counter() - t0:.0f} s: {run_dir}"
        )
    G = checkpoint.load(run_dir).generator
    prepare_for_sampling(G, torch.device("cpu"))
    dim = G.config.latent_dim
    z_test = np.random.default_rng(123).standard_normal((args.test_seeds, dim)).astype(np.float32)

    # 1. unsupervised vs random
    t = time.perf_counter()
    sets = {
        "sefa": D.find(G, "sefa", 5).vectors,
        "pca": D.find(G, "pca", 5).vectors,
        "random": D.random_directions(dim, 5, seed=7),
    }
    if 1 in parts:
        print(
            f"\n1. unsupervised directions (found in {time.perf_counter() - t:.1f} s); detector rates at strength 0: "
            + ", ".join(f"{a} {r:.2f}" for a, r in detector_rates(G, z_test).items())
        )
        print(f"{'set':<8}{'change/unit (RMS 0-255)':>26}   best |Δ detector rate| over -3..3 (best direction of 5)")
        print(f"{'':<8}{'mean':>12}{'max':>14}   " + "".join(f"{a:>11}" for a in synthetic.ATTRIBUTES))
        for name, vecs in sets.items():
            change = D.image_change(G, z_test[:64], vecs)
            best = [best_rate_change(G, z_test, v) for v in vecs]
            per_attr = {a: max(b[a] for b in best) for a in synthetic.ATTRIBUTES}
            print(
                f"{name:<8}{change.mean():>12.2f}{change.max():>14.2f}   "
                + "".join(f"{per_attr[a]:>11.2f}" for a in synthetic.ATTRIBUTES)
            )

    # 2. learned walks vs zero walk vs the best unsupervised direction at its best scale
    if 2 in parts:
        print("\n2. walks for known edits: mean masked RMS error (0-255) against the edited image, held-out latents")
        print(f"{'edit':<9}{'learned':>9}{'zero':>8}{'best unsupervised':>20}   time")
        z_eval = (
            np.random.default_rng([0, 1]).standard_normal((32, dim)).astype(np.float32)
        )  # = learn_walk's held-out set
        for edit in ("zoom", "shift-x"):
            t = time.perf_counter()
            res = learn_walk(G, edit, steps=args.steps)
            learned, zero = mean_error(res.errors)
            amax = EDITS[edit].alpha_max
            alphas = eval_alphas(amax)
            best, which = np.inf, ""
            for name in ("sefa", "pca"):
                for i, u in enumerate(sets[name]):
                    for s in (-4, -3, -2, -1, -0.5, 0.5, 1, 2, 3, 4):  # prior std moved at the largest alpha
                        err = mean_error(walk_errors(G, u * (s / amax), edit, z_eval, alphas))[0]
                        if err < best:
                            best, which = err, f"{name}-{i + 1} x{s:+g}"
            print(f"{edit:<9}{learned:>9.2f}{zero:>8.2f}{best:>10.2f} ({which})   {time.perf_counter() - t:.0f} s")

    # 3. GANalyze with a smile classifier trained on the real faces
    if 3 in parts:
        t = time.perf_counter()
        images, labels = synthetic.synthetic_faces(2000, cfg.image_size, seed=1)
        clf, rep = train_classifier(
            images, labels["smile"], config=ClassifierConfig(image_size=cfg.image_size), epochs=10
        )
        g = learn_direction(G, clf, steps=args.steps)
        print(
            f"\n3. GANalyze, smile classifier (held-out accuracy on faces {rep.val_accuracy:.1%}); {time.perf_counter() - t:.0f} s"
        )
        print(
            f"{'strength':>9}{'logit (renorm)':>16}{'logit (added)':>15}{'target':>8}{'detector smile':>16}{'agreement':>11}"
        )
        # the classifier's curve on the same held-out latents as the detector's (200, not the 256 of
        # learn_direction's own report), so both columns describe the same images
        curve = score_curve(G, clf, g.direction, z_test, [c.strength for c in g.curve])
        det_rates = []
        for c in curve:
            z = z_test + c.strength * g.direction
            z = z * (np.linalg.norm(z_test, axis=1, keepdims=True) / np.linalg.norm(z, axis=1, keepdims=True))
            img = generate(G, z.astype(np.float32), device=torch.device("cpu"))
            det = synthetic.detect_attributes(img)["smile"]
            det_rates.append(float(det.mean()))
            agree = float(((clf.score_uint8(img) > 0) == det).mean())
            print(
                f"{c.strength:>+9.2f}{c.score:>16.3f}{c.score_added:>15.3f}{c.target:>8.3f}{det.mean():>16.2f}{agree:>11.2f}"
            )
        up = [c for c in curve if 0 <= c.strength <= 2]
        rising = all(b.score > a.score for a, b in zip(up, up[1:]))
        det_up = [r for c, r in zip(curve, det_rates) if 0 <= c.strength <= 2]
        print(
            f"over 0..2: classifier score {'rises monotonically' if rising else 'does NOT rise monotonically'} "
            f"({up[0].score:+.2f} -> {up[-1].score:+.2f}); detector smile rate {det_up[0]:.2f} -> {det_up[-1]:.2f}"
            f" ({'monotonic' if all(b >= a for a, b in zip(det_up, det_up[1:])) else 'not monotonic'})"
        )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
