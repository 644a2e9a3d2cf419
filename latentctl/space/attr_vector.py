"""What `latentctl attr-vector` computes between parsing and printing: the model a direction is made
for (from its header alone when it can be), the two groups of latents (given, or a labelled image
folder split by a label), and the direction between them with its reports and its store entry,
including its overlap with the directions already in the store.

The command prints the reports and saves the entry; nothing here prints (warnings go to the
``warn`` callback given).
"""

from __future__ import annotations

import dataclasses
import io
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from latentctl.errors import StoreError, UsageError
from latentctl.files.checkpoint import CheckpointInfo
from latentctl.files.workspace import Workspace
from latentctl.seeds import MAX_SEED_COUNT
from latentctl.space import latents as L
from latentctl.space.store import LatentEntry, LatentStore, read_entry, recorded_space, resolve_latents
from latentctl.space.store_index import SUFFIX


def check_options(method: str, permutations: int) -> None:
    """The numbers and names of the method, checked before any latent is read."""
    if method not in L.DIRECTION_METHODS:
        raise UsageError(f"--method must be mean or boundary, got {method!r}")
    if not 0 <= permutations <= 10_000:
        raise UsageError(f"--permutations must be from 0 to 10,000 (0 skips the baseline), got {permutations}")


def check_label_options(pos_if: str | None, neg_if: str | None, name_pattern: str | None) -> None:
    """The conditions and the file-name pattern of ``--images``, checked before the slow part
    (encoding every image)."""
    from latentctl.pictures.labels import check_condition, compile_pattern

    for flag, cond in (("--pos-if", pos_if), ("--neg-if", neg_if)):
        if cond is not None:
            try:
                check_condition(cond)
            except UsageError as e:
                raise UsageError(f"{flag}: {e}") from None
    if name_pattern is not None:
        compile_pattern(name_pattern)


# ---- the model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionModel:
    """The model a direction is made for, as far as it is known: from its header (no weights are
    loaded unless seeds must go through a StyleGAN's mapping), or from the session that encoded
    the images. Without any model, ``info`` and ``latent_dim`` are None: only stored latents, of
    one size, can be used then."""

    store: LatentStore
    latent_dim: int | None
    info: CheckpointInfo | None
    from_seeds: Callable[[list[int]], np.ndarray] | None  # seeds -> the model's latents
    space: str | None  # the latent space worked in (None without a model)

    @property
    def own_space(self) -> str:
        """The model's own space, what its entries from before spaces were recorded are in."""
        return "" if self.info is None else self.info.model.own_space

    def with_session(self, session: Any) -> DirectionModel:
        """The same, sized by the model ``session`` loaded (``session.ModelSession``)."""
        model = session.info.model
        return dataclasses.replace(self, latent_dim=model.latent_dim, info=session.info, space=model.latent_space)


def direction_model(model: Path | None, workspace: Path | None, space: str | None, noise: str | None) -> DirectionModel:
    """The given or current model, read from its header; a wrong ``space`` or ``noise`` fails here."""
    from latentctl.space.session import open_model, seeds_function

    ws = Workspace.resolve(workspace)
    store = LatentStore(ws.store)
    dim, info = _header_latent_dim(model, workspace, space)
    if info is None:
        return DirectionModel(store, dim, None, None, None)
    info.model.check_noise(noise)
    from_seeds = seeds_function(info, lambda: open_model(model, "auto", workspace, "fp32", space=space, noise=noise))
    return DirectionModel(store, dim, info, from_seeds, info.model.latent_space)


def _header_latent_dim(
    model: Path | None, workspace: Path | None, space: str | None
) -> tuple[int | None, CheckpointInfo | None]:
    """The model's latent size in ``space`` and its header, when a model is given or current
    (read without torch)."""
    from latentctl.files.checkpoint import read_header

    ws = Workspace.resolve(workspace)
    try:
        info = read_header(ws.resolve_checkpoint(model))
    except UsageError:
        if model is not None:
            raise
        if space is not None:
            raise UsageError(f"--space {space} needs a model (give --model, or train or import one)") from None
        return None, None
    info = dataclasses.replace(info, model=info.model.in_space(space))
    return info.model.latent_dim, info


