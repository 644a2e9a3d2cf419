"""What the explorer's page can ask for, as plain functions over a loaded model and its store.

Every request is a JSON object from an untrusted page: each field is checked here (types, ranges,
counts) and store names go through ``LatentStore.normalize_name``, exactly as on the command line,
so no request can name a path. Latents are computed with the very operations ``sample``,
``attr-vector``, ``apply`` and ``interp`` use, and every view carries the command that reproduces
it pixel for pixel (rendering is float32 on both sides: ``--precision fp32`` is always written out
because ``auto`` may pick bf16 on another machine).

A slider being dragged may ask for a *preview* (``"preview": true``): on a StyleGAN2 whose skip
path already holds the picture at a smaller size (``preview_sizes``), a model larger than
``PREVIEW_LIMIT`` px renders the largest of those sizes up to that limit, and the page scales it
up while the slider moves; on release it asks for the full image. Only what is shown is smaller:
saved entries and the commands shown are the full model's.

Library code: nothing here prints or imports a web framework.
"""

from __future__ import annotations

import base64
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import LatentctlError, StoreError, UsageError
from latentctl.seeds import MAX_SEED, format_seeds
from latentctl.space import latents as L
from latentctl.space.attr_vector import overlap_meta, store_overlaps
from latentctl.space.store import LatentEntry, check_space, compatibility_warning, recorded_space

# Bounds on what one request may ask for: a page can never make the server render or hold more
# than this, whatever it sends.
MAX_TILES = 64  # images per browse request
MAX_PILE = 500  # seeds per pile
MAX_DIRECTIONS = 8  # sliders combined in one view
MAX_SCALES = 11  # images in a strength strip
MAX_STEPS = 33  # interpolation steps
MAX_WEIGHT = 20.0
MAX_PSI = 2.0
MAX_PREVIEW = 16  # rows of a store entry rendered when it is loaded
MIN_PICKS = 10  # per pile, as Latent Compass asks
# The check runs on every pick: 50 relabellings put its baseline's 95th percentile within a few
# points of the exact one at a fraction of the cost; saving a direction uses attr-vector's default.
CHECK_PERMUTATIONS = 50
METHODS = ("mean", "boundary")
# Previews while a slider moves: the largest preview size up to this, on models larger than it.
PREVIEW_LIMIT = 256


def preview_size(sizes: Any, image_size: int, limit: int = PREVIEW_LIMIT) -> int | None:
    """The size a preview renders at: the largest of ``sizes`` (a generator's ``preview_sizes``) that
    is at most ``limit`` and smaller than the image, or None when ``image_size`` is not larger than
    ``limit`` (the full image is cheap enough) or no size fits."""
    if image_size <= limit:
        return None
    fitting = [int(s) for s in sizes or () if int(s) <= limit and int(s) < image_size]
    return max(fitting, default=None)


class _PreviewGenerator:
    """``generator`` drawing its ``size`` px preview, in the shape ``generate`` takes (called with
    a batch of latents; ``training``, ``train`` and ``eval`` are the generator's own), so previews
    go through the same batching, precision and ``to_uint8`` as every full image."""

    def __init__(self, generator: Any, size: int):
        self.generator, self.size = generator, size

    @property
    def training(self) -> bool:
        return self.generator.training

    def train(self, mode: bool = True) -> _PreviewGenerator:
        self.generator.train(mode)
        return self

    def eval(self) -> _PreviewGenerator:
        return self.train(False)

    def __call__(self, z: Any) -> Any:
        return self.generator.preview(z, self.size)


