"""Issue 30: a direction made from labelled pictures says which of their other labels it also
moves, read off the latents by a fitted read-out, next to random directions of its length."""

from __future__ import annotations

import numpy as np
from conftest import run
from PIL import Image

from latentctl.pictures import synthetic
from latentctl.space.label_effects import LABEL_EFFECT_MARGIN, label_effects
from latentctl.space.store import read_entry

D = 16


def _latents(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, D))
    columns = {
        "age": 30 + 12 * z[:, 0] + 2 * rng.standard_normal(n),  # read off axis 0
        "gender": (z[:, 1] > 0).astype(float),  # axis 1
        "background": np.array(["blue" if x > 0 else "red" for x in z[:, 2]], dtype=object),  # axis 2
        "mood": rng.standard_normal(n),  # nothing in the latents says it
        "constant": np.full(n, 3.0),  # one value: nothing to read
    }
    return z, columns


def test_a_direction_moves_the_labels_along_it_and_not_the_ones_across_it():
    z, columns = _latents()
    v = np.zeros(D)
    v[0], v[2] = 1.0, 0.8  # older, and towards a blue background; gender untouched
    effects = {e.column.split("=")[0]: e for e in label_effects(z, columns, v)}
    assert set(effects) == {"age", "gender", "background", "mood"}  # "constant" has nothing to read
    assert effects["age"].clear and effects["age"].change > 0.9  # 12 years per unit of a ~12-year spread
    assert effects["background"].clear and effects["background"].column in ("background=blue", "background=red")
    assert not effects["gender"].clear and effects["gender"].judged
    assert effects["gender"].change - effects["gender"].random < LABEL_EFFECT_MARGIN
    assert not effects["mood"].judged and "unknown" in effects["mood"].line()
    ordered = [e.column.split("=")[0] for e in label_effects(z, columns, v)]
    assert ordered[:2] == ["age", "background"] and ordered[-1] == "mood"  # most moved first, unknown last


def test_wide_latents_give_the_same_read_out_by_the_small_system():
    from latentctl.space import label_effects as LE

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 60)), rng.standard_normal(40)  # more dimensions than pictures
    w, b = LE._ridge(x, y)
    xc = x - x.mean(0)
    primal = np.linalg.solve(xc.T @ xc + LE.RIDGE * 40 * np.eye(60), xc.T @ (y - y.mean()))
    np.testing.assert_allclose(w, primal, rtol=1e-8, atol=1e-10)  # one minimiser, two ways to solve for it
    z, columns = _latents(n=60)
    wplus = np.repeat(z[:, None, :], 3, axis=1)  # (n, layers, d): w+ rows
    (age,) = [e for e in label_effects(wplus, {"age": columns["age"]}, np.tile(np.eye(D)[0], 3))]
    assert age.judged and age.clear


def test_the_hint_names_both_commands_that_hold_a_label_still():
    z, columns = _latents()
    v = np.zeros(D)
    v[2] = 1.0
    effect = next(e for e in label_effects(z, columns, v) if e.column.startswith("background"))
    hint = effect.hint("smile", "faces/", "latentctl attr-vector ... --orthogonal-to background-dir")
    value = effect.column.split("=")[1]
    assert f"--column background --pos-if '=={value}' --save background-dir" in hint
    assert hint.endswith("--orthogonal-to background-dir") and effect.to_meta()["clear"] is True
    # a 0/1 label whose median is 1: its high side is ">=1" (">1" would pick no picture)
    ones = {"flag": (z[:, 3] > -0.5).astype(float)}
    v = np.zeros(D)
    v[3] = 1.0
    (flag,) = label_effects(z, ones, v)
    assert flag.pos_if == ">=1" and "--pos-if '>=1'" in flag.hint("d", "faces/", "again")


def test_attr_vector_from_labelled_pictures_reports_the_other_labels(tmp_path, workspace):
    data = synthetic.make_dataset(tmp_path / "f", n=64, size=32)
    run(
        "train",
        data,
        "-s",
        "32",
        "--width",
        "8",
        "--latent-dim",
        "8",
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--family",
        "ae",
    )
    folder = tmp_path / "faces"
    folder.mkdir()
    faces, attrs = synthetic.synthetic_faces(80, 32, seed=2)
    rows = ["file,glasses,dark_hair,skin"]
    for i, img in enumerate(faces):
        Image.fromarray(img).save(folder / f"f{i}.png")
        skin = "dark" if attrs["dark_skin"][i] else "light"
        rows.append(f"f{i}.png,{int(attrs['glasses'][i])},{int(attrs['dark_hair'][i])},{skin}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    res = run("attr-vector", "--images", folder, "--column", "glasses", "--pos-if", "==1", "--save", "glasses")
    for label in ("dark_hair", "skin="):
        assert f"label {label}" in res.output or f"moves the label {label}" in res.output
    meta = read_entry(workspace / "latents" / "glasses.npz").meta
    assert {e["column"].split("=")[0] for e in meta["label_effects"]} == {"dark_hair", "skin"}