# ---- the two groups ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Groups:
    """The latents that show the attribute (pos) and those that do not (neg)."""

    pos: np.ndarray  # (n_pos, d)
    neg: np.ndarray  # (n_neg, d)
    pos_sources: list[str]  # as given (--pos), or the image folder's split ("faces:age>60")
    neg_sources: list[str]
    pos_entries: list[LatentEntry] = dataclasses.field(default_factory=list)  # none for images
    neg_entries: list[LatentEntry] = dataclasses.field(default_factory=list)


def groups_from_latents(target: DirectionModel, pos: list[str], neg: list[str]) -> Groups:
    """``--pos`` and ``--neg``: store entries, files or seeds, each checked against the model."""
    p, pe = _gather(target, pos, "--pos")
    n, ne = _gather(target, neg, "--neg")
    return Groups(p, n, list(pos), list(neg), pe, ne)


def _gather(target: DirectionModel, specs: list[str], flag: str) -> tuple[np.ndarray, list[LatentEntry]]:
    entries, total = [], 0
    for spec in specs:
        entries.append(
            resolve_latents(
                spec, target.store, target.latent_dim, target.from_seeds, space=target.space, own_space=target.own_space
            )
        )
        total += entries[-1].count
        # Each spec alone may hold 100,000 rows: stop before many of them fill the memory.
        if total > MAX_SEED_COUNT:
            raise UsageError(
                f"{flag}: the latents given hold more than {MAX_SEED_COUNT:,} rows; use fewer or pick rows with @"
            )
    dims = {e.latent_dim for e in entries}
    if len(dims) > 1:
        raise StoreError(f"{flag}: the sources have different latent sizes ({sorted(dims)})")
    return np.concatenate([e.z for e in entries]), entries


def groups_from_labels(
    z: np.ndarray, values: np.ndarray, *, images: Path, column: str, pos_if: str, neg_if: str | None
) -> Groups:
    """Encoded images ``z`` split by their label ``values``: pos where ``pos_if`` holds, neg where
    ``neg_if`` does (default: every other labelled image)."""
    pos_mask = _select(values, pos_if, "--pos-if")
    neg_mask = _select(values, neg_if, "--neg-if") if neg_if else ~pos_mask & _labelled(values)
    return Groups(
        z[pos_mask],
        z[neg_mask],
        [f"{images}:{column}{pos_if}"],
        [f"{images}:{column}{neg_if}" if neg_if else f"{images}:not {column}{pos_if}"],
    )


def _labelled(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v is not None for v in values], dtype=bool)
    return np.isfinite(values)


def _select(values: np.ndarray, condition: str, flag: str) -> np.ndarray:
    from latentctl.pictures.labels import select

    try:
        mask = select(values, condition)
    except UsageError as e:
        raise UsageError(f"{flag}: {e}") from None
    if not mask.any():
        raise UsageError(
            f"{flag} {condition}: no labelled image matches; check the value (e.g. with a text column, its exact spelling)"
        )
    return mask


