"""Write the StyleGAN snapshot fixtures in ``tests/data/stylegan/`` (hand-run; never run by CI).

The fixtures are tiny, randomly initialised generators built with NVIDIA's own classes and pickled
the way NVIDIA's training loop writes ``network-snapshot-*.pkl``, plus the outputs NVIDIA's code
computes from them (``<name>.expected.npz``). ``tests/test_import_stylegan2.py`` checks latentctl's
independent implementation against those outputs.

NVIDIA's code is under a non-commercial licence: this script imports and runs it from a checkout
given on the command line; nothing of it is copied here, and the pickles written do not embed its
source (each persistent class's recorded module source is swapped for a one-line stub holding the
sha256 of the original before pickling).

Usage (see tests/writers/README-stylegan.md for the venv):

    /tmp/sgenv/bin/python tests/writers/stylegan_fixtures.py \
        --ada /path/to/stylegan2-ada-pytorch --sg3 /path/to/stylegan3 --out tests/data/stylegan

Each repository runs in its own subprocess: both ship top-level packages called ``training``,
``torch_utils`` and ``dnnlib``, which cannot share one interpreter.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

WRITER_VERSION = 1
SEEDS = (0, 1, 2)
PSI_TRUNCATED = 0.7
CUTOFF = 2

# name -> (repo, generator class, Generator kwargs builder key). Kept small: every pickle < 1 MB.
ADA_FIXTURES = {
    # No fp16, no clamp: the plain path.
    "sg2ada_orig_32": dict(architecture="orig", num_fp16_res=0, conv_clamp=None, c_dim=0),
    # The training defaults: fp16 in the top blocks (ignored on CPU here) and conv_clamp=256.
    "sg2ada_skip_32": dict(architecture="skip", num_fp16_res=2, conv_clamp=256, c_dim=0),
    # A clamp small enough to bite, so the test sees clamp * gain on the resnet sqrt(0.5) path.
    "sg2ada_resnet_32": dict(architecture="resnet", num_fp16_res=4, conv_clamp=0.5, c_dim=0),
    "sg2ada_cond_skip_32": dict(architecture="skip", num_fp16_res=1, conv_clamp=256, c_dim=3),
}
SG3_REPO_SG2_FIXTURES = {
    # stylegan3's copy of the StyleGAN2 generator (flattened synthesis kwargs, other defaults).
    "sg3repo_stylegan2_skip_32": dict(architecture="skip", num_fp16_res=2, conv_clamp=256, c_dim=0),
}
SG3_FIXTURES = {
    "sg3_t_32": dict(cfg="stylegan3-t", resolution=32, c_dim=0),
    "sg3_r_32": dict(cfg="stylegan3-r", resolution=32, c_dim=2),
}


def _git_commit(repo: Path) -> str:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if out.returncode == 0:
        return out.stdout.strip()
    marker = repo / "WRITER_COMMIT"  # a `git archive` export carries no .git: the caller may note the commit here
    return marker.read_text().strip() if marker.exists() else "unknown"


# ----------------------------------------------------------------------------------------------
# Worker side: runs inside one NVIDIA checkout.


def _stub_module_sources(persistence) -> None:
    """Make every persistent class pickle a licence stub instead of NVIDIA's module source.

    ``persistent_class`` reads the module source once, when the class is decorated, and keeps it
    on the decorated class. The stub replaces it there and in persistence's two caches
    (module -> source, source -> module), so ``copy.deepcopy`` -- which goes through the same
    ``__reduce__`` -- still finds the live module for the stub instead of exec'ing it.
    """
    for cls in list(persistence._decorators):
        module = sys.modules[cls.__mro__[1].__module__]
        original = cls._orig_module_src
        if original.startswith("# NVIDIA source removed"):
            continue
        digest = hashlib.sha256(original.encode("utf-8")).hexdigest()
        stub = (
            f"# NVIDIA source removed from this test fixture (non-commercial licence); sha256 of the original: {digest}"
        )
        cls._orig_module_src = stub
        persistence._module_to_src_dict[module] = stub
        persistence._src_to_module_dict[stub] = module


def _randomise(module, generator, *, scale: float = 1.0) -> None:
    """Give every zero/constant-initialised tensor that changes the output a random value.

    Freshly built networks have zero biases, zero noise strengths, a zero ``w_avg`` and unit
    magnitude EMAs; a parity test against such a net could not see a missing bias or noise term.
    """
    import torch

    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            leaf = name.rsplit(".", 1)[-1]
            noise = torch.randn(tensor.shape, generator=generator)
            if leaf == "noise_strength":
                tensor.copy_(0.3 * noise * scale)
            elif leaf == "bias":
                tensor.add_(0.2 * noise * scale)
            elif leaf == "w_avg":
                tensor.copy_(0.5 * noise * scale)
            elif leaf == "magnitude_ema":
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 1.5 + 0.5)
            elif leaf in ("weight", "const", "freqs", "phases") and scale != 1.0:
                tensor.add_(0.05 * noise)


def _snapshot(G, D, G_ema, augment_pipe, training_set_kwargs) -> dict:
    """Assemble the snapshot dict the way NVIDIA's training loop does before pickling it."""
    data = dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe, training_set_kwargs=dict(training_set_kwargs))
    for key, value in data.items():
        if hasattr(value, "requires_grad_"):
            data[key] = copy.deepcopy(value).eval().requires_grad_(False).cpu()
    return data


