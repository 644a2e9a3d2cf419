"""Issue 12, directions a user can trust: one meaning of strength, honest held-out statistics,
text label conditions, the fast GAN encoder and edit scores, on tiny models."""

import time

import numpy as np
import pytest
import torch
from conftest import run

from latentctl.errors import UsageError
from latentctl.pictures.labels import check_condition, read_labels_csv, select
from latentctl.space import latents as L
from latentctl.space.store import read_entry


@pytest.fixture
def model(tiny_run):
    """The session's tiny trained run (conftest), only read here; each test has its own store."""
    return tiny_run


def shifted(n, d=20, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    pos, neg = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    pos[:, 0] += shift
    return pos.astype(np.float32), neg.astype(np.float32)


# ---- one meaning of strength


@pytest.mark.parametrize("orthogonal", [False, True])
def test_mean_and_boundary_move_the_same_gap_at_strength_1(orthogonal):
    pos, neg = shifted(30, shift=2.0)
    others = [np.eye(20, dtype=np.float32)[3]] if orthogonal else []
    gap = {}
    for method in ("mean", "boundary"):
        b = L.build_direction(pos, neg, method, others, held_out=False)
        u = b.vector / np.linalg.norm(b.vector)
        # strength 1 moves the neg mean's projection exactly onto the pos mean's
        assert float((neg.mean(0) + b.vector) @ u) == pytest.approx(float(pos.mean(0) @ u), rel=1e-4)
        assert b.meta["scale"] == "mean-gap" and b.meta["length"] == pytest.approx(b.meta["gap"], rel=1e-5)
        gap[method] = b.meta["gap"]
    # the two methods find nearly the same direction here, so the same strength moves as far
    assert gap["mean"] == pytest.approx(gap["boundary"], rel=0.2)
    unit = L.build_direction(pos, neg, "boundary", unit=True, held_out=False)
    assert np.linalg.norm(unit.vector) == pytest.approx(1.0, abs=1e-6) and unit.meta["scale"] == "unit"


def test_plain_mean_direction_is_still_the_mean_difference():
    pos, neg = shifted(10, shift=1.0)
    b = L.build_direction(pos, neg, "mean", held_out=False)
    np.testing.assert_allclose(b.vector, pos.mean(0) - neg.mean(0), rtol=1e-5, atol=1e-6)


def test_scale_text_says_what_strength_1_means():
    assert "mean gap" in L.scale_text({"scale": "mean-gap", "gap": 2.0}, 2.0)
    assert "one prior standard deviation" in L.scale_text({"scale": "unit"}, 1.0)
    assert "no scale recorded" in L.scale_text({}, 3.0)
    assert "edit units" in L.scale_text({"scale": "edit units: strength α asks for edit α"}, 0.4)


# ---- honest statistics


@pytest.mark.parametrize("method", ["mean", "boundary"])
def test_random_split_of_noise_is_near_chance_and_warned(method):
    pos, neg = shifted(12, d=50, shift=0.0, seed=1)
    r = L.out_of_sample(pos, neg, method, permutations=30, seed=0)
    assert r.scheme == "leave-one-out"
    assert abs(r.accuracy - 0.5) <= 0.25 and abs(r.baseline_mean - 0.5) <= 0.1
    assert any("cannot support a direction" in w for w in r.warnings)


@pytest.mark.parametrize("method", ["mean", "boundary"])
def test_a_real_separation_beats_the_baseline_without_the_warning(method):
    pos, neg = shifted(15, d=10, shift=3.0, seed=2)
    r = L.out_of_sample(pos, neg, method, permutations=30, seed=0)
    assert r.accuracy >= 0.85 and r.accuracy > r.baseline_p95 and r.p_value <= 0.05
    assert not any("cannot support" in w for w in r.warnings)


def test_large_sets_use_k_folds_and_the_report_is_seeded():
    pos, neg = shifted(100, d=10, shift=1.0, seed=3)
    a = L.out_of_sample(pos, neg, "mean", permutations=20, seed=5)
    b = L.out_of_sample(pos, neg, "mean", permutations=20, seed=5)
    assert a.scheme == "10-fold" and a == b and a.to_meta()["accuracy"] == a.accuracy


def test_few_picks_in_many_dimensions_say_how_many_would_help():
    pos, neg = shifted(8, d=100, shift=3.0, seed=4)
    cos, per_side = L.picks_needed(pos, neg)
    assert cos < L.TARGET_COSINE and per_side > 8
    r = L.out_of_sample(pos, neg, "mean", permutations=20)
    assert any("picks per side" in w for w in r.warnings)
    one = L.out_of_sample(pos[:1], neg, "mean")
    assert one.accuracy is None and "at least 2 per side" in one.warnings[0]


def test_attr_vector_reports_held_out_numbers_and_stores_them(model, workspace):
    run("sample", model, "--seeds", "0-5", "--save", "a")
    run("sample", model, "--seeds", "6-11", "--save", "b")
    res = run("attr-vector", "--pos", "a", "--neg", "b", "--save", "ab", "--model", model, "--permutations", "20")
    assert "held-out accuracy" in res.output and "random splits" in res.output
    assert "cannot support a direction" in res.output  # random seeds: no attribute at all
    assert "strength 1 = the mean gap" in res.output
    meta = read_entry(workspace / "latents" / "ab.npz").meta
    assert meta["scale"] == "mean-gap" and meta["out_of_sample"]["permutations"] == 20
    shown = run("latents", "show", "ab").output
    assert "strength: length" in shown and "mean gap" in shown
    applied = run("apply", "seeds:1", "--add", "ab", "--model", model, "--out", workspace / "out").output
    assert "ab: length" in applied and "strength 1 = the mean gap" in applied


# ---- text label conditions


def test_text_columns_and_categorical_conditions(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,skin,age\na.png,dark,3\nb.png,medium-dark,4\nc.png,light,5\nd.png,,6\n")
    labels = read_labels_csv(csv)
    skin = labels.column(["a.png", "b.png", "c.png", "d.png"], "skin")
    assert select(skin, "==dark").tolist() == [True, False, False, False]
    assert select(skin, "dark").tolist() == [True, False, False, False]
    assert select(skin, "in:dark,medium-dark").tolist() == [True, True, False, False]
    assert select(skin, "!=dark").tolist() == [False, True, True, False]  # missing never selected
    assert select(labels.column(["a.png", "c.png"], "age"), "in:3,5").tolist() == [True, True]
    with pytest.raises(UsageError, match="text column"):
        select(skin, ">3")
    with pytest.raises(UsageError, match="holds numbers"):
        select(np.array([1.0, 2.0]), "==dark")
    check_condition("==dark")
    check_condition("in:dark,medium-dark")
    with pytest.raises(UsageError, match="cannot read the condition"):
        check_condition(">x")


# ---- the fast GAN encoder


@pytest.mark.slow
def test_gan_encoder_beats_random_starts_and_is_much_faster_than_projection(model, tmp_path):
    import shutil

    from latentctl.files.checkpoint import load
    from latentctl.seeds import latents_from_seeds
    from latentctl.space import gan_encoder as GE
    from latentctl.space.encode import encode_images, rms_error
    from latentctl.space.generate import generate

    # a copy of the shared run's checkpoint: the encoder is stored beside the checkpoint it encodes for
    ckpt = tmp_path / "checkpoint.safetensors"
    shutil.copyfile(model / "checkpoint.safetensors", ckpt)
    loaded = load(ckpt)
    torch.manual_seed(0)
    net, path, trained = GE.ensure(loaded, ckpt, steps=150, width=8)
    assert trained and path == tmp_path / "gan-encoder.safetensors"
    again, _, trained_again = GE.ensure(loaded, ckpt)
    assert not trained_again  # stored beside the checkpoint and reused
    z_true = latents_from_seeds(list(range(1000, 1008)), 8)
    images = generate(loaded.generator, z_true, device=torch.device("cpu"))
    t = time.perf_counter()
    z_enc = GE.encode(again, images)
    t_enc = time.perf_counter() - t
    err_enc = rms_error(generate(loaded.generator, z_enc, device=torch.device("cpu")), images).mean()
    rand = latents_from_seeds(list(range(8)), 8)
    err_rand = rms_error(generate(loaded.generator, rand, device=torch.device("cpu")), images).mean()
    assert err_enc < err_rand
    t = time.perf_counter()
    proj = encode_images(loaded, images, torch.device("cpu"), steps=30, restarts=1)
    t_proj = time.perf_counter() - t
    assert t_enc * 10 < t_proj
    refined = encode_images(loaded, images, torch.device("cpu"), gan_encoder=again, refine_steps=5)
    assert refined.method.startswith("gan-encoder") and np.isfinite(proj.errors).all()
    assert refined.errors.mean() <= err_enc + 1e-6 or refined.errors.mean() < err_rand


def test_a_stale_encoder_is_refused_by_model_id(model, tmp_path):
    from latentctl.errors import CheckpointError
    from latentctl.space import gan_encoder as GE

    cfg = GE.GanEncoderConfig(image_size=32, channels=3, latent_dim=8, steps=1)
    path = GE.save(tmp_path / "e.safetensors", GE.build(cfg), cfg, model_id="abc", meta={})
    with pytest.raises(CheckpointError, match="another generator"):
        GE.load(path, model_id="other")


# ---- how well an edit worked


def test_apply_score_with_prints_scores_per_strength(model, workspace, tmp_path):
    from latentctl.space.assessor import Assessor, ClassifierConfig, build_classifier, save_classifier

    torch.manual_seed(0)
    cfg = ClassifierConfig(image_size=32, width=8)
    clf = save_classifier(tmp_path / "clf.safetensors", Assessor(cfg, build_classifier(cfg)))
    run("sample", model, "--seeds", "0-5", "--save", "a")
    run("sample", model, "--seeds", "6-11", "--save", "b")
    run("attr-vector", "--pos", "a", "--neg", "b", "--save", "ab", "--model", model, "--permutations", "0")
    res = run(
        "apply",
        "seeds:1-3",
        "--add",
        "ab",
        "--scales",
        "-1,0,1",
        "--model",
        model,
        "--out",
        tmp_path / "o",
        "--score-with",
        clf,
        "--keep",
        clf,
    )
    score = next(line for line in res.stdout.splitlines() if "score (mean probability" in line)
    assert "-1: " in score and "+0: " in score and "+1: " in score
    keep = next(line for line in res.stdout.splitlines() if "change from the unedited" in line)
    assert "+0: 0.00" in keep  # strength 0 is the unedited image


# ---- bad inputs: exit 2, one line


@pytest.mark.parametrize(
    "args,message",
    [
        (["attr-vector", "--pos", "a", "--neg", "b", "--method", "svm"], "--method must be mean or boundary"),
        (["attr-vector", "--images", "imgs", "--column", "skin", "--pos-if", "in:"], "cannot read the condition"),
        (["attr-vector", "--pos", "a", "--neg", "b", "--permutations", "-1"], "--permutations"),
        (["apply", "seeds:1", "--add", "ab", "--score-with", "nope.safetensors"], "--score-with: no classifier"),
        (["encode", "x.png", "--use-encoder", "--refine", "301"], "--refine 301: at most 300"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(args, message, tmp_path):
    res = run(*args, "-m", tmp_path / "NOMODEL", code=2)
    assert message in res.output and len(res.output.strip().splitlines()) == 1
