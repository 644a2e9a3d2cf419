"""Write the Keras fixtures in tests/data/keras/ with the real writers (run by hand, never by CI).

    python3 tests/writers/keras_fixtures.py [--venvs DIR] [--out tests/data/keras]

Without ``--writer`` it makes two virtual environments under DIR (a temp folder unless given):
Keras 2 (``tensorflow-cpu`` + ``tf-keras``, used through ``TF_USE_LEGACY_KERAS=1``) and Keras 3
(``keras`` + ``jax[cpu]``, ``KERAS_BACKEND=jax``), then runs itself in each with ``--writer``.
Each model gets fixed-seed random weights (BatchNormalization statistics, gamma and beta too, so
that eps and the statistics matter), is saved by the writer, and the writer's own outputs
``model(z, training=False)`` for fixed latents go to ``<name>.expected.npz`` (``z`` (n, latent)
float32, ``out`` float32 NHWC). MANIFEST.json records the writer versions and what each file is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "data" / "keras"
# The Lambda fixture's function writes this file if anything ever runs it; the tests check it stays absent.
LAMBDA_MARKER = Path(tempfile.gettempdir()) / "latentctl-keras-lambda-ran"
REQUIREMENTS = {
    "keras2": ["tensorflow-cpu", "tf-keras", "h5py", "numpy"],
    "keras3": ["keras", "jax[cpu]", "h5py", "numpy"],
}
LATENTS = 3


# ---- the driver (system python) ---------------------------------------------------------------------


def _venv(root: Path, writer: str) -> Path:
    env = root / writer
    python = env / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS[writer]], check=True)
    return python


def drive(venvs: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"writers": {}, "files": {}}
    for writer in REQUIREMENTS:
        python = _venv(venvs, writer)
        report = out / f".{writer}.json"
        subprocess.run([str(python), __file__, "--writer", writer, "--out", str(out)], check=True)
        part = json.loads(report.read_text())
        report.unlink()
        manifest["writers"][writer] = part["versions"]
        manifest["files"].update(part["files"])
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


# ---- inside a writer's environment ------------------------------------------------------------------


def _randomize(model, np, seed: int) -> None:
    """Fixed-seed weights for every variable; BN statistics far from 0/1 so eps and stats matter."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.name.split("/")[-1].split(":")[0]
        shape = tuple(w.shape)
        if name == "kernel":
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "moving_variance":
            value = rng.uniform(0.2, 2.0, shape)
        else:  # bias, beta, moving_mean
            value = rng.normal(0.0, 0.3, shape)
        w.assign(value.astype("float32"))


def _expected(model, np, latent: int, seed: int, path: Path, count: int = LATENTS) -> None:
    z = np.random.default_rng(1000 + seed).standard_normal((count, latent)).astype("float32")
    out = np.asarray(model(z, training=False), dtype="float32")
    np.savez_compressed(path, z=z, out=out)


def _seed_g(keras, width: int = 8):
    layers = keras.layers
    g = keras.Sequential(name="seed_generator")
    g.add(keras.Input(shape=(100,)))
    g.add(layers.Dense(8 * 8 * width))
    g.add(layers.LeakyReLU(alpha=0.2))
    g.add(layers.Reshape((8, 8, width)))
    for _ in range(4):
        g.add(layers.Conv2DTranspose(width, (4, 4), strides=(2, 2), padding="same"))
        g.add(layers.LeakyReLU(alpha=0.2))
    g.add(layers.Conv2D(3, (8, 8), padding="same", activation="tanh"))
    return g


def _tf_dcgan(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(100,)),
            layers.Dense(7 * 7 * 16, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 16)),
            layers.Conv2DTranspose(8, (5, 5), strides=(1, 1), padding="same", use_bias=False),
            layers.BatchNormalization(epsilon=0.05),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(4, (5, 5), strides=(2, 2), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"),
        ]
    )


