"""A quality number for a generator: Fréchet distance, KID and precision/recall against real images.

Library code: no prints, no CLI imports. Everything is computed offline.

Feature space (``kind="builtin"``)
----------------------------------
Scores are only as meaningful as the features they compare. Without downloaded weights the choice
is between statistics of pixels and a fixed network with random weights; both were measured on the
synthetic faces (32 px, 500 vs 500 images, FD as a multiple of the real-vs-real floor):

=====================  ==========  ======  ======  =====  ========  =============  ==============
features               dims        blur    blur    blur   uniform   one image      +20 brightness
                                   0.5 px  1 px    2 px   noise     repeated
=====================  ==========  ======  ======  =====  ========  =============  ==============
pixels, 8x8 area mean  192         1.0     1.7     7.2    246       167            17.8
random conv + pixels   704         1.4     3.4     9.5    212       130            12.2
random conv only       512         3.7     14.3    31.3   345       140            1.5
built-in (conv + 1/2   560         3.0     10.8    23.3   293       126            5.0
4x4 colour)
=====================  ==========  ======  ======  =====  ========  =============  ==============

Pixel means do not see the blur a GAN's samples are most often wrong by (0.5 px blur reads as
perfect) while a random network's rectified edge responses do; a coarse colour layout is added to
the network, at half weight, because the network alone (its first filters have zero mean, so they
respond to edges, not to flat colour) hardly sees a colour cast. Random-weight convolutional
features are a known, reasonable offline stand-in for a trained network's (they separate texture,
sharpness and diversity; they know nothing of what a face is, so they do not rank semantic
mistakes the way Inception does).

The extractor: images are resized to ``FEATURE_SIZE`` (64 px; box-averaged down, pixel-repeated
up) so that runs at different image sizes are scored in one space; three 3x3 stride-2 convolutions
(3->32->64->128 channels, He-scaled Gaussian weights from ``numpy.random.RandomState(0)``, which
gives the same numbers on every platform), ReLU after each; features are the mean activation of
each channel over a 2x2 grid (stages 1 and 2) or the whole image (stage 3), plus the 4x4 colour
means: 560 numbers per image. Convolutions run in float32 (fast; their rounding, ~1e-7 relative,
is far below any difference a score can show); every statistic after them is float64.

Feature space (``kind="inception"``)
------------------------------------
Standard FID: the 2048 pool features of pytorch-fid's Inception-v3 (``latentctl.quality.inception``), from
the user's own copy of its weights (``feature_space("inception", inception_weights=FILE)``; nothing
is downloaded). Images go in as pytorch-fid feeds them: RGB in [0, 1] (grey repeated, alpha
dropped), resized to 299 px bilinearly. Scores are then comparable with pytorch-fid's on the same
images; both sides are at the model's resolution, so a 32 px model is not compared with the
folder's full-size pictures.

Precision/recall follow Kynkäänniemi et al. 2019 (k-NN balls, k=3); KID is the unbiased MMD² of
Bińkowski et al. 2018 with the kernel (x.y/d + 1)^3, averaged over subsets.

The floor: the real images are split (seeded) into a reference half and a held-out half. The
generated images are compared with the reference half and so is the held-out half: a generator as
good as the data itself scores about the floor (exactly in expectation when ``n`` equals the held-out
count; FD's small-sample bias makes the floor a little higher when fewer real images are held out
than images generated).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import DataError, UsageError

FEATURE_SIZE = 64  # every image is scored at this resolution, whatever the model's size
FEATURE_KINDS = ("builtin", "inception")
K_NEIGHBOURS = 3  # precision/recall's k (Kynkäänniemi et al. 2019 use 3)
MIN_IMAGES = K_NEIGHBOURS + 1  # a k-th neighbour other than itself needs k + 1 points
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
_CHANNELS = (3, 32, 64, 128)
_POOLS = (2, 2, 1)  # grid each stage's activations are averaged over
_COLOUR_GRID = 4
_COLOUR_WEIGHT = 0.5
_WEIGHT_SEED = 0
_BATCH = 256
# Gram matrices of at most this many rows each are held whole for KID (3 x 72 MB); larger sets
# compute each subset's kernels on their own.
_KID_FULL_GRAM = 3000

_INCEPTION_BATCH = 32  # 299 px activations: about 180 MB per early layer at this batch


@dataclass(frozen=True)
class FeatureSpace:
    """Where images are compared: the built-in random network, or Inception-v3 from a weights file."""

    name: str  # one of FEATURE_KINDS
    dim: int  # numbers per image
    size: int  # the resolution images are compared at
    weights: str | None = None  # inception: the checked safetensors file
    device: str = "cpu"  # inception: where the network runs (the builtin one is small: always CPU)


def feature_space(kind: str = "builtin", *, inception_weights: Any = None, device: Any = "cpu") -> FeatureSpace:
    """The feature space ``kind`` names. For ``"inception"`` the weights file is read and checked
    here (one-line ``DataError`` if it is not pt_inception-2015-12-05), so a bad file fails before
    any image is read."""
    if kind not in FEATURE_KINDS:
        raise UsageError(f"--features {kind!r}: choose {' or '.join(FEATURE_KINDS)}")
    if kind == "builtin":
        if inception_weights is not None:
            raise UsageError("--inception-weights is only used with --features inception")
        return FeatureSpace(
            "builtin", 3 * _COLOUR_GRID**2 + sum(c * p * p for c, p in zip(_CHANNELS[1:], _POOLS)), FEATURE_SIZE
        )
    if inception_weights is None:
        raise UsageError(
            "--features inception needs --inception-weights FILE (pt_inception-2015-12-05 as .safetensors; "
            "see docs/quality.md), or use --features builtin"
        )
    from latentctl.quality import inception

    path = str(Path(inception_weights).expanduser().resolve())
    inception.load(path)  # reads and checks the file once; cached for the features that follow
    return FeatureSpace("inception", inception.FEATURE_DIM, inception.INPUT_SIZE, path, str(device))


def _space(kind: str | FeatureSpace) -> FeatureSpace:
    # A bare "inception" (no weights) or an unknown name gets feature_space's clear error.
    return kind if isinstance(kind, FeatureSpace) else feature_space(kind)


@dataclass(frozen=True)
class Metrics:
    fd: float  # Fréchet distance; 0 = same mean and covariance; lower is better
    kid: float  # unbiased MMD² (mean over subsets); about 0 for the same distribution
    kid_std: float  # spread of the subset estimates
    precision: float  # share of generated images inside the real manifold (fidelity)
    recall: float  # share of real images inside the generated manifold (coverage)


@dataclass(frozen=True)
class ScoreReport:
    score: Metrics  # generated vs the reference half of the real images
    floor: Metrics  # held-out real half vs the same reference half
    n_generated: int
    n_reference: int
    n_holdout: int
    features: str
    feature_dim: int
    feature_size: int = FEATURE_SIZE
    # Mean HSV saturation (0..1) of the generated and of the reference images; None for grey ones.
    # Washed-out colours hardly move FD (its colour layout is a small share of the features), so
    # they are reported beside it.
    saturation: float | None = None
    saturation_real: float | None = None

    @property
    def saturation_share(self) -> float | None:
        """The samples' saturation as a share of the real images' (1.0: as colourful)."""
        if self.saturation is None or not self.saturation_real:
            return None
        return self.saturation / self.saturation_real

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Reference:
    """Features of the real images, split and summarised once; the training loop keeps one."""

    features: np.ndarray  # (n_reference, d) float64
    holdout: np.ndarray  # (n_holdout, d) float64
    floor: Metrics
    space: FeatureSpace  # the space the features are in
    saturation: float | None = None  # the reference half's mean HSV saturation; None for grey images

    @property
    def kind(self) -> str:
        return self.space.name


# ---- arithmetic ---------------------------------------------------------------------------------


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance, float64."""
    f = np.asarray(feats, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])