def _expected_outputs(G, *, is_sg2ada: bool) -> dict:
    """Run NVIDIA's generator on CPU for each seed: ws and images as its own scripts would compute.

    ``force_fp32=True`` is passed to stylegan2-ada's synthesis: that code would otherwise run the
    ``use_fp16`` blocks in float16 even on CPU (stylegan3's copies force float32 off CUDA by
    themselves). The float32 result is the one latentctl reproduces.
    """
    import numpy as np
    import torch

    out: dict = {"seeds": np.asarray(SEEDS, dtype=np.int64)}
    zs, cs = [], []
    ws = {"ws_psi1": [], "ws_psi07": [], "ws_psi07_cutoff2": []}
    imgs = {"img_const_psi1": [], "img_const_psi07": [], "img_none_psi1": []}
    extra = {"force_fp32": True} if is_sg2ada else {}
    for seed in SEEDS:
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
        c = torch.zeros([1, G.c_dim])
        if G.c_dim:
            c[0, seed % G.c_dim] = 1  # gen_images' --class: a one-hot label
        zs.append(z.numpy()[0])
        cs.append(c.numpy()[0])
        with torch.no_grad():
            w1 = G.mapping(z, c, truncation_psi=1)
            w7 = G.mapping(z, c, truncation_psi=PSI_TRUNCATED)
            w7c = G.mapping(z, c, truncation_psi=PSI_TRUNCATED, truncation_cutoff=CUTOFF)
            ws["ws_psi1"].append(w1[0].numpy())
            ws["ws_psi07"].append(w7[0].numpy())
            ws["ws_psi07_cutoff2"].append(w7c[0].numpy())
            imgs["img_const_psi1"].append(G.synthesis(w1, noise_mode="const", **extra)[0].numpy())
            imgs["img_const_psi07"].append(G.synthesis(w7, noise_mode="const", **extra)[0].numpy())
            imgs["img_none_psi1"].append(G.synthesis(w1, noise_mode="none", **extra)[0].numpy())
            # The whole forward must agree with mapping + synthesis.
            full = G(z, c, truncation_psi=1, noise_mode="const", **extra)[0].numpy()
            assert (
                np.array_equal(full, imgs["img_const_psi1"][-1])
                or np.abs(full - imgs["img_const_psi1"][-1]).max() < 1e-6
            )
    out["z"] = np.stack(zs).astype(np.float64)
    out["c"] = np.stack(cs).astype(np.float32)
    out["psi_truncated"] = np.float32(PSI_TRUNCATED)
    out["cutoff"] = np.int64(CUTOFF)
    for key, rows in {**ws, **imgs}.items():
        out[key] = np.stack(rows).astype(np.float32)
    return out