def _combined(keras):
    layers = keras.layers
    g = keras.Sequential(
        [
            keras.Input(shape=(16,)),
            layers.Dense(4 * 4 * 8),
            layers.LeakyReLU(alpha=0.2),
            layers.Reshape((4, 4, 8)),
            layers.Conv2DTranspose(8, (4, 4), strides=(2, 2), padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2DTranspose(3, (3, 3), strides=(2, 2), padding="same", activation="tanh"),
        ],
        name="generator",
    )
    d = keras.Sequential(
        [
            keras.Input(shape=(16, 16, 3)),
            layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(alpha=0.2),
            layers.Flatten(),
            layers.Dropout(0.4),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="discriminator",
    )
    return keras.Sequential([keras.Input(shape=(16,)), g, d], name="gan"), g


def _keras2_zip(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(12,)),
            layers.Dense(3 * 3 * 8, activation="relu"),
            layers.Reshape((3, 3, 8)),
            layers.Conv2DTranspose(8, (5, 5), strides=(2, 2), padding="same"),
            layers.BatchNormalization(scale=False, epsilon=0.01),
            layers.LeakyReLU(alpha=0.1),
            layers.UpSampling2D((2, 2)),
            layers.Conv2D(3, (4, 4), padding="same", activation="tanh"),
        ],
        name="zip_generator",
    )


def _keras2_functional(keras):
    layers = keras.layers
    z = keras.Input(shape=(10,))
    x = layers.Dense(4 * 4 * 6)(z)
    x = layers.ReLU(negative_slope=0.1)(x)
    x = layers.Reshape((4, 4, 6))(x)
    x = layers.Conv2DTranspose(6, (3, 3), padding="valid")(x)  # 6x6
    x = layers.Flatten()(x)  # (H, W, C) order: the Dense below sees Keras' flattening
    x = layers.Dense(4 * 4 * 3)(x)
    x = layers.Reshape((4, 4, 3))(x)
    x = layers.UpSampling2D((2, 2), interpolation="bilinear")(x)
    out = layers.Activation("tanh")(x)
    return keras.Model(z, out, name="functional_generator")


def _lambda(keras):
    layers = keras.layers
    marker = str(LAMBDA_MARKER)
    return keras.Sequential(
        [
            keras.Input(shape=(8,)),
            layers.Dense(4 * 4 * 4),
            # if anything ever runs this layer's stored code, the marker file appears
            layers.Lambda(lambda x: x + 0.0 * len(str(__import__("pathlib").Path(marker).write_text("ran")))),
            layers.Reshape((4, 4, 4)),
            layers.Conv2D(3, (3, 3), padding="same", activation="tanh"),
        ],
        name="lambda_generator",
    )


def _functional(keras):
    layers = keras.layers
    z = keras.Input(shape=(24,), name="z")
    x = layers.Dense(4 * 4 * 8, name="project")(z)
    x = layers.ReLU()(x)
    x = layers.Reshape((4, 4, 8))(x)
    x = layers.UpSampling2D((2, 2))(x)  # 8x8, nearest
    x = layers.Conv2D(8, (3, 3), padding="same", activation="leaky_relu")(x)
    x = layers.BatchNormalization(center=False, epsilon=0.002)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.UpSampling2D((2, 2), interpolation="bilinear")(x)  # 16x16
    x = layers.Conv2D(8, (4, 4), padding="same")(x)  # even kernel: TF pads 1 before, 2 after
    x = layers.LeakyReLU(negative_slope=0.15)(x)
    x = layers.Conv2DTranspose(8, (3, 3), strides=(2, 2), padding="same")(x)  # 32x32, asymmetric crop
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(4, (5, 5), strides=(2, 2), padding="valid")(x)  # 14x14
    out = layers.Activation("sigmoid")(x)
    return keras.Model(z, out, name="rgba_generator")


def _keras3_seq(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(16,)),
            layers.Dense(3 * 3 * 8),
            layers.LeakyReLU(),
            layers.Reshape((3, 3, 8)),
            layers.Conv2DTranspose(8, (5, 5), strides=(2, 2), padding="same"),
            layers.BatchNormalization(),
            layers.Conv2DTranspose(3, (4, 4), strides=(2, 2), padding="valid", activation="tanh"),
        ],
        name="k3_generator",
    )