def _eigh(s: np.ndarray, vectors: bool) -> Any:
    """Symmetric eigendecomposition in float64 on one thread: multi-threaded LAPACK eigensolvers
    (numpy's OpenBLAS and torch's alike) stall when the cores are busy; a 560x560 matrix took 4-8 s
    instead of 0.06 s on a loaded 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = torch.from_numpy(np.ascontiguousarray((s + s.T) / 2, dtype=np.float64))
        if vectors:
            w, v = torch.linalg.eigh(t)
            return w.numpy(), v.numpy()
        return torch.linalg.eigvalsh(t).numpy()
    finally:
        torch.set_num_threads(threads)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = _eigh(s, vectors=True)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1 - mu2||² + tr(s1) + tr(s2) - 2 tr((s1 s2)^½) for two Gaussians.

    tr((s1 s2)^½) is computed as the sum of square roots of the eigenvalues of the symmetric
    positive semi-definite r s2 r, r = s1^½ (it has the eigenvalues of s1 s2): two symmetric
    eigendecompositions in float64, no general (non-symmetric) square root, so no complex parts and
    no scipy. Rounding can make tiny eigenvalues negative; they are clipped at 0 and the result at 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    r = _psd_sqrt(s1)
    m = r @ s2 @ r
    eig = _eigh(m, vectors=False)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return max(0.0, float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * tr_covmean)


def _gram(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(
    x: np.ndarray, y: np.ndarray, *, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance in any feature space: (mean, std) over ``subsets`` random subsets of
    ``min(subset_size, half the smaller set)`` rows each (at least 2; half, so that the subsets
    differ and ``std`` says something; the mean's expectation does not depend on the size), the unbiased MMD² with k(a, b) = (a.b/d + 1)^3.
    Each subset's estimate is unbiased, so for two samples of one distribution the mean is about 0
    (and can be slightly negative)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m = min(subset_size, max(2, min(len(x), len(y)) // 2))
    if min(len(x), len(y)) < 2:
        raise UsageError(f"KID needs at least 2 images on each side, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    full = max(len(x), len(y)) <= _KID_FULL_GRAM
    if full:
        kxx, kyy, kxy = _gram(x, x), _gram(y, y), _gram(x, y)
    est = np.empty(subsets)
    for i in range(subsets):
        ix = rng.choice(len(x), m, replace=False)
        iy = rng.choice(len(y), m, replace=False)
        if full:
            a, b, c = kxx[np.ix_(ix, ix)], kyy[np.ix_(iy, iy)], kxy[np.ix_(ix, iy)]
        else:
            a, b, c = _gram(x[ix], x[ix]), _gram(y[iy], y[iy]), _gram(x[ix], y[iy])
        est[i] = ((a.sum() - np.trace(a)) + (b.sum() - np.trace(b))) / (m * (m - 1)) - 2.0 * c.mean()
    return float(est.mean()), float(est.std())


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row."""
    out = np.empty(len(x))
    for s in range(0, len(x), 1024):
        d = _sq_dists(x[s : s + 1024], x)
        rows = np.arange(len(d))
        d[rows, rows + s] = np.inf  # a point is not its own neighbour; an exact duplicate is
        out[s : s + len(d)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    inside = 0
    for s in range(0, len(points), 1024):
        inside += int((_sq_dists(points[s : s + 1024], centres) <= radii[None, :]).any(axis=1).sum())
    return inside / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = K_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of
    balls reaching every point's k-th nearest neighbour in that set; precision is the share of
    ``fake`` inside the real manifold, recall the share of ``real`` inside the generated one."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise UsageError(
            f"precision/recall need more than {k} images on each side, got {len(real)} real and {len(fake)} generated"
        )
    return _coverage(fake, real, _kth_radius(real, k)), _coverage(real, fake, _kth_radius(fake, k))


