"""What `latentctl steer` and `latentctl classifier train` decide and compute around the methods in
``steer.py`` (a walk for a known image edit) and ``assessor.py`` (GANalyze and its classifier).

``SteerRequest`` is a steer as typed, checked before the model loads; ``plan_steer`` names the
store entry and finds the classifier; ``learn_steer`` learns the direction and returns it with its
store entry; ``steer_sweep`` / ``draw_sweep`` are the strength sweep shown with it. For the
classifier: ``labelled_examples`` (a labelled folder) or ``PickedLatents`` (rendered latents) give
the ``ClassifierExamples`` that ``train_on_examples`` learns from, saved where ``classifier_target``
says.

Library code: it never prints; progress and the label summary go to callbacks. numpy and torch are
imported inside the functions, so the steer command's module stays light to import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentctl.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from latentctl.files.workspace import Workspace
    from latentctl.pictures.data import ImageDataset
    from latentctl.space.assessor import Assessor, GanalyzeResult, TrainReport
    from latentctl.space.session import ModelSession
    from latentctl.space.steer import SteerResult
    from latentctl.space.store import LatentEntry, LatentStore

CLASSIFIERS = "classifiers"  # workspace folder where `classifier train` puts its files by default
SWEEP_COLUMNS = 5  # strengths in the sweep image: -A, -A/2, 0, A/2, A


def resolve_classifier(spec: Path, ws: Workspace) -> Path:
    """A classifier file, or the name of one in the workspace's classifiers/ folder."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    named = ws.root / CLASSIFIERS / (path.name if path.suffix == ".safetensors" else path.name + ".safetensors")
    if named.is_file():
        return named
    raise UsageError(
        f"no classifier {str(spec)!r} (neither a file nor in {ws.root / CLASSIFIERS}); train one with 'latentctl classifier train'"
    )


# ---- steer ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SteerRequest:
    """A steer as the user asks for it: an image ``edit`` or an ``assessor`` (a classifier's file or
    name), never both. ``alpha_max`` None: the edit's own range, or 2 logits for an assessor."""

    edit: str | None = None
    assessor: Path | None = None
    channel: str = "red"  # the channel the color edit offsets
    alpha_max: float | None = None
    steps: int = 300
    batch_size: int = 16
    lr: float = 0.05
    seed: int = 0
    save: str | None = None  # the store name [default: steer-EDIT, or ganalyze-CLASSIFIER]

    def check(self) -> None:
        """Every word and number, before the model loads."""
        from latentctl.parse import MAX_BATCH_SIZE, check_count, check_float
        from latentctl.space.steer import check_edit

        if (self.edit is None) == (self.assessor is None):
            raise UsageError(
                "give --edit EDIT (zoom, shift-x, shift-y, rotate, brightness, color) or --assessor CLASSIFIER, one of them"
            )
        if self.edit is not None:
            check_edit(self.edit, self.channel)
        if self.alpha_max is not None and check_float(self.alpha_max, "--alpha-max", minimum=0.0) == 0:
            raise UsageError("--alpha-max must be above 0: it is the largest strength the walk is trained for")
        if check_float(self.lr, "--lr", minimum=0.0) == 0:
            raise UsageError("--lr must be above 0")
        check_count(self.steps, "--steps", 100_000, "a few hundred steps learn a walk")
        check_count(self.batch_size, "--batch-size", MAX_BATCH_SIZE, "lower it")


@dataclass(frozen=True)
class SteerPlan:
    request: SteerRequest
    name: str  # the store entry the direction is saved as
    classifier: Path | None  # the assessor's file; None for an edit

    @property
    def learning(self) -> str:
        """What is being learnt, in words: 'learning the zoom walk'."""
        if self.request.edit is not None:
            return f"learning the {self.request.edit} walk"
        return f"learning the GANalyze direction of {self.classifier.stem}"


def plan_steer(request: SteerRequest, ws: Workspace, store: LatentStore) -> SteerPlan:
    """The classifier's file and the store name; the classifier itself is loaded by the caller
    (``assessor.load_classifier``), so a damaged file fails before any learning."""
    edit = request.edit
    clf = resolve_classifier(request.assessor, ws) if request.assessor is not None else None
    default = f"steer-{edit}" + (f"-{request.channel}" if edit == "color" else "") if edit else f"ganalyze-{clf.stem}"
    return SteerPlan(request, store.normalize_name(request.save or default), clf)