# ---- the direction ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeVector:
    """A direction ready to save: its store name and entry, and what the command reports of it."""

    name: str
    entry: LatentEntry  # kind "direction", one row
    built: L.BuiltDirection  # the vector, its separation on the picks and its held-out report
    method: str
    n_pos: int
    n_neg: int
    overlaps: L.Overlaps  # against the store's other directions (also in the entry's meta)
    side_effects: tuple = ()  # SideEffect per --keep classifier (also in the entry's meta)
    label_effects: tuple = ()  # LabelEffect per other label column of --images (also in the meta)

    def with_side_effects(self, effects: Sequence[SideEffect]) -> AttributeVector:
        meta = {**self.entry.meta, "side_effects": [e.to_meta() for e in effects]}
        return dataclasses.replace(self, side_effects=tuple(effects), entry=dataclasses.replace(self.entry, meta=meta))

    def with_label_effects(self, z: np.ndarray, columns: dict, *, seed: int = 0) -> AttributeVector:
        """With what the direction does to each label column of the pictures whose latents are ``z``
        (``label_effects.label_effects``), in its entry."""
        from latentctl.space.label_effects import label_effects

        effects = label_effects(z, columns, self.built.vector, seed=seed)
        meta = {**self.entry.meta, "label_effects": [e.to_meta() for e in effects]}
        return dataclasses.replace(self, label_effects=tuple(effects), entry=dataclasses.replace(self.entry, meta=meta))

    def summary(self) -> str:
        meta = self.built.meta
        return (
            f"{self.method} direction from {self.n_pos} pos and {self.n_neg} neg latents: "
            f"{L.scale_text(meta, meta['length'])}"
        )

    def report(self, path: Path) -> dict:
        """The ``--json`` report of the direction saved at ``path``."""
        return {
            "name": self.name,
            "path": str(path),
            "method": self.method,
            "pos": self.n_pos,
            "neg": self.n_neg,
            "on_picks": self.built.report.summary(),
            "warnings": list(self.built.held_out.warnings),
            **{k: v for k, v in self.entry.meta.items() if k not in ("pos", "neg")},
        }


