"""The seed's experiment as a Python script: train, pick samples, build a direction, apply it.

    python examples/python_api.py                       # 2,000 synthetic faces, the lite recipe (~3 min on 2 cores)
    python examples/python_api.py --folder photos/ --size 64

Picking is the step a person does by eye in the CLI (`sample -n 100`, then `sample --seeds ...
--save glasses`). Here a picker function stands in for the eye: on the built-in faces it is the
faces' own attribute detector; for your pictures, replace `pick` with your own rule or labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import latentctl
from latentctl.files.workspace import Workspace
from latentctl.pictures import synthetic
from latentctl.space import latents as L
from latentctl.train.events import EpochEvent


def pick(images: np.ndarray, attribute: str) -> np.ndarray:
    """True where an image shows ``attribute`` (the built-in faces' detector)."""
    return synthetic.detect_attributes(images)[attribute]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="your pictures [default: make synthetic faces in the workspace]")
    ap.add_argument("--workspace", type=Path, help="[default: LATENTCTL_HOME or ~/.latentctl]")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--images", type=int, default=2000, help="synthetic faces to make")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--attribute", default="glasses", choices=synthetic.ATTRIBUTES)
    ap.add_argument("--samples", type=int, default=200, help="samples to pick from")
    ap.add_argument("--out", type=Path, default=Path("example-out"))
    args = ap.parse_args()

    ws = Workspace.resolve(args.workspace).root
    folder = args.folder or synthetic.make_dataset(ws / "example-faces", args.images, args.size)

    def progress(event) -> None:  # the library never prints: it reports through events
        if isinstance(event, EpochEvent):
            print(f"epoch {event.epoch} of {args.epochs}", flush=True)

    run = latentctl.train_run(
        folder,
        workspace=ws,
        image_size=args.size,
        arch="lite",
        width=args.width,
        epochs=args.epochs,
        name="example",
        on_event=progress,
    )
    model = latentctl.open_model(run, workspace=ws)

    seeds = list(range(args.samples))
    images = model.sample(seeds)
    shows = pick(images, args.attribute)
    pos = [s for s, yes in zip(seeds, shows) if yes]
    neg = [s for s, yes in zip(seeds, shows) if not yes]
    print(f"{len(pos)} of {len(seeds)} samples show {args.attribute}")
    if len(pos) < 2 or len(neg) < 2:
        raise SystemExit(f"need at least 2 samples on each side to build a direction; got {len(pos)} and {len(neg)}")

    # what `sample --seeds ... --save NAME` keeps: the latents, their seeds, the model they belong to
    for name, group in ((args.attribute, pos), (f"no-{args.attribute}", neg)):
        model.store.save(name, model.entry(model.latents(f"seeds:{','.join(map(str, group))}").z, seeds=group))

    # what `attr-vector --pos A --neg B` computes: the direction, its scale, held-out separation
    built = L.build_direction(model.store.load(args.attribute).z, model.store.load(f"no-{args.attribute}").z)
    print(built.held_out.summary())  # measured on picks left out of the fit, beside random splits
    for warning in built.held_out.warnings:
        print(f"warning: {warning}")

    # what `apply seeds:0-7 --add DIR --scales -1,0,1` renders: rows of seeds, columns of strengths
    base = model.latents("seeds:0-7").z
    rows = [model.images(base + s * built.vector) for s in (-1.0, 0.0, 1.0)]
    sheet = np.concatenate([np.concatenate(list(r), axis=0) for r in rows], axis=1)  # 8 tall, 3 wide
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{args.attribute}-sweep.png"
    Image.fromarray(sheet.squeeze()).save(target)
    after = pick(
        model.images(model.latents(f"seeds:{args.samples}-{args.samples + 99}").z + built.vector), args.attribute
    )
    print(f"held-out seeds with {args.attribute} after adding the direction: {after.mean():.0%}")
    print(target)


if __name__ == "__main__":
    main()