@dataclass
class SteeredDirection:
    """A learned direction with the store entry it is saved as and the measurements shown with it."""

    name: str
    direction: np.ndarray  # (latent_dim,) float32; strength α asks for α of the edit or of the logit
    entry: LatentEntry  # kind "direction"; its meta records how it was learnt and measured
    walk: SteerResult | None = None  # --edit: the walk's held-out errors
    ganalyze: GanalyzeResult | None = None  # --assessor: the held-out score curve

    @property
    def alpha_max(self) -> float:
        return float(self.entry.meta["alpha_range"][1])

    @property
    def norm(self) -> float:
        import numpy as np

        return float(np.linalg.norm(self.direction))


def learn_steer(
    session: ModelSession,
    plan: SteerPlan,
    assessor: Assessor | None = None,
    *,
    on_step: Callable[[int, int, float], None] | None = None,
    on_eval: Callable[[int, int], None] | None = None,
) -> SteeredDirection:
    """Learn ``plan``'s direction on the session's generator; a GANalyze plan's classifier is
    ``assessor``, or loaded from ``plan.classifier`` when None. ``on_step(step, steps, loss)`` while learning; ``on_eval(done, total)`` while
    an edit's walk is measured on held-out latents (GANalyze measures without a count)."""
    from latentctl.space.assessor import DEFAULT_ALPHA_MAX, learn_direction, load_classifier
    from latentctl.space.steer import learn_walk

    r = plan.request
    learning = dict(steps=r.steps, batch_size=r.batch_size, lr=r.lr, seed=r.seed, device=session.device)
    if r.edit is not None:
        walk = learn_walk(
            session.generator,
            r.edit,
            channel=r.channel,
            alpha_max=r.alpha_max,
            on_step=on_step,
            on_eval=on_eval,
            **learning,
        )
        meta = {"command": "steer", "method": "steerability", **walk.meta, "errors": [vars(e) for e in walk.errors]}
        entry = session.entry(walk.direction[None], kind="direction", meta=meta)
        return SteeredDirection(plan.name, walk.direction, entry, walk=walk)
    if assessor is None:
        assessor = load_classifier(plan.classifier, session.device)
    alpha_max = r.alpha_max if r.alpha_max is not None else DEFAULT_ALPHA_MAX
    found = learn_direction(session.generator, assessor, alpha_max=alpha_max, on_step=on_step, **learning)
    meta = {
        "command": "steer",
        "method": "ganalyze",
        "assessor": str(plan.classifier),
        "assessor_training": assessor.meta,
        **found.meta,
        "curve": [vars(c) for c in found.curve],
    }
    entry = session.entry(found.direction[None], kind="direction", meta=meta)
    return SteeredDirection(plan.name, found.direction, entry, ganalyze=found)


@dataclass
class Sweep:
    """Latents moved along a direction: one row per seed, one column per strength."""

    strengths: list[float]
    latents: np.ndarray  # (seeds * strengths, latent_dim), row by row
    labels: list[str]  # each tile's strength

    @property
    def suggested(self) -> float:
        """Half the trained range: a clear edit, well inside what the walk learnt."""
        return self.strengths[-2]


def steer_sweep(session: ModelSession, learned: SteeredDirection, seeds: Sequence[int]) -> Sweep:
    """The seeds' latents at ``SWEEP_COLUMNS`` strengths across the direction's trained range."""
    import numpy as np

    from latentctl.space.latents import strength_sweep

    amax = learned.alpha_max
    strengths = [float(s) for s in np.linspace(-amax, amax, SWEEP_COLUMNS)]
    base = session.seed_latents(list(seeds))
    # the same sweep `apply --scales` draws, with its size and finiteness checks
    z = strength_sweep(base, learned.direction, strengths).reshape(-1, base.shape[1])
    return Sweep(strengths, z, [f"{s:+g}" for _ in seeds for s in strengths])


def draw_sweep(session: ModelSession, sweep: Sweep, out_dir: Path, *, force: bool = False) -> Path:
    """sweep.png in ``out_dir``: every tile of the sweep, a row per seed."""
    from latentctl.space.session import render

    n = len(sweep.latents)
    return render(
        session,
        sweep.latents,
        out_dir,
        names=None,
        labels=sweep.labels,
        cols=len(sweep.strengths),
        force=force,
        grid_name="sweep.png",
        grid_max=n,
    )


# ---- classifier train -----------------------------------------------------------------------------


