"""The end-to-end demo on built-in synthetic faces: the seed's three experiments, measured.

It trains the seed's GAN (small) on cartoon faces whose attributes are known, samples, labels the
samples with the pixel-level detectors of ``synthetic``, builds a direction from samples with and
without an attribute, applies it to held-out samples at several strengths and measures how often
the detector then finds the attribute, interpolates, and writes a gallery (index.html) that shows
each step next to the CLI command that does the same thing.

Before the experiments it measures how close the model came to its data, the two numbers the
seed's "does it look like faces?" stands for: how often the detectors find each attribute on the
samples and on the training faces (the detector's own mistakes then cancel), and the Fréchet
distance of the samples (``score``) beside the real-vs-real floor.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentctl.files import checkpoint
from latentctl.files.fsutil import atomic_write_bytes, atomic_write_text
from latentctl.files.workspace import Workspace
from latentctl.pictures import synthetic
from latentctl.pictures.grid import make_grid, save_png
from latentctl.quality import score
from latentctl.seeds import latents_from_seeds
from latentctl.space.generate import generate
from latentctl.space.latents import interpolate_path, mean_difference, separation, strength_sweep
from latentctl.space.store import LatentEntry, LatentStore
from latentctl.train import health, runs
from latentctl.train.events import Event, NoticeEvent


@dataclass(frozen=True)
class DemoConfig:
    image_size: int = 32
    images: int = 2000
    width: int = 32
    epochs: int = 40  # the lite recipe at 32 px: 1,240 steps, 2.5-3 minutes on 2 CPU cores
    arch: str = "lite"
    batch_size: int = 64
    seed: int = 0
    pick_seeds: int = 200  # samples the directions are built from (the seed looked at 100)
    test_seeds: int = 200  # held-out samples the directions are measured on
    scales: tuple[float, ...] = (-1.0, 0.0, 1.0)
    precision: str = "fp32"  # training: fp32 | bf16 (the CLI resolves "auto" per device); samples render in fp32


@dataclass
class AttributeResult:
    attribute: str
    n_pos: int
    n_neg: int
    separation: str
    rates: dict[str, float] = field(default_factory=dict)  # strength -> detector rate on held-out samples


# A sample rate this far from the data's (the bar for "faces like its data") is reported
# as a model that has not yet learned the faces.
RATE_GAP = 0.15
LIKENESS_SAMPLES = 1000  # samples (seeds 0..999) the likeness is measured on


@dataclass
class Likeness:
    """How close the model's samples are to its training faces."""

    data_rates: dict[str, float]  # attribute -> share of training faces the detector finds it on
    sample_rates: dict[str, float]  # the same on the samples
    fd: float  # Fréchet distance, built-in features (docs/quality.md)
    floor: float  # the same between two halves of the training faces
    recall: float  # share of the training faces the samples cover
    n_samples: int

    def gaps(self) -> dict[str, float]:
        return {a: self.sample_rates[a] - self.data_rates[a] for a in self.data_rates}

    def off(self) -> dict[str, float]:
        """The attributes whose sample rate is more than RATE_GAP from the data's."""
        return {a: g for a, g in self.gaps().items() if abs(g) > RATE_GAP}


def likeness(samples: np.ndarray, faces: np.ndarray) -> Likeness:
    """Compare (N, S, S, 3) uint8 samples with the training faces they imitate."""
    data, fake = synthetic.detect_attributes(faces), synthetic.detect_attributes(samples)
    report = score.score_images(samples, faces)
    return Likeness(
        data_rates={a: float(data[a].mean()) for a in synthetic.ATTRIBUTES},
        sample_rates={a: float(fake[a].mean()) for a in synthetic.ATTRIBUTES},
        fd=report.score.fd,
        floor=report.floor.fd,
        recall=report.score.recall,
        n_samples=len(samples),
    )


@dataclass
class DemoReport:
    run_dir: Path
    gallery: Path
    attributes: list[AttributeResult]
    likeness: Likeness


def _without_short_run(on_event: Callable[[Event], None] | None) -> Callable[[Event], None] | None:
    """The demo's run is short on purpose (about 3 minutes on 2 cores) and its likeness check says
    at the end whether it got there, so training's generic "only N steps" warning is left out."""
    if on_event is None:
        return None

    def forward(event: Event) -> None:
        if not (isinstance(event, NoticeEvent) and event.kind == health.SHORT_RUN):
            on_event(event)

    return forward