def metrics(fake_feats: np.ndarray, ref_feats: np.ndarray, *, seed: int = 0) -> Metrics:
    """All four numbers for two feature sets (generated or held-out, then reference)."""
    mu1, s1 = statistics(fake_feats)
    mu2, s2 = statistics(ref_feats)
    k_mean, k_std = kid(fake_feats, ref_feats, seed=seed)
    p, r = precision_recall(ref_feats, fake_feats)
    return Metrics(frechet_distance(mu1, s1, mu2, s2), k_mean, k_std, p, r)


# ---- features -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _builtin_weights() -> tuple[Any, ...]:
    import torch

    rs = np.random.RandomState(_WEIGHT_SEED)  # legacy generator: the same stream on every platform
    out = []
    for i, (cin, cout) in enumerate(zip(_CHANNELS[:-1], _CHANNELS[1:])):
        w = rs.randn(cout, cin, 3, 3)
        if i == 0:
            w -= w.mean(axis=(1, 2, 3), keepdims=True)  # edge detectors: blind to flat colour
        w *= np.sqrt(2.0 / (cin * 9))  # He scale: activations stay O(1) through the ReLUs
        out.append(torch.from_numpy(w.astype(np.float32)))
    return tuple(out)


def _check_images(images: Any, what: str = "images") -> np.ndarray:
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] not in (1, 3, 4)
    ):
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", type(images).__name__)
        raise DataError(f"{what} must be a (N, H, W, 3) uint8 array, got shape {shape} of {dtype}")
    return images