def _write(out_dir: Path, name: str, snapshot: dict, expected: dict, info: dict) -> dict:
    import numpy as np

    pkl = out_dir / f"{name}.pkl"
    with open(pkl, "wb") as f:
        pickle.dump(snapshot, f)
    np.savez_compressed(out_dir / f"{name}.expected.npz", **expected)
    size = pkl.stat().st_size
    if size >= 1_000_000:
        raise SystemExit(f"{pkl} is {size} bytes; the fixtures must stay under 1 MB")
    return {**info, "pickle": pkl.name, "expected": f"{name}.expected.npz", "pickle_bytes": size}


def _worker(kind: str, repo: Path, out_dir: Path) -> list[dict]:
    sys.path.insert(0, str(repo))
    import dnnlib  # noqa: E402  (from the checkout)
    import numpy as np
    import torch
    from torch_utils import persistence

    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(4321)
    results = []
    if kind == "ada":
        import training.augment  # noqa: F401  (decorate the classes before the stub swap)
        import training.networks  # noqa: F401

        _stub_module_sources(persistence)
        fixtures = ADA_FIXTURES
    else:
        import training.augment  # noqa: F401
        import training.networks_stylegan2  # noqa: F401
        import training.networks_stylegan3  # noqa: F401

        _stub_module_sources(persistence)
        fixtures = {**SG3_REPO_SG2_FIXTURES, **SG3_FIXTURES}

    for name, spec in fixtures.items():
        res = spec.get("resolution", 32)
        c_dim = spec["c_dim"]
        common = dict(c_dim=c_dim, img_resolution=res, img_channels=3)
        aug = dnnlib.util.construct_class_by_name(
            class_name="training.augment.AugmentPipe", xflip=1, rotate90=1, xint=1, brightness=1, contrast=1
        )
        if kind == "ada":
            G_kwargs = dnnlib.EasyDict(
                class_name="training.networks.Generator",
                z_dim=32,
                w_dim=32,
                mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                synthesis_kwargs=dnnlib.EasyDict(
                    channel_base=512,
                    channel_max=32,
                    num_fp16_res=spec["num_fp16_res"],
                    conv_clamp=spec["conv_clamp"],
                    architecture=spec["architecture"],
                ),
            )
            D_kwargs = dnnlib.EasyDict(
                class_name="training.networks.Discriminator",
                channel_base=256,
                channel_max=16,
                block_kwargs=dnnlib.EasyDict(),
                mapping_kwargs=dnnlib.EasyDict(),
                epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4),
            )
        elif name in SG3_REPO_SG2_FIXTURES:
            G_kwargs = dnnlib.EasyDict(
                class_name="training.networks_stylegan2.Generator",
                z_dim=48,
                w_dim=40,
                mapping_kwargs=dnnlib.EasyDict(num_layers=3),
                channel_base=512,
                channel_max=32,
                num_fp16_res=spec["num_fp16_res"],
                conv_clamp=spec["conv_clamp"],
                architecture=spec["architecture"],
            )
            D_kwargs = dnnlib.EasyDict(
                class_name="training.networks_stylegan2.Discriminator",
                channel_base=256,
                channel_max=16,
                block_kwargs=dnnlib.EasyDict(),
                mapping_kwargs=dnnlib.EasyDict(),
                epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4),
            )
        else:
            # train.py's stylegan3-t / -r settings, shrunk: fewer layers and channels.
            G_kwargs = dnnlib.EasyDict(
                class_name="training.networks_stylegan3.Generator",
                z_dim=32,
                w_dim=32,
                mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                channel_base=1024,
                channel_max=32,
                num_layers=6,
                num_fp16_res=2,
                conv_clamp=256,
                magnitude_ema_beta=0.5 ** (32 / (20 * 1e3)),
            )
            if spec["cfg"] == "stylegan3-r":
                G_kwargs.conv_kernel = 1
                G_kwargs.channel_base *= 2
                G_kwargs.channel_max *= 2
                G_kwargs.use_radial_filters = True
            D_kwargs = dnnlib.EasyDict(
                class_name="training.networks_stylegan2.Discriminator",
                channel_base=256,
                channel_max=16,
                block_kwargs=dnnlib.EasyDict(),
                mapping_kwargs=dnnlib.EasyDict(),
                epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4),
            )
        G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False)
        D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False)
        G_ema = copy.deepcopy(G).eval()
        _randomise(G_ema, gen)
        # G differs from G_ema so a test can tell which one the importer took.
        G.load_state_dict(G_ema.state_dict())
        _randomise(G, gen, scale=0.5)
        if name == "sg3_r_32":
            # A non-identity input transform (what gen_images' --rotate/--translate store) so the
            # SG3 port is checked on the buffer, not just on an identity.
            angle, tx, ty = 0.3, 0.1, -0.05
            m = np.array(
                [[np.cos(angle), np.sin(angle), tx], [-np.sin(angle), np.cos(angle), ty], [0, 0, 1]], dtype=np.float32
            )
            G_ema.synthesis.input.transform.copy_(torch.from_numpy(np.linalg.inv(m)))
        training_set_kwargs = dnnlib.EasyDict(
            class_name="training.dataset.ImageFolderDataset",
            path="~/datasets/tiny.zip",
            use_labels=c_dim > 0,
            max_size=100,
            xflip=False,
            resolution=res,
            random_seed=0,
        )
        snapshot = _snapshot(G, D, G_ema, aug, training_set_kwargs)
        G_eval = snapshot["G_ema"]
        expected = _expected_outputs(G_eval, is_sg2ada=(kind == "ada"))
        info = dict(
            repo=("stylegan2-ada-pytorch" if kind == "ada" else "stylegan3"),
            generator_class=G_kwargs.class_name,
            spec=spec,
            num_ws=int(G_eval.num_ws),
            z_dim=int(G_eval.z_dim),
            w_dim=int(G_eval.w_dim),
            c_dim=int(G_eval.c_dim),
        )
        results.append(_write(out_dir, name, snapshot, expected, info))
    return results