@dataclass
class ClassifierExamples:
    """The pictures a classifier learns from, with what they came from (kept in its metadata)."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) bool: True where the picture shows the attribute
    source: dict[str, Any]
    default_name: str  # what the classifier is called when the user gives no name

    @property
    def n_pos(self) -> int:
        return int(self.labels.sum())

    @property
    def n_neg(self) -> int:
        return int((~self.labels).sum())


def check_classifier_size(image_size: int) -> int:
    from latentctl.config import IMAGE_SIZES

    if image_size not in IMAGE_SIZES:
        raise UsageError(f"--image-size {image_size} is not supported; pick one of {', '.join(map(str, IMAGE_SIZES))}")
    return image_size


def labelled_examples(
    ds: ImageDataset,
    folder: Path,
    column: str,
    pos_if: str,
    neg_if: str | None = None,
    *,
    labels: Path | None = None,
    name_pattern: str | None = None,
    on_labels: Callable[[str], None] | None = None,
) -> ClassifierExamples:
    """The images of ``folder``, decoded as ``ds``, split by ``column``: positive where ``pos_if`` holds, negative where
    ``neg_if`` does [default: every other labelled image]; unlabelled images are left out. Labels
    come from ``labels``, else the folder's labels.csv, else the file names (``name_pattern``,
    UTKFace's by default); ``on_labels`` gets the table's summary before the column is read."""
    import numpy as np

    from latentctl.pictures.labels import UTKFACE_PATTERN, labels_from_names, read_labels_csv, select

    folder = Path(folder)
    own = folder / "labels.csv"
    csv = labels or (own if own.exists() and name_pattern is None else None)
    table = read_labels_csv(csv, folder) if csv else labels_from_names(ds.files, name_pattern or UTKFACE_PATTERN)
    if on_labels is not None:
        on_labels(table.summary())
    values = table.column(ds.files, column)
    keep = np.isfinite(values)
    pos_mask = select(values, pos_if) & keep
    neg_mask = (select(values, neg_if) if neg_if else ~pos_mask) & keep
    chosen = pos_mask | neg_mask
    source = {"images": str(folder), "column": column, "pos_if": pos_if, "neg_if": neg_if}
    return ClassifierExamples(np.asarray(ds.images)[chosen], pos_mask[chosen], source, column)


@dataclass
class PickedLatents:
    """Latents picked as showing the attribute (``pos``) or not (``neg``), to render as examples."""

    pos_specs: list[str]
    neg_specs: list[str]
    pos: np.ndarray  # (P, latent_dim)
    neg: np.ndarray  # (N, latent_dim)

    @classmethod
    def resolve(cls, session: ModelSession, pos: list[str], neg: list[str]) -> PickedLatents:
        """Every spec read (store names, files, seeds:...) before any picture is drawn."""
        import numpy as np

        p = np.concatenate([session.latents(s).z for s in pos])
        n = np.concatenate([session.latents(s).z for s in neg])
        return cls(list(pos), list(neg), p, n)

    @property
    def count(self) -> int:
        return len(self.pos) + len(self.neg)

    def examples(self, session: ModelSession) -> ClassifierExamples:
        """The session's pictures of the picked latents, labelled by the side they were picked for."""
        import numpy as np

        from latentctl.space.generate import generate

        x = generate(session.generator, np.concatenate([self.pos, self.neg]), device=session.device)
        y = np.arange(len(x)) < len(self.pos)
        source = {
            "pos": self.pos_specs,
            "neg": self.neg_specs,
            "model_id": session.info.model_id,
            "checkpoint": str(session.path),
        }
        return ClassifierExamples(x, y, source, self.pos_specs[0].split("@")[0])


def classifier_target(ws: Workspace, out: Path | None, name: str, *, force: bool = False) -> Path:
    """Where the classifier is saved: ``out``, else classifiers/NAME.safetensors in the workspace;
    refused if the file exists and ``force`` is not set, before any training."""
    from latentctl.files.workspace import slug

    target = Path(out).expanduser() if out else ws.root / CLASSIFIERS / f"{slug(name)}.safetensors"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it or choose another --name/--out")
    return target


def train_on_examples(
    examples: ClassifierExamples,
    *,
    image_size: int = 64,
    epochs: int = 15,
    seed: int = 0,
    device: Any = "cpu",
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> tuple[Assessor, TrainReport]:
    """A classifier trained on ``examples``, its metadata recording where they came from and how it
    was trained (``save_classifier`` writes it)."""
    from latentctl.space.assessor import ClassifierConfig, train_classifier

    clf, report = train_classifier(
        examples.images,
        examples.labels,
        config=ClassifierConfig(image_size=image_size),
        epochs=epochs,
        seed=seed,
        device=device,
        on_epoch=on_epoch,
    )
    clf.meta = {**examples.source, "epochs": epochs, "seed": seed, **vars(report)}
    return clf, report