class RequestError(UsageError):
    """A request the page should not have sent; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class NotFound(RequestError):
    def __init__(self, message: str):
        super().__init__(message, 404)


class Conflict(RequestError):
    def __init__(self, message: str):
        super().__init__(message, 409)


# ---- field checks -------------------------------------------------------------------------------


def _obj(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object")
    return value


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    # bool is an int subclass; true would silently mean 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{what} must be a whole number, got {value!r}"[:200])
    if not lo <= value <= hi:
        raise RequestError(f"{what} must lie within {lo}-{hi}, got {value}")
    return value


def _float(value: Any, what: str, lo: float, hi: float, digits: int = 3) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{what} must be a number, got {value!r}"[:200])
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise RequestError(f"{what} must be a number within {lo:g} to {hi:g}, got {value!r}")
    # Rounded, so the command shows the very number used: float(repr(x)) == x.
    return round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{what} must be true or false")
    return value


def _seed(value: Any, what: str = "seed") -> int:
    return _int(value, what, 0, MAX_SEED)


def _seeds(value: Any, what: str, limit: int) -> list[int]:
    if not isinstance(value, list):
        raise RequestError(f"{what} must be a list of seeds")
    if len(value) > limit:
        raise RequestError(f"{what} has {len(value)} seeds; at most {limit} per request", 413)
    seeds = [_seed(v, f"{what}[{i}]") for i, v in enumerate(value)]
    if len(set(seeds)) != len(seeds):
        raise RequestError(f"{what} lists a seed twice")
    return seeds


def _fmt(x: float) -> str:
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


# ---- views --------------------------------------------------------------------------------------


@dataclass
class Base:
    """A latent to start from, with how the CLI names it."""

    z: np.ndarray  # (1, d) float32
    spec: str  # what `apply` / `interp` take on their command line
    mean: bool = False  # `apply --mean`
    seed: int | None = None
    psi: float = 1.0
    prelude: str | None = None  # a command to run first (saving truncated seeds to the store)
    warning: str | None = None
    # the seed an entry's row records (an edited latent keeps its origin's): it names apply's
    # files, but the row's latent need not be that seed's
    entry_seed: int | None = None


def _apply_image(base: Base, scale: float) -> str:
    """The file `apply` writes for this one latent at ``scale``: named by its seed when it has one
    (a seed, an entry row with a seed, truncated seeds saved by the prelude), by row otherwise."""
    from latentctl.space.session import file_stems

    seed = base.seed if base.seed is not None else base.entry_seed
    (stem,) = file_stems(None if base.mean or seed is None else [seed], 1)
    return f"{stem}_scale{scale:+g}.png"


def _overlap_report(overlaps: L.Overlaps, command: str) -> dict:
    """The closest directions of the store, largest |cosine| first; each clear one with the
    command (``command``, the direction's own) that makes it again holding that one still."""
    return {
        "overlaps": [
            {**o.to_meta(), "hint": o.hint(f"{command} --orthogonal-to {o.name} --force") if o.clear else None}
            for o in overlaps.closest
        ],
        "overlap_threshold": overlaps.threshold,
        "overlap_summary": overlaps.summary(),
    }


class Explorer:
    """The model session, the store and the page's operations on them."""

    def __init__(
        self,
        session: Any,
        *,
        model_arg: Path | None = None,
        workspace_arg: Path | None = None,
        preview_limit: int = PREVIEW_LIMIT,
    ):
        self.session = session
        self.store = session.store
        self.dim = session.info.model.latent_dim
        # Generators without previews (latentctl's own, VAEs, Keras imports, StyleGAN3) have no
        # preview_sizes: every view of theirs is full size.
        sizes = getattr(session.generator, "preview_sizes", ())
        self.preview_size = preview_size(sizes, session.info.model.image_size, preview_limit)
        # Commands name the model and workspace only when the explorer was given them, so they
        # read as short as the user's own and still point at the same files.
        self._ws_text = "" if workspace_arg is None else f" --workspace {shlex.quote(str(workspace_arg))}"
        self._opts = ("" if model_arg is None else f" --model {shlex.quote(str(model_arg))}") + self._ws_text
        self._sample_opts = self._opts.replace(" --model ", " ", 1) if model_arg is not None else self._opts
        # A space other than the model's own (W+, or z, for a StyleGAN) and a noise mode other
        # than const are named too: the latents saved are that space's, and so are the pictures.
        space = session.info.model.space
        noise = getattr(session.generator, "noise_mode", "const")
        extra = (f" --space {space}" if space else "") + (f" --noise {noise}" if noise != "const" else "")
        self._opts += extra
        self._sample_opts += extra

    # ---- rendering

    def render(self, z: np.ndarray, *, preview: bool = False) -> list[bytes]:
        """PNG bytes for each row of ``z``, in float32 exactly as `apply` renders with --precision fp32.

        ``preview`` renders at ``preview_size`` instead when the model has one (full size when not)."""
        from PIL import Image

        from latentctl.pictures.grid import png_bytes
        from latentctl.space.generate import generate

        generator = self.session.generator
        if preview and self.preview_size is not None:
            generator = _PreviewGenerator(generator, self.preview_size)
        # A copy: store entries are read-only arrays, which torch.from_numpy warns about.
        images = generate(generator, np.array(z, np.float32), device=self.session.device, precision="fp32")
        return [png_bytes(Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)) for img in images]

    def _preview(self, req: dict) -> bool:
        """Whether this request gets a preview: it asked (``"preview": true``, meaning "fast if you
        can") and the model has a preview size."""
        return _bool(req.get("preview", False), "preview") and self.preview_size is not None

    def warm_up(self) -> None:
        """Draw one sample and throw it away: the first render of a process pays one-off costs
        (the device's and the thread pools' start-up) that the page's first grid should not."""
        self.render(self.seed_latents([0], 1.0))

    @staticmethod
    def data_url(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    # ---- store access (names validated like the CLI's)

    def name(self, value: Any, what: str = "name") -> str:
        if not isinstance(value, str):
            raise RequestError(f"{what} must be a store entry name")
        try:
            return self.store.normalize_name(value)
        except UsageError as e:
            raise RequestError(str(e)) from None

    def load(self, value: Any, what: str = "entry") -> tuple[str, LatentEntry]:
        name = self.name(value, what)
        if not self.store.exists(name):
            raise NotFound(f"no latent entry {name!r} in the store; the page's store list shows those saved")
        try:
            entry = self.store.load(name)
        except StoreError as e:
            # The message names the file inside the store, which is the user's own folder.
            raise RequestError(f"{name!r} cannot be read: {e}") from None
        model = self.session.info.model
        try:  # as the commands check it: a w read as a z draws an unrelated picture, silently
            check_space(entry, model.latent_space, name, model.own_space)
        except UsageError as e:
            raise RequestError(f"{e}, and restart the explorer") from None
        if entry.latent_dim != self.dim:
            raise RequestError(f"{name!r} has {entry.latent_dim}-dimensional latents but the model uses {self.dim}")
        return name, entry

    def _warning(self, name: str, entry: LatentEntry) -> str | None:
        info = self.session.info
        return compatibility_warning(entry, model_id=info.model_id, run_id=info.run_id, source=name)

    def _save(self, name: str, entry: LatentEntry, force: bool) -> Path:
        if self.store.exists(name) and not force:
            raise Conflict(f"the store already has an entry {name!r}; tick 'replace' or choose another name")
        return self.store.save(name, entry, force=force)

    def seed_latents(self, seeds: list[int], psi: float) -> np.ndarray:
        from latentctl.models.interface import truncate

        z = self.session.seed_latents(seeds)
        # `sample --psi` truncates with the same function; so does this, for identical bits.
        return z if psi == 1.0 else truncate(self.session.generator, z, psi)

    # ---- info

    def info(self) -> dict:
        s = self.session
        m = s.info.model
        return {
            "model": str(s.path),
            "model_id": s.info.model_id,
            "image_size": m.image_size,
            "latent_dim": m.latent_dim,
            "space": m.latent_space,
            "family": getattr(m, "family", "gan"),
            # what a moving slider's preview renders at (the page scales it up); None: always full size
            "preview_size": self.preview_size,
            "store": str(self.store.root),
            "limits": {
                "tiles": MAX_TILES,
                "pile": MAX_PILE,
                "directions": MAX_DIRECTIONS,
                "scales": MAX_SCALES,
                "steps": MAX_STEPS,
                "weight": MAX_WEIGHT,
                "psi": MAX_PSI,
                "min_picks": MIN_PICKS,
            },
        }

    def entries(self) -> dict:
        rows = []
        model = self.session.info.model
        for e in self.store.list():
            # the entry's space (as check_space reads it): a W+ entry is of no use in W
            space = recorded_space(e, model.own_space)
            rows.append(
                {
                    "name": e.name,
                    "kind": e.kind,
                    "count": e.count,
                    "latent_dim": e.latent_dim,
                    "model_id": e.model_id,
                    "created": e.created,
                    "error": e.error,
                    "space": space or None,
                    "usable": e.error is None and e.latent_dim == self.dim and space in ("", model.latent_space),
                }
            )
        return {"entries": rows}

    def entry(self, value: Any) -> dict:
        name, entry = self.load(value)
        out = {
            "name": name,
            "kind": entry.kind,
            "count": entry.count,
            "latent_dim": entry.latent_dim,
            "model_id": entry.model_id,
            "meta": entry.meta,
            "warning": self._warning(name, entry),
            "seeds": None if entry.seeds is None else entry.seeds.tolist(),
            "command": f"latentctl latents show {name}" + self._ws_opt(),
        }
        if entry.kind == "points":
            rows = list(range(min(entry.count, MAX_PREVIEW)))
            out["preview"] = [{"row": r, "png": self.data_url(p)} for r, p in zip(rows, self.render(entry.z[rows]))]
        return out

    def _ws_opt(self) -> str:
        return self._ws_text

    # ---- browse

    def tiles(self, req: dict) -> dict:
        req = _obj(req, "the request")
        psi = _float(req.get("psi", 1.0), "psi", 0.0, MAX_PSI)
        if "seeds" in req:
            seeds = _seeds(req["seeds"], "seeds", MAX_TILES)
        else:
            start = _seed(req.get("start", 0), "start")
            count = _int(req.get("count", 24), "count", 1, MAX_TILES)
            seeds = list(range(start, min(start + count, MAX_SEED + 1)))
        if not seeds:
            raise RequestError("no seeds asked for")
        pngs = self.render(self.seed_latents(seeds, psi))
        psi_opt = "" if psi == 1.0 else f" --psi {_fmt(psi)}"
        return {
            "psi": psi,
            "tiles": [{"seed": s, "png": self.data_url(p)} for s, p in zip(seeds, pngs)],
            "command": f"latentctl sample{self._sample_opts} --seeds {format_seeds(seeds)}{psi_opt} --precision fp32",
        }

    # ---- piles and directions

    def _piles(self, req: dict) -> tuple[list[int], list[int], float, str]:
        pos = _seeds(req.get("pos", []), "the 'has it' pile", MAX_PILE)
        neg = _seeds(req.get("neg", []), "the 'doesn't' pile", MAX_PILE)
        both = set(pos) & set(neg)
        if both:
            raise RequestError(f"seed {min(both)} is in both piles; a sample goes into one pile only")
        psi = _float(req.get("psi", 1.0), "psi", 0.0, MAX_PSI)
        method = req.get("method", "mean")
        if method not in METHODS:
            raise RequestError(f"method must be mean or boundary, got {method!r}"[:200])
        return pos, neg, psi, method

    def check(self, req: dict) -> dict:
        """How far the piles are from a usable direction: picks still needed and held-out accuracy."""
        req = _obj(req, "the request")
        pos, neg, psi, method = self._piles(req)
        out: dict[str, Any] = {
            "n_pos": len(pos),
            "n_neg": len(neg),
            "need_pos": max(MIN_PICKS - len(pos), 0),
            "need_neg": max(MIN_PICKS - len(neg), 0),
            "loo_accuracy": None,
            "summary": None,
            "held_out": None,
            "warnings": [],
        }
        if pos and neg:
            p, n = self.seed_latents(pos, psi), self.seed_latents(neg, psi)
            try:
                built = L.build_direction(p, n, method, permutations=CHECK_PERMUTATIONS)
                out["summary"] = built.report.summary()
                out["loo_accuracy"] = built.held_out.accuracy
                out["held_out"] = built.held_out.summary()
                out["warnings"] = list(built.held_out.warnings)
            except LatentctlError as e:
                out["summary"] = str(e)
        return out

    def pile(self, req: dict) -> dict:
        """Save one pile as the entry `sample --seeds ... --save NAME` writes."""
        req = _obj(req, "the request")
        name = self.name(req.get("name"))
        seeds = _seeds(req.get("seeds"), "seeds", MAX_PILE)
        if not seeds:
            raise RequestError("the pile is empty")
        psi = _float(req.get("psi", 1.0), "psi", 0.0, MAX_PSI)
        force = _bool(req.get("force", False), "force")
        path = self._save(name, self._pile_entry(seeds, psi), force)
        return {"name": name, "path": str(path), "count": len(seeds), "command": self._pile_command(name, seeds, psi)}

    def _pile_entry(self, seeds: list[int], psi: float) -> LatentEntry:
        # The same entry `sample --save` writes (its meta included), so the CLI treats both alike.
        return self.session.entry(
            self.seed_latents(seeds, psi), seeds=seeds, meta={"command": "sample", "truncation": psi, "via": "explore"}
        )

    def _pile_command(self, name: str, seeds: list[int], psi: float) -> str:
        psi_opt = "" if psi == 1.0 else f" --psi {_fmt(psi)}"
        return f"latentctl sample{self._sample_opts} --seeds {format_seeds(seeds)}{psi_opt} --save {name} --no-pngs"

    def direction(self, req: dict) -> dict:
        """Save both piles and the direction between them, as `attr-vector --pos P --neg N` would."""
        req = _obj(req, "the request")
        pos, neg, psi, method = self._piles(req)
        if not pos or not neg:
            raise RequestError("put at least one sample in each pile first")
        name = self.name(req.get("name"), "the direction's name")
        pos_name = self.name(req.get("pos_name", f"{name}-yes"), "the 'has it' pile's name")
        neg_name = self.name(req.get("neg_name", f"{name}-no"), "the 'doesn't' pile's name")
        if len({name, pos_name, neg_name}) < 3:
            raise RequestError("the direction and its two piles need three different names")
        unit = _bool(req.get("unit", False), "unit")
        force = _bool(req.get("force", False), "force")
        ortho_in = req.get("orthogonal_to", [])
        if not isinstance(ortho_in, list) or len(ortho_in) > MAX_DIRECTIONS:
            raise RequestError(f"orthogonal_to must be a list of at most {MAX_DIRECTIONS} direction names")
        others = [self.load(o, "orthogonal_to") for o in ortho_in]
        if not force:
            for n in (pos_name, neg_name, name):
                if self.store.exists(n):
                    raise Conflict(f"the store already has an entry {n!r}; tick 'replace' or choose another name")

        pe, ne = self._pile_entry(pos, psi), self._pile_entry(neg, psi)
        # attr-vector's own library functions, so its command gives the same vector (and the same
        # held-out numbers: the same default relabellings and seed) and the same overlaps.
        removed = [o.z[0] if o.count == 1 else o.z.mean(0) for _, o in others]
        built = L.build_direction(pe.z, ne.z, method, removed, unit)
        ortho_names = [nm for nm, _ in others]
        entry, overlaps = self._direction_entry(built, [name, pos_name, neg_name], ortho_names)
        self._save(pos_name, pe, force)
        self._save(neg_name, ne, force)
        path = self._save(name, entry, force)
        ortho_opt = "".join(f" --orthogonal-to {o}" for o in ortho_names)
        commands = [
            self._pile_command(pos_name, pos, psi),
            self._pile_command(neg_name, neg, psi),
            f"latentctl attr-vector{self._opts} --pos {pos_name} --neg {neg_name} --method {method}{ortho_opt}"
            + (" --unit" if unit else "")
            + f" --save {name}",
        ]
        return {
            "name": name,
            "path": str(path),
            "pos_name": pos_name,
            "neg_name": neg_name,
            **self._direction_report(built, len(pos), len(neg)),
            "commands": commands,
            **_overlap_report(overlaps, commands[-1]),
        }

    def _direction_entry(
        self, built: L.BuiltDirection, names: list[str], ortho_names: list[str]
    ) -> tuple[LatentEntry, L.Overlaps]:
        """The entry `attr-vector` would save for the direction ``names[0]`` made from the piles
        ``names[1:]``, and its overlaps with the store's other directions."""
        info = self.session.info
        # The three entries about to be replaced are not other directions.
        overlaps = store_overlaps(
            self.store,
            built.vector,
            space=info.model.latent_space,
            model_id=info.model_id,
            run_id=info.run_id,
            skip=names,
            own_space=info.model.own_space,
        )
        entry = LatentEntry(
            z=built.vector[None, :],
            kind="direction",
            space=info.model.latent_space,  # as attr-vector records it: a W direction is refused in W+
            model_id=info.model_id,
            run_id=info.run_id,
            meta={
                "command": "attr-vector",
                "via": "explore",
                "pos": [names[1]],
                "neg": [names[2]],
                "orthogonal_to": ortho_names,
                "norm": float(np.linalg.norm(built.vector)),
                **built.meta,
                **overlap_meta(overlaps),
            },
        )
        return entry, overlaps

    @staticmethod
    def _direction_report(built: L.BuiltDirection, n_pos: int, n_neg: int) -> dict:
        report, gap = built.report, built.report.gap_in_std
        return {
            "report": report.summary(),
            "accuracy": report.accuracy,
            "gap_in_std": None if math.isinf(gap) else gap,
            "loo_accuracy": built.held_out.accuracy,
            "held_out": built.held_out.summary(),
            "warnings": list(built.held_out.warnings),
            "scale": L.scale_text(built.meta, built.meta["length"]),
            "norm": float(np.linalg.norm(built.vector)),
            "need_pos": max(MIN_PICKS - n_pos, 0),
            "need_neg": max(MIN_PICKS - n_neg, 0),
        }

    # ---- steering

    def base(self, value: Any, psi: float, *, allow_mean: bool = True) -> Base:
        """A starting latent: {"seed": 42} (at truncation ``psi``), {"entry": NAME, "row": 0} or
        {"entry": NAME, "mean": true}."""
        b = _obj(value, "base")
        if "seed" in b:
            seed = _seed(b["seed"])
            z = self.seed_latents([seed], psi)
            if psi == 1.0:
                return Base(z, f"seeds:{seed}", seed=seed)
            # No command takes a truncated seed directly; `sample --psi --save` stores it first.
            name = f"seed{seed}-psi{_fmt(psi)}"
            prelude = (
                f"latentctl sample{self._sample_opts} --seeds {seed} --psi {_fmt(psi)} --save {name} "
                "--no-pngs --no-grid --force"
            )
            return Base(z, name, seed=seed, psi=psi, prelude=prelude)
        if "entry" not in b:
            raise RequestError("base must name a seed or a store entry")
        name, entry = self.load(b["entry"], "base entry")
        warning = self._warning(name, entry)
        if b.get("mean", False) is True:
            if not allow_mean:
                raise RequestError("an interpolation end must be one latent, not a mean")
            # `apply --mean` averages exactly so: float32 rows, numpy's mean.
            return Base(entry.z.mean(axis=0, keepdims=True), name, mean=True, warning=warning)
        row = _int(b.get("row", 0), "row", 0, entry.count - 1)
        spec = name if entry.count == 1 else f"{name}@{row}"
        seed = None if entry.seeds is None else int(entry.seeds[row])
        return Base(entry.z[row : row + 1], spec, warning=warning, entry_seed=seed)

    def _directions(self, value: Any) -> list[tuple[str, float, np.ndarray]]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > MAX_DIRECTIONS:
            raise RequestError(f"directions must be a list of at most {MAX_DIRECTIONS}")
        out = []
        for i, d in enumerate(value):
            d = _obj(d, f"directions[{i}]")
            name, entry = self.load(d.get("name"), f"directions[{i}]")
            if entry.kind != "direction":
                raise RequestError(f"{name!r} holds {entry.count} point(s), not a direction")
            out.append((name, _float(d.get("weight", 1.0), f"the weight of {name}", -MAX_WEIGHT, MAX_WEIGHT), entry.z))
        return out

    @staticmethod
    def _combined(dim: int, dirs: list[tuple[str, float, np.ndarray]]) -> np.ndarray:
        # `apply`'s sum, operation for operation (float32 accumulator, each entry's row mean).
        combined = np.zeros(dim, dtype=np.float32)
        for _, weight, z in dirs:
            combined += weight * z.mean(axis=0)
        return combined

    def _apply_command(self, base: Base, dirs: list, scales: str | None) -> str:
        adds = "".join(f" --add {n}={_fmt(w)}" for n, w, _ in dirs)
        cmd = f"latentctl apply {shlex.quote(base.spec)}" + (" --mean" if base.mean else "") + adds
        cmd += (f" --scales {scales}" if scales else "") + f" --precision fp32{self._opts}"
        return cmd if base.prelude is None else f"{base.prelude} && {cmd}"

    def view(self, req: dict) -> tuple[np.ndarray, str | None, str | None, Base | None, list]:
        """(latent (1, d), command, which of its images, base, directions) for a steer or interp view."""
        req = _obj(req, "the request")
        psi = _float(req.get("psi", 1.0), "psi", 0.0, MAX_PSI)
        if req.get("kind", "steer") == "interp":
            a = self.base(req.get("a"), psi, allow_mean=False)
            b = self.base(req.get("b"), psi, allow_mean=False)
            steps = _int(req.get("steps", 11), "steps", 2, MAX_STEPS)
            index = _int(req.get("index", 0), "index", 0, steps - 1)
            method = req.get("method", "lerp")
            if method not in L.INTERPOLATION_METHODS:
                raise RequestError(f"method must be lerp or slerp, got {method!r}"[:200])
            # `interp` builds its path from the same concatenated rows and takes frame `index`.
            path = L.interpolate_path(np.concatenate([a.z, b.z]), steps, method)
            preludes = list(dict.fromkeys(p for p in (a.prelude, b.prelude) if p))
            cmd = (
                f"latentctl interp {shlex.quote(a.spec)} {shlex.quote(b.spec)} --frames {steps} --method {method} "
                f"--precision fp32{self._opts}"
            )
            return path[index : index + 1], " && ".join(preludes + [cmd]), f"frame{index:03d}.png", None, []
        base = self.base(req.get("base"), psi)
        dirs = self._directions(req.get("directions"))
        if not dirs:
            if base.seed is not None:
                psi_opt = "" if psi == 1.0 else f" --psi {_fmt(psi)}"
                return (
                    base.z,
                    f"latentctl sample{self._sample_opts} --seeds {base.seed}{psi_opt} --precision fp32",
                    f"seed{base.seed:04d}.png",
                    base,
                    dirs,
                )
            if not base.mean:
                # interp pins both ends exactly, so a walk from a latent to itself renders it unchanged.
                return (
                    base.z,
                    f"latentctl interp {shlex.quote(base.spec)} {shlex.quote(base.spec)} --frames 2 "
                    f"--precision fp32{self._opts}",
                    "frame000.png",
                    base,
                    dirs,
                )
            return base.z, None, None, base, dirs  # `apply --mean` needs a direction to add
        z = L.strength_sweep(base.z, self._combined(self.dim, dirs), [1.0])[:, 0]
        return z, self._apply_command(base, dirs, None), _apply_image(base, 1.0), base, dirs

    def steer(self, req: dict) -> dict:
        """The view's image; ``"preview": true`` asks for the preview size while a slider moves.
        The reply says which it is: ``preview`` and the image's ``size``."""
        req = _obj(req, "the request")
        preview = self._preview(req)
        z, command, image, base, _ = self.view(req)
        warning = base.warning if base is not None else None
        return {
            "png": self.data_url(self.render(z, preview=preview)[0]),
            "preview": preview,
            "size": self.preview_size if preview else self.session.info.model.image_size,
            "command": command,
            "image": image,
            "warning": warning,
            "norm": float(np.linalg.norm(z)),
        }

    def strip(self, req: dict) -> dict:
        """The view at several strengths of its combined directions: `apply --scales`."""
        req = _obj(req, "the request")
        preview = self._preview(req)
        psi = _float(req.get("psi", 1.0), "psi", 0.0, MAX_PSI)
        base = self.base(req.get("base"), psi)
        dirs = self._directions(req.get("directions"))
        if not dirs:
            raise RequestError("a strength strip needs at least one direction")
        raw = req.get("scales", [-2, -1, 0, 1, 2])
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SCALES:
            raise RequestError(f"scales must be a list of 1 to {MAX_SCALES} numbers")
        scales = [_float(s, "a scale", -MAX_WEIGHT, MAX_WEIGHT) for s in raw]
        grid = L.strength_sweep(base.z, self._combined(self.dim, dirs), scales)[0]
        pngs = self.render(grid, preview=preview)
        return {
            "preview": preview,
            "size": self.preview_size if preview else self.session.info.model.image_size,
            "tiles": [
                {"scale": s, "png": self.data_url(p), "image": _apply_image(base, s)} for s, p in zip(scales, pngs)
            ],
            "command": self._apply_command(base, dirs, ",".join(_fmt(s) for s in scales)),
        }

    def save(self, req: dict) -> dict:
        """Save the latent of a view to the store."""
        req = _obj(req, "the request")
        name = self.name(req.get("name"))
        force = _bool(req.get("force", False), "force")
        z, command, _, base, dirs = self.view(req.get("view"))
        seeds = [base.seed] if base is not None and base.seed is not None and not dirs else None
        entry = self.session.entry(
            z,
            seeds=seeds,
            meta={"command": "explore", "reproduce": command, "add": [f"{n}={_fmt(w)}" for n, w, _ in dirs]},
        )
        path = self._save(name, entry, force)
        return {"name": name, "path": str(path), "command": f"latentctl latents show {name}{self._ws_opt()}"}