# ----------------------------------------------------------------------------------------------
# Driver side.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ada", type=Path, help="stylegan2-ada-pytorch checkout")
    parser.add_argument("--sg3", type=Path, help="stylegan3 checkout")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "stylegan")
    parser.add_argument("--worker", choices=["ada", "sg3"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.worker:
        repo = args.ada if args.worker == "ada" else args.sg3
        json.dump(_worker(args.worker, repo.resolve(), args.out.resolve()), sys.stdout)
        return

    import torch  # only to record the version used

    manifest = {
        "writer": "tests/writers/stylegan_fixtures.py",
        "writer_version": WRITER_VERSION,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "seeds": list(SEEDS),
        "z_convention": "np.random.RandomState(seed).randn(1, z_dim)",
        "checkouts": {},
        "fixtures": [],
    }
    for kind, repo in (("ada", args.ada), ("sg3", args.sg3)):
        if repo is None:
            continue
        cmd = [sys.executable, __file__, "--worker", kind, f"--{kind}", str(repo), "--out", str(args.out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"the {kind} worker failed")
        upstream = "NVlabs/stylegan2-ada-pytorch" if kind == "ada" else "NVlabs/stylegan3"
        manifest["checkouts"][upstream] = {"commit": _git_commit(repo)}
        manifest["fixtures"].extend(json.loads(done.stdout.strip().splitlines()[-1]))
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