def _composite(images: np.ndarray) -> np.ndarray:
    """RGBA: what a person sees, the colours over a mid-grey ground, so transparency counts too."""
    if images.shape[-1] != 4:
        return images
    rgb, a = images[..., :3].astype(np.float32), images[..., 3:].astype(np.float32) / 255
    return np.round(rgb * a + 128 * (1 - a)).astype(np.uint8)


def _resize(t: Any, size: int) -> Any:
    import torch.nn.functional as F

    h, w = t.shape[-2:]
    if (h, w) == (size, size):
        return t
    if h >= size and w >= size:
        return F.interpolate(t, size=(size, size), mode="area")  # box average: no aliasing
    if size % h == 0 and size % w == 0:
        return F.interpolate(t, size=(size, size), mode="nearest")  # exact pixel repetition
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)


def _builtin(batch: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(_composite(batch))).permute(0, 3, 1, 2).float()
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        t = _resize(t / 127.5 - 1.0, FEATURE_SIZE)
        parts = [F.adaptive_avg_pool2d(t, _COLOUR_GRID).flatten(1) * _COLOUR_WEIGHT]
        h = t
        for w, pool in zip(_builtin_weights(), _POOLS):
            h = F.relu(F.conv2d(h, w, stride=2, padding=1))
            parts.append(F.adaptive_avg_pool2d(h, pool).flatten(1))
        return torch.cat(parts, 1).numpy().astype(np.float64)


def _inception(batch: np.ndarray, space: FeatureSpace) -> np.ndarray:
    """pytorch-fid's input path: RGB in [0, 1] (grey repeated, alpha dropped as PIL's
    ``convert("RGB")`` does), float32 through the network, float64 out."""
    import torch

    from latentctl.quality import inception

    net = inception.load(space.weights, space.device)
    # On CUDA, cuDNN may run float32 convolutions in TF32 (10-bit mantissa): FID's numbers would
    # drift from the CPU's and pytorch-fid's. Full float32 here, whatever the process allows.
    strict = torch.backends.cudnn.flags(enabled=True, allow_tf32=False) if space.device.startswith("cuda") else None
    with torch.inference_mode(), strict or contextlib.nullcontext():
        t = torch.from_numpy(np.ascontiguousarray(batch[..., :3])).to(space.device)
        # Contiguous NCHW, as pytorch-fid's ToTensor gives: one memory layout for grey and colour
        # alike, so the convolutions pick the same kernels and round the same way.
        t = t.permute(0, 3, 1, 2).float().div(255).expand(-1, 3, -1, -1).contiguous()
        return net(t).double().cpu().numpy()


def feature_dim(kind: str | FeatureSpace = "builtin") -> int:
    return _space(kind).dim