def attribute_vector(
    target: DirectionModel,
    groups: Groups,
    *,
    method: str = "mean",
    orthogonal_to: Sequence[str] = (),
    unit: bool = False,
    permutations: int = 100,
    seed: int = 0,
    name: str | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> AttributeVector:
    """The direction from ``groups.neg`` to ``groups.pos`` (``latents.build_direction``), leaving
    the ``orthogonal_to`` directions unchanged, as a store entry named ``name`` [default:
    POS-minus-NEG] that records the model, the space, how it was made and how far it points along
    the store's other directions (``store_overlaps``)."""
    p, n = groups.pos, groups.neg
    L.validate_sets(
        p, n, pos_name="--pos " + ",".join(groups.pos_sources), neg_name="--neg " + ",".join(groups.neg_sources)
    )
    models = {e.model_id for e in groups.pos_entries + groups.neg_entries if e.model_id}
    if len(models) > 1:
        warn(f"--pos and --neg come from different models ({', '.join(sorted(models))}); the direction mixes them")
    others = [
        resolve_latents(o, target.store, p.shape[1], target.from_seeds, space=target.space, own_space=target.own_space)
        for o in orthogonal_to
    ]
    spaces = {e.space for e in groups.pos_entries + groups.neg_entries + others if e.space}
    if len(spaces) > 1:  # only without a model: with one, every entry was checked against its space
        raise UsageError(
            f"the latents given are in different spaces ({', '.join(sorted(spaces))}); give ones of one space"
        )
    # A direction entry holds one row; one with several rows counts as their mean.
    removed = [o.z[0] if o.count == 1 else o.z.mean(0) for o in others]
    built = L.build_direction(p, n, method, removed, unit, permutations=permutations, seed=seed)
    info = target.info
    name = name or f"{_slug(groups.pos_sources)}-minus-{_slug(groups.neg_sources)}"
    space = target.space or next(iter(spaces), "")
    model_id = info.model_id if info is not None else (models.pop() if len(models) == 1 else "")
    run_id = info.run_id if info is not None else next((e.run_id for e in groups.pos_entries if e.run_id), "")
    # The entry this one replaces (--force) is not another direction.
    overlaps = store_overlaps(
        target.store,
        built.vector,
        space=space,
        model_id=model_id,
        run_id=run_id,
        skip=[name],
        own_space=target.own_space,
    )
    entry = LatentEntry(
        z=built.vector[None, :],
        kind="direction",
        space=space,
        model_id=model_id,
        run_id=run_id,
        meta={
            "command": "attr-vector",
            "pos": groups.pos_sources,
            "neg": groups.neg_sources,
            "orthogonal_to": list(orthogonal_to),
            "norm": float(np.linalg.norm(built.vector)),
            **built.meta,
            **overlap_meta(overlaps),
        },
    )
    return AttributeVector(name, entry, built, method, len(p), len(n), overlaps)


def overlap_meta(overlaps: L.Overlaps) -> dict:
    """What a direction entry records of its overlaps (and ``--json`` reports)."""
    return {"overlaps": overlaps.to_meta(), "overlap_threshold": overlaps.threshold}


# ---- overlap with the store's directions -------------------------------------------------------------


def store_overlaps(
    store: LatentStore,
    vector: np.ndarray,
    *,
    space: str,
    model_id: str = "",
    run_id: str = "",
    skip: Sequence[str] = (),
    own_space: str = "",
) -> L.Overlaps:
    """The cosine between ``vector`` and every direction of ``store`` it can be compared with: of
    its size, in the same latent ``space`` and made by the same model (or run), as far as both
    record them ("" is unknown, and compared). Entries named in ``skip`` and entries that cannot
    be read are left out: another entry never fails the command (`latents list` shows what is
    wrong with it). An entry of several rows counts as their mean, as ``--orthogonal-to`` reads it."""
    others = []
    for name in store.names():
        path = store.root / (name + SUFFIX)
        if name in skip or not _may_be_direction(path):
            continue
        try:
            entry = read_entry(path)
        except (StoreError, SystemError, UnicodeError):  # SystemError: numpy's text of a hostile member
            continue
        found = recorded_space(entry, own_space)
        if (
            entry.kind == "direction"
            and entry.latent_dim == len(vector)
            and (not found or not space or found == space)
            and _same_model(entry, model_id, run_id)
        ):
            others.append((name, entry.z.mean(0, dtype=np.float64)))
    return L.overlaps(vector, others)


def _same_model(entry: LatentEntry, model_id: str, run_id: str) -> bool:
    """Whether ``entry`` may share the model's space: the same model, another checkpoint of the same
    run, or either unknown. Another model's direction lies in a space of its own; a cosine with it
    means nothing."""
    if not entry.model_id or not model_id or entry.model_id == model_id:
        return True
    return bool(entry.run_id and run_id and entry.run_id == run_id)


# The most a 'kind' member of an entry holds: a 0-d string of 9 characters and its .npy header.
_KIND_BYTES = 1024


def _may_be_direction(path: Path) -> bool:
    """False when the file's 'kind' member, read alone, says "points" (or it has none): so the scan
    never reads the rows of the store's sample entries, which may be large. True when unsure, for
    ``read_entry`` to judge."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            info = members.get("kind") or members.get("kind.npy")
            if info is None:
                return False  # an entry without a kind holds points
            if info.file_size > _KIND_BYTES:
                return True
            data = io.BytesIO(zf.read(info))
        with warnings.catch_warnings():  # numpy warns of old headers; the library never prints
            warnings.simplefilter("ignore")
            major, _ = npformat.read_magic(data)
            shape, _, dtype = (npformat.read_array_header_1_0 if major == 1 else npformat.read_array_header_2_0)(data)
        # A 0-d text array: one item of the size the header declares (checked against the bytes).
        return not (shape == () and dtype.kind == "U" and str(np.frombuffer(data.read(), dtype, 1)[0]) == "points")
    except Exception:  # any damage: unsure, and read_entry says what it is
        return True


def _slug(specs: list[str]) -> str:
    from latentctl.files.workspace import slug

    return slug("+".join(Path(s.split("@")[0]).stem.replace("seeds:", "seeds") for s in specs))[:30]


# ---- what else a direction moves, measured with classifiers (`--keep CLF`) ----------------------

# Seeds the check renders: far from the small seeds users pick from, so the picks (and their
# held-out report) never grade themselves.
SIDE_EFFECT_SEEDS = range(900_000, 900_032)
SIDE_EFFECT_RANDOMS = 2  # random directions of the same length: the baseline a change is judged by
# "Clearly moved": the direction changes the classifier's probability by 0.1 more than a random
# direction of its length does (a change a viewer sees on average), and the paired difference
# over the seeds is at least 3 standard errors from zero (one-sided p < 0.002 under the normal
# approximation), so 32 noisy images cannot raise it by chance.
SIDE_EFFECT_MARGIN = 0.1
SIDE_EFFECT_T = 3.0


@dataclass(frozen=True)
class SideEffect:
    """How much one classifier's attribute moves at strength 1 along a direction, next to random
    directions of the same length."""

    classifier: str  # the classifier's file name
    change: float  # mean |probability change| from the unedited images, along the direction
    random: float  # the same along random directions of the direction's length
    t: float  # the paired difference in standard errors
    samples: int

    @property
    def clear(self) -> bool:
        return self.change - self.random >= SIDE_EFFECT_MARGIN and self.t >= SIDE_EFFECT_T

    def line(self) -> str:
        verdict = "moves it" if self.clear else "leaves it about as a random direction does"
        return (
            f"{self.classifier}: mean |probability change| {self.change:.2f} at strength 1, "
            f"{self.random:.2f} for a random direction of the same length ({self.samples} seeds): {verdict}"
        )

    def hint(self, name: str) -> str:
        stem = Path(self.classifier).stem
        return (
            f"'{name}' also moves what {self.classifier} sees ({self.change:.2f} vs {self.random:.2f} at random); "
            f"to hold it still, make a direction for it (latentctl steer --assessor {stem} --save {stem}-dir, "
            f"or attr-vector from picks) and add --orthogonal-to {stem}-dir"
        )

    def to_meta(self) -> dict:
        return {
            "classifier": self.classifier,
            "change": round(self.change, 4),
            "random": round(self.random, 4),
            "t": round(self.t, 2) if np.isfinite(self.t) else None,  # JSON has no infinity
            "clear": self.clear,
        }


def side_effects(
    session: Any,
    vector: np.ndarray,
    classifiers: Sequence[Path],
    *,
    seeds: Sequence[int] = SIDE_EFFECT_SEEDS,
    randoms: int = SIDE_EFFECT_RANDOMS,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[SideEffect]:
    """Each classifier's attribute change at strength 1 along ``vector``, on ``seeds``' latents,
    next to ``randoms`` random directions of the same length (seeded by ``seed``).
    ``on_progress(done, total)`` counts the batches of images rendered."""
    from latentctl.space.assessor import load_classifier
    from latentctl.space.generate import generate

    vector = np.asarray(vector, np.float32).reshape(-1)
    base = session.seed_latents(list(seeds))
    rng = np.random.default_rng([seed, 7])
    moves = [vector]
    for _ in range(randoms):
        r = rng.standard_normal(vector.shape).astype(np.float32)
        moves.append(r * np.float32(np.linalg.norm(vector) / max(np.linalg.norm(r), 1e-12)))
    total, done = 1 + len(moves), 0
    images = []
    for z in [base, *(base + m for m in moves)]:
        images.append(generate(session.generator, z.astype(np.float32), device=session.device, precision="fp32"))
        done += 1
        if on_progress is not None:
            on_progress(done, total)
    out = []
    for path in classifiers:
        clf = load_classifier(Path(path), session.device)
        probs = [1.0 / (1.0 + np.exp(-clf.score_uint8(batch, session.device).astype(np.float64))) for batch in images]
        change = np.abs(probs[1] - probs[0])
        random = np.mean([np.abs(p - probs[0]) for p in probs[2:]], axis=0)
        diff = change - random
        spread = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        t = float(diff.mean() / spread) if spread > 0 else (float("inf") if diff.mean() > 0 else 0.0)
        out.append(SideEffect(Path(path).name, float(change.mean()), float(random.mean()), t, len(diff)))
    return out
