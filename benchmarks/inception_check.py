"""Hand-run check: latentctl's Inception-v3 graph against pytorch-fid's own, on the same weights.

The real pt_inception weights cannot be downloaded here, so both graphs get the same *random*
weights: pytorch-fid's model is built as it always is (torchvision's Inception-v3 with the FID
blocks swapped in), its batch-norm statistics are set by a pass over random images (so the
activations stay O(1) through 94 layers, as trained weights keep them), its state dict is saved as
safetensors, and latentctl reads that file through the same loader `score --inception-weights`
uses. Any structural difference (a pool with padding counted, a branch order, a kernel's
orientation) shows as features that differ far above float32 rounding.

Needs, in a separate environment (not latentctl's dependencies):

    pip install torch==2.13.0 numpy pillow scipy
    pip install --no-deps pytorch-fid==0.3.0 "torchvision==0.28.*"
    python benchmarks/inception_check.py            # compare, print the worst difference
    python benchmarks/inception_check.py --golden   # also rewrite tests/data/inception_golden.npz

(torchvision's compiled operators need not load: only its model definitions are used.)

The second part is what CI keeps: weights drawn from numpy's legacy ``RandomState`` (the same
numbers on every platform, no torchvision needed), two fixed images, and pytorch-fid's features of
them saved in ``tests/data/inception_golden.npz``; ``tests/test_inception.py`` rebuilds the weights
and checks latentctl's graph against those features on whatever CPU runs the suite.
"""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "inception_golden.npz"


def seeded_state(seed: int = 0) -> dict:
    """Weights for every tensor the graph needs, He-scaled so activations stay O(1) through the
    layers, with batch-norm statistics away from 0/1 so that using them wrongly shows."""
    import numpy as np
    import torch

    from latentctl.quality import inception

    rs = np.random.RandomState(seed)
    out = {}
    for k, shape in sorted(inception.expected_shapes().items()):
        if k.endswith("conv.weight"):
            v = rs.randn(*shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif k.endswith(("bn.weight", "running_var")):
            v = rs.uniform(0.5, 1.5, shape)
        else:  # bn.bias, running_mean
            v = rs.randn(*shape) * 0.1
        out[k] = torch.from_numpy(v.astype(np.float32))
    return out


def golden_images():
    """Two 32 px RGB images: smooth colour fields plus noise (uint8, NHWC)."""
    import numpy as np

    rs = np.random.RandomState(1)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([xx, yy, 1 - xx * yy], -1)[None] * 200
    return np.clip(base + rs.randn(2, 32, 32, 3) * 30, 0, 255).astype(np.uint8)


def main() -> int:
    import numpy as np
    import torch

    # torchvision's detection operators may not match this torch build; the model code does not need them
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import pytorch_fid.inception as pf
    from safetensors.torch import save_file
    from torchvision.models.inception import Inception3

    from benchmarks.machine import cpu_model
    from latentctl.quality import inception, score

    print(f"# CPU: {cpu_model()}; torch {torch.__version__}")
    torch.manual_seed(0)
    # Build pytorch-fid's network exactly as it does, minus the download: its loader gets None and
    # the model keeps torchvision's random initialisation.
    real_load = Inception3.load_state_dict
    pf.load_state_dict_from_url = lambda *a, **k: None
    Inception3.load_state_dict = lambda self, sd, *a, **k: None if sd is None else real_load(self, sd, *a, **k)
    try:
        net = pf.fid_inception_v3()
    finally:
        Inception3.load_state_dict = real_load
    # Batch-norm statistics from random images: every layer then sees O(1) activations in eval mode,
    # as with trained weights, so a structural difference cannot hide in vanishing numbers.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(16, 3, 299, 299) * 2 - 1)
    net.eval()
    pf.fid_inception_v3 = lambda: net
    ref = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "pt_inception-random.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
        # The graph as written (NCHW, as pytorch-fid runs it), and through score.features, which
        # runs it channels-last for speed (other kernels, other rounding).
        ours = inception.from_state(inception.load_state(weights))
        space = score.feature_space("inception", inception_weights=weights)
        worst = 0.0
        for size, channels in ((32, 3), (64, 3), (299, 3), (28, 1)):
            images = rng.integers(0, 256, (12, size, size, channels), dtype=np.uint8)
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous() / 255  # as ToTensor gives
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB, as PIL's convert("RGB") does for pytorch-fid
            with torch.no_grad():
                want = ref(x)[0].flatten(1).double()
                got = ours(x).double()
            via_score = torch.from_numpy(score.features(images, space))
            # Rounding scales with the features' size, not their spread (on noise images at 299 px
            # the calibrated features hardly vary: spread 0.11, size ~1), so divide by their RMS.
            scale = float(want.pow(2).mean().sqrt())
            d1 = float((got - want).abs().max()) / scale
            d2 = float((via_score - want).abs().max()) / scale
            worst = max(worst, d1, d2)
            print(
                f"{size:>3} px x{channels}: feature RMS {scale:.4f}; max |latentctl - pytorch-fid| / RMS: "
                f"graph (NCHW) {d1:.2e}, score.features (channels-last) {d2:.2e}"
            )
    # float32 through ~100 layers: relative rounding of order 1e-6 per op, a few 1e-5 at the end;
    # a structural difference moves features by a sizeable fraction of their spread.
    ok = worst < 1e-3
    print(f"worst {worst:.2e}: {'the same graph' if ok else 'DIFFERENT graphs'}")

    # The golden file: pytorch-fid's network with the seeded weights, on the two fixed images.
    real_load(net, {**net.state_dict(), **seeded_state()})
    images = golden_images()
    with torch.no_grad():
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).contiguous()
        want = ref(x)[0].flatten(1)
    with torch.no_grad():
        got = inception.from_state(seeded_state())(x)
    print(
        f"seeded weights: feature std {float(want.std()):.4f}, max |diff| / std {float((got - want).abs().max() / want.std()):.2e}"
    )
    if "--golden" in sys.argv:
        GOLDEN.parent.mkdir(exist_ok=True)
        np.savez_compressed(GOLDEN, images=images, features=want.numpy().astype(np.float32))
        print(f"wrote {GOLDEN}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