@dataclass(frozen=True)
class _DemoModel:
    """The trained generator the experiments render with, and the identity its store entries carry."""

    generator: torch.nn.Module
    info: checkpoint.CheckpointInfo
    path: Path  # the checkpoint
    device: torch.device

    @property
    def dim(self) -> int:
        return self.info.model.latent_dim

    def render(self, z: np.ndarray) -> np.ndarray:
        return generate(self.generator, z, device=self.device)

    def entry(self, z: np.ndarray, kind: str = "points", seeds=None, **meta) -> LatentEntry:
        return LatentEntry(
            z=z,
            kind=kind,
            seeds=seeds,
            model_id=self.info.model_id,
            run_id=self.info.run_id,
            meta={"command": "demo", "checkpoint": str(self.path), **meta},
        )


@dataclass(frozen=True)
class _Picks:
    """The labelled samples the directions are built from, and the held-out ones they are measured on."""

    seeds: np.ndarray  # (pick_seeds,) int: seeds 0..pick_seeds-1
    z: np.ndarray  # (pick_seeds, d)
    labels: dict[str, np.ndarray]  # attribute -> (pick_seeds,) bool, from the detectors
    z_test: np.ndarray  # (test_seeds, d): the seeds right after the picks


def run_demo(
    ws: Workspace,
    out_dir: Path,
    config: DemoConfig = DemoConfig(),
    *,
    device: torch.device,
    on_event: Callable[[Event], None] | None = None,
    run_dir: Path | None = None,
) -> DemoReport:
    """Train (unless ``run_dir`` already holds a finished demo run), then experiment and write the gallery."""
    cfg = config
    faces = _faces(ws, cfg)
    if run_dir is None:
        run_dir, ckpt = _train(ws, faces, cfg, device, on_event)
    else:
        ckpt = ws.resolve_checkpoint(run_dir)
    loaded = checkpoint.load(ckpt, device=device)
    model = _DemoModel(loaded.generator, loaded.info, ckpt, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = LatentStore(ws.store)

    like = _new_faces(model, cfg, out_dir)
    picks = _pick_and_label(model, cfg)
    results, directions = _attribute_directions(model, picks, cfg, store, out_dir)
    _arithmetic(model, picks, directions, out_dir)
    _interpolation(model, out_dir)

    grids = _copy_progress_grids(run_dir, out_dir)
    report = DemoReport(run_dir=run_dir, gallery=out_dir / "index.html", attributes=results, likeness=like)
    _write_report_json(cfg, report, out_dir / "report.json")
    atomic_write_text(report.gallery, _gallery_html(cfg, report, grids, out_dir))
    return report


def _faces(ws: Workspace, cfg: DemoConfig) -> Path:
    """The folder of synthetic training faces, drawn once per size, count and seed and reused after."""
    folder = ws.root / "demo" / f"faces-{cfg.image_size}px-{cfg.images}-seed{cfg.seed}"
    return synthetic.make_dataset(folder, cfg.images, cfg.image_size, cfg.seed)


def _train(
    ws: Workspace, faces: Path, cfg: DemoConfig, device: torch.device, on_event: Callable[[Event], None] | None
) -> tuple[Path, Path]:
    """Train the demo's run: (its folder, its checkpoint)."""
    # The same path as `latentctl train`: one answer to "what is a run".
    request = runs.Request(
        data=faces,
        label="demo-faces",  # runs.plan names it demo-faces-{arch-}{size}px, as users and --reuse know it
        device=str(device),
        precision=cfg.precision,
        channels=3,
        model={"arch": cfg.arch, "image_size": cfg.image_size, "width": cfg.width},
        train={
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "checkpoint_every": cfg.epochs,
            "snapshot_every": 10**6,
        },
    )
    plan, _ = runs.resolve(ws, request)
    dataset = runs.open_data(plan, ws)
    run_dir = runs.start(plan, ws, dataset)
    return run_dir, runs.execute(plan, ws, dataset, device, on_event=_without_short_run(on_event))


def _new_faces(model: _DemoModel, cfg: DemoConfig, out_dir: Path) -> Likeness:
    """1. New faces: a 3x3 grid, as the seed's first figure, and how close they are to the data."""
    samples = model.render(latents_from_seeds(list(range(LIKENESS_SAMPLES)), model.dim))
    save_png(make_grid(samples[:9], labels=[str(s) for s in range(9)]), out_dir / "1-samples.png")
    return likeness(samples, synthetic.synthetic_faces(cfg.images, cfg.image_size, cfg.seed)[0])


def _pick_and_label(model: _DemoModel, cfg: DemoConfig) -> _Picks:
    """2a. Label the first `pick_seeds` samples with the detectors; hold out the next `test_seeds`."""
    pick = list(range(cfg.pick_seeds))
    test = list(range(cfg.pick_seeds, cfg.pick_seeds + cfg.test_seeds))
    z_pick, z_test = latents_from_seeds(pick, model.dim), latents_from_seeds(test, model.dim)
    labels = synthetic.detect_attributes(model.render(z_pick))
    return _Picks(seeds=np.asarray(pick), z=z_pick, labels=labels, z_test=z_test)


def _attribute_directions(
    model: _DemoModel, picks: _Picks, cfg: DemoConfig, store: LatentStore, out_dir: Path
) -> tuple[list[AttributeResult], dict[str, np.ndarray]]:
    """2b. One direction per attribute from the picks, measured on the held-out samples."""
    results: list[AttributeResult] = []
    directions: dict[str, np.ndarray] = {}
    for attr in synthetic.ATTRIBUTES:
        has = picks.labels[attr]
        if has.sum() < 3 or (~has).sum() < 3:
            results.append(AttributeResult(attr, int(has.sum()), int((~has).sum()), "too few samples on one side"))
            continue
        direction = directions[attr] = _save_direction(model, picks, attr, store)
        results.append(_measure(model, picks, attr, direction, cfg.scales))
        _sweep_strip(model, picks.z_test, direction, out_dir / f"2-sweep-{attr}.png")
    return results, directions


def _save_direction(model: _DemoModel, picks: _Picks, attr: str, store: LatentStore) -> np.ndarray:
    """mean(with) - mean(without) for ``attr``, saved with the two sets of picks it came from."""
    has = picks.labels[attr]
    pos, neg = picks.z[has], picks.z[~has]
    direction = mean_difference(pos, neg)
    store.save(f"demo-{attr}", model.entry(pos, seeds=picks.seeds[has], detector=attr), force=True)
    store.save(f"demo-no-{attr}", model.entry(neg, seeds=picks.seeds[~has], detector=attr), force=True)
    store.save(
        f"demo-{attr}-direction",
        model.entry(direction[None], kind="direction", method="mean", pos=f"demo-{attr}", neg=f"demo-no-{attr}"),
        force=True,
    )
    return direction


def _measure(
    model: _DemoModel, picks: _Picks, attr: str, direction: np.ndarray, scales: tuple[float, ...]
) -> AttributeResult:
    """How often the detector finds ``attr`` on the held-out samples with ``direction`` added at each strength."""
    has = picks.labels[attr]
    pos, neg = picks.z[has], picks.z[~has]
    sweep = strength_sweep(picks.z_test, direction, scales)  # (n, k, d)
    rates = {}
    for k, s in enumerate(scales):
        rates[f"{s:+g}"] = float(synthetic.detect_attributes(model.render(sweep[:, k]))[attr].mean())
    return AttributeResult(attr, len(pos), len(neg), separation(pos, neg, direction).summary(), rates)


def _sweep_strip(model: _DemoModel, z_test: np.ndarray, direction: np.ndarray, path: Path) -> None:
    """A sweep of the first 6 held-out samples for the gallery."""
    strip = model.render(strength_sweep(z_test[:6], direction, (-2, -1, 0, 1, 2)).reshape(-1, model.dim))
    save_png(make_grid(strip, cols=5, labels=["-2", "-1", "0", "+1", "+2"] * 6), path)


def _arithmetic(model: _DemoModel, picks: _Picks, directions: dict[str, np.ndarray], out_dir: Path) -> None:
    """3. The seed's arithmetic: mean(smiling) + (mean(glasses) - mean(no glasses)). Without a
    glasses direction or 3 smiling picks there is no picture (the gallery says so)."""
    smiling = picks.labels["smile"]
    if "glasses" not in directions or smiling.sum() < 3:
        return
    base = picks.z[smiling][:3]  # = the store entry demo-smile@0-2
    rows = np.concatenate([base, base.mean(0, keepdims=True), base.mean(0, keepdims=True) + directions["glasses"]])
    save_png(
        make_grid(model.render(rows), cols=5, labels=["smile", "smile", "smile", "mean", "+glasses"]),
        out_dir / "3-arithmetic.png",
    )


def _interpolation(model: _DemoModel, out_dir: Path) -> None:
    """4. A 6-step walk between two samples, as the seed's interpolation figure."""
    path = interpolate_path(latents_from_seeds([16, 37], model.dim), 6, "lerp")
    save_png(make_grid(model.render(path), cols=6), out_dir / "4-interpolation.png")


def _copy_progress_grids(run_dir: Path, out_dir: Path) -> list[Path]:
    """The run's first and last epoch grids, copied: the gallery folder holds every picture it
    shows, so it can be copied or served as it is."""
    grids = []
    for g in _first_and_last(sorted((run_dir / "grids").glob("epoch-*.png"))):
        copy = out_dir / f"0-progress-{g.name}"
        atomic_write_bytes(copy, g.read_bytes())
        grids.append(copy)
    return grids


def _write_report_json(cfg: DemoConfig, report: DemoReport, path: Path) -> None:
    atomic_write_text(
        path,
        json.dumps(
            {
                "run_dir": str(report.run_dir),
                "config": asdict(cfg),
                "likeness": asdict(report.likeness),
                "attributes": [asdict(r) for r in report.attributes],
            },
            indent=2,
        ),
    )


def _first_and_last(paths: list[Path]) -> list[Path]:
    return paths[:1] + paths[-1:] if len(paths) > 1 else paths


def _img(path: Path, out_dir: Path, alt: str) -> str:
    rel = path.relative_to(out_dir).as_posix()  # relative: the gallery is self-contained
    return f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}">'