def _write_keras2(out: Path) -> dict:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import h5py
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    files = {}

    def save(name, model, generator, latent, seed, what, count=LATENTS):
        _randomize(model, np, seed)
        model.save(out / name)
        _expected(generator, np, latent, seed, out / f"{Path(name).stem}.expected.npz", count)
        files[name] = {"writer": "keras2", "what": what}

    g = _seed_g(keras)
    # two latents, not three: each 128x128x3 float32 output is 196 KB and a fixture stays under 400 KB
    save("seed_g.h5", g, g, 100, 1, "the blog's generator at width 8, model.save('g.h5'), 128x128x3 tanh", count=2)
    g = _tf_dcgan(keras)
    save("tf_dcgan.h5", g, g, 100, 2, "TF DCGAN tutorial generator at widths 16/8/4, random BN stats, eps 0.05 on BN 2")
    gan, g = _combined(keras)
    save(
        "combined_gan.h5", gan, g, 16, 3, "Sequential([generator, discriminator]) saved whole; expected is generator's"
    )
    g = _keras2_zip(keras)
    save("keras2_zip.keras", g, g, 12, 4, "tf-keras .keras zip; BN scale=False, UpSampling2D, even-kernel conv")
    g = _keras2_functional(keras)
    what = "Keras 2 Functional chain: Flatten then Dense, ReLU(negative_slope), bilinear"
    save("keras2_functional.h5", g, g, 10, 8, what)
    g = _lambda(keras)
    _randomize(g, np, 5)
    g.save(out / "lambda.h5")
    LAMBDA_MARKER.unlink(missing_ok=True)  # the writer itself ran the Lambda while building
    files["lambda.h5"] = {"writer": "keras2", "what": f"a Lambda layer that writes {LAMBDA_MARKER} if run"}
    versions = {"tensorflow": tf.__version__, "tf_keras": keras.__version__, "h5py": h5py.__version__}
    versions["numpy"] = np.__version__
    return {"versions": versions, "files": files}


def _write_keras3(out: Path) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import h5py
    import jax
    import keras
    import numpy as np

    files = {}
    g = _functional(keras)
    _randomize(g, np, 6)
    g.save(out / "functional.keras")
    _expected(g, np, 24, 6, out / "functional.expected.npz")
    files["functional.keras"] = {
        "writer": "keras3",
        "what": "Functional linear chain, RGBA sigmoid: UpSampling2D nearest+bilinear, odd/even/valid convs, BN center=False",
    }
    g = _keras3_seq(keras)
    _randomize(g, np, 7)
    g.save(out / "keras3_seq.h5")
    _expected(g, np, 16, 7, out / "keras3_seq.expected.npz")
    files["keras3_seq.h5"] = {
        "writer": "keras3",
        "what": "Keras 3 legacy .h5 of a small Sequential, valid transposed conv",
    }
    versions = {"keras": keras.__version__, "jax": jax.__version__, "h5py": h5py.__version__, "numpy": np.__version__}
    return {"versions": versions, "files": files}


def write(writer: str, out: Path) -> None:
    report = _write_keras2(out) if writer == "keras2" else _write_keras3(out)
    (out / f".{writer}.json").write_text(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--venvs", type=Path, help="where to make (or reuse) the writers' environments")
    parser.add_argument("--writer", choices=sorted(REQUIREMENTS), help="internal: write one writer's files")
    parser.add_argument(
        "--full-seed",
        type=Path,
        metavar="FILE",
        help="instead: write the blog's generator at full size (width 128, 1.9 M parameters, ~7.6 MB) to FILE "
        "with Keras 2, for benchmarks/import_speed.py (not a fixture: never committed)",
    )
    args = parser.parse_args()
    if args.full_seed and args.writer:
        import numpy as np
        import tf_keras as keras

        model = _seed_g(keras, width=128)
        _randomize(model, np, 0)
        model.save(str(args.full_seed))
    elif args.full_seed:
        python = _venv(args.venvs or Path(tempfile.mkdtemp(prefix="keras-writers-")), "keras2")
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        subprocess.run(
            [str(python), __file__, "--writer", "keras2", "--full-seed", str(args.full_seed)], env=env, check=True
        )
    elif args.writer:
        write(args.writer, args.out)
    else:
        drive(args.venvs or Path(tempfile.mkdtemp(prefix="keras-writers-")), args.out)


if __name__ == "__main__":
    main()