def features(
    images_uint8: np.ndarray,
    kind: str | FeatureSpace = "builtin",
    *,
    batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(N, H, W, C) uint8 images of any size -> (N, d) float64 features, computed batch by batch;
    ``on_batch(k)`` is called after each batch of k images (Inception takes ~0.1 s an image on CPU)."""
    space = _space(kind)
    images = _check_images(images_uint8)
    if len(images) == 0:
        return np.zeros((0, space.dim))
    inception = space.name == "inception"
    step = batch_size or (_INCEPTION_BATCH if inception else _BATCH)
    out = []
    for s in range(0, len(images), step):
        batch = images[s : s + step]
        out.append(_inception(batch, space) if inception else _builtin(batch))
        if on_batch is not None:
            on_batch(len(batch))
    return np.concatenate(out)


# ---- high level ---------------------------------------------------------------------------------


def half_size(n_real: int, n: int | None = None) -> int:
    """How many real images ``reference`` puts in each half: all it has, or ``n`` (at least 4)."""
    return n_real // 2 if n is None else min(n_real // 2, max(n, MIN_IMAGES))


def reference(
    real_uint8: np.ndarray,
    n: int | None = None,
    *,
    kind: str | FeatureSpace = "builtin",
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Reference:
    """Split the real images (a seeded shuffle) into a reference and a held-out half, at most ``n``
    each, and compute the floor. Build it once and pass it to ``score_images``/``score_generator``."""
    space = _space(kind)
    real = _check_images(real_uint8, "real images")
    if len(real) < 2 * MIN_IMAGES:
        raise DataError(
            f"scoring needs at least {2 * MIN_IMAGES} real images (two halves of {MIN_IMAGES}), got {len(real)}"
        )
    order = np.random.default_rng(seed).permutation(len(real))
    half = half_size(len(real), n)
    ref_idx, hold_idx = np.sort(order[:half]), np.sort(order[half : 2 * half])
    ref = features(real[ref_idx], space, on_batch=on_batch)
    hold = features(real[hold_idx], space, on_batch=on_batch)
    return Reference(ref, hold, metrics(hold, ref, seed=seed), space, saturation(real[ref_idx]))


def saturation(images: np.ndarray) -> float | None:
    """Mean HSV saturation, 0..1, of uint8 (N, H, W, C) pictures: (max - min) / max of R, G and B
    per pixel (0 for black); None for grey pictures, which have no colour to lose."""
    if images.shape[-1] < 3:
        return None
    rgb = _composite(images)[..., :3]  # RGBA as the features see it: over a mid-grey ground
    high, low = rgb.max(axis=-1).astype(np.float32), rgb.min(axis=-1).astype(np.float32)
    return float(np.where(high > 0, (high - low) / np.maximum(high, 1), 0).mean(dtype=np.float64))


def score_features(
    fake_feats: np.ndarray, ref: Reference, *, seed: int = 0, fake_saturation: float | None = None
) -> ScoreReport:
    if len(fake_feats) < MIN_IMAGES:
        raise UsageError(f"scoring needs at least {MIN_IMAGES} generated images, got {len(fake_feats)}")
    return ScoreReport(
        score=metrics(fake_feats, ref.features, seed=seed),
        floor=ref.floor,
        n_generated=len(fake_feats),
        n_reference=len(ref.features),
        n_holdout=len(ref.holdout),
        features=ref.kind,
        feature_dim=ref.features.shape[1],
        feature_size=ref.space.size,
        saturation=fake_saturation if ref.saturation is not None else None,
        saturation_real=ref.saturation if fake_saturation is not None else None,
    )


def score_images(
    fake_uint8: np.ndarray, real_uint8: np.ndarray | Reference, *, kind: str | FeatureSpace = "builtin", seed: int = 0
) -> ScoreReport:
    """Score generated images against real ones (uint8 arrays, any sizes) or a prepared ``Reference``."""
    fake = _check_images(fake_uint8, "generated images")
    ref = real_uint8 if isinstance(real_uint8, Reference) else reference(real_uint8, len(fake), kind=kind, seed=seed)
    return score_features(features(fake, ref.space), ref, seed=seed, fake_saturation=saturation(fake))


def score_batches(
    batches: Iterable[np.ndarray],
    ref: Reference,
    *,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> ScoreReport:
    """Score generated images that arrive in batches (memory stays that of one batch of images)."""
    feats, colour, count = [], 0.0, 0
    for batch in batches:
        batch = _check_images(batch, "generated images")
        feats.append(features(batch, ref.space, on_batch=on_batch))
        sat = saturation(batch)
        colour, count = (colour + sat * len(batch), count + len(batch)) if sat is not None else (colour, count)
    fake_feats = np.concatenate(feats) if feats else np.zeros((0, ref.features.shape[1]))
    return score_features(fake_feats, ref, seed=seed, fake_saturation=colour / count if count else None)


def score_generator(
    generator: Any,
    real_images: np.ndarray | Reference,
    n: int = 1000,
    device: Any = None,
    precision: str = "fp32",
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    *,
    kind: str | FeatureSpace = "builtin",
) -> ScoreReport:
    """Generate seeds 0..n-1 (``models.interface.seed_latents``, so the same images every call for the same
    weights) and score them in ``kind``'s feature space (a ``Reference`` brings its own). For calls
    every few epochs pass a ``Reference`` built once: the real images' features are then not
    recomputed. The generator's train/eval mode is restored."""
    import torch

    from latentctl.models.interface import seed_latents
    from latentctl.space.generate import generate_batches

    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_IMAGES:
        raise UsageError(
            f"-n must be at least {MIN_IMAGES} (precision/recall use {K_NEIGHBOURS} nearest neighbours), got {n!r}"
        )
    ref = real_images if isinstance(real_images, Reference) else reference(real_images, n, kind=kind)
    if device is None:
        device = next(generator.parameters()).device
    z = seed_latents(generator, list(range(n)))
    batches = generate_batches(generator, z, device=torch.device(device), batch_size=batch_size, precision=precision)
    return score_batches(batches, ref, on_batch=on_batch)