def _gallery_html(cfg: DemoConfig, report: DemoReport, grids: list[Path], out_dir: Path) -> str:
    run = html.escape(str(report.run_dir))
    rows = "".join(
        f"<tr><td>{r.attribute}</td><td>{r.n_pos} / {r.n_neg}</td><td>{html.escape(r.separation)}</td>"
        + "".join(f"<td>{r.rates.get(f'{s:+g}', float('nan')):.0%}</td>" for s in cfg.scales)
        + "</tr>"
        for r in report.attributes
    )
    heads = "".join(f"<th>strength {s:+g}</th>" for s in cfg.scales)
    sweeps = "".join(
        f"<h3>{r.attribute}</h3><p><code>latentctl apply seeds:{cfg.pick_seeds}-{cfg.pick_seeds + 5} --add demo-{r.attribute}-direction --scales -2,-1,0,1,2</code></p>"
        + _img(out_dir / f"2-sweep-{r.attribute}.png", out_dir, f"{r.attribute} sweep")
        for r in report.attributes
        if r.rates
    )
    progress = "".join(_img(g, out_dir, g.stem) for g in grids)
    arithmetic = (
        _img(out_dir / "3-arithmetic.png", out_dir, "arithmetic")
        if (out_dir / "3-arithmetic.png").exists()
        else "<p>(not enough smiling samples)</p>"
    )
    like = report.likeness
    like_rows = "".join(
        f"<tr><td>{a}</td><td>{like.data_rates[a]:.0%}</td><td>{like.sample_rates[a]:.0%}</td>"
        f"<td>{100 * g:+.0f}{' (off)' if a in like.off() else ''}</td></tr>"
        for a, g in like.gaps().items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>latentctl demo</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;line-height:1.45}}
img{{image-rendering:pixelated;width:min(100%,600px);display:block;margin:.5em 0}}
code{{background:#f3f3f3;padding:1px 4px}} td,th{{padding:2px 10px;text-align:left}}</style></head><body>
<h1>latentctl demo: the seed's experiments on synthetic faces</h1>
<p>Run folder: <code>{run}</code>. Every image below comes from a seed or a saved latent, so each can be made again.</p>
<h2>0. Training progress (first and last epoch, seeds 0-35)</h2>{progress}
<h2>1. New faces</h2><p><code>latentctl sample -n 9</code></p>{_img(out_dir / "1-samples.png", out_dir, "samples")}
<p>How close {like.n_samples} samples are to the training faces: how often the detectors find each
attribute on both (points apart; more than {RATE_GAP:.0%} is marked off), and the Fréchet distance
<b>{like.fd:.2f}</b> ({like.fd / like.floor:.0f}x the {like.floor:.2f} of two halves of the real faces;
recall {like.recall:.2f}; <code>latentctl score {run}</code>).</p>
<table><tr><th>attribute</th><th>training faces</th><th>samples</th><th>points apart</th></tr>{like_rows}</table>
<h2>2. Attribute directions</h2>
<p>Samples {0}-{cfg.pick_seeds - 1} were labelled by pixel-level detectors (instead of by eye, as the seed did);
direction = mean(with) - mean(without), saved as <code>demo-ATTR-direction</code>
(<code>latentctl attr-vector --pos demo-glasses --neg demo-no-glasses</code>).
The table shows how often the detector finds the attribute on held-out samples
{cfg.pick_seeds}-{cfg.pick_seeds + cfg.test_seeds - 1} after adding the direction at each strength.</p>
<table><tr><th>attribute</th><th>with / without</th><th>separation</th>{heads}</tr>{rows}</table>
{sweeps}
<h2>3. Arithmetic: mean(smiling) + glasses direction</h2>
<p><code>latentctl apply demo-smile@0-2 --mean --add demo-glasses-direction</code></p>{arithmetic}
<h2>4. Interpolation, 6 steps between seeds 16 and 37</h2>
<p><code>latentctl interp seeds:16 seeds:37</code></p>{_img(out_dir / "4-interpolation.png", out_dir, "interpolation")}
</body></html>
"""
