"""What `steer` and `classifier train` do, through the library they call (latentctl.space.steer_run): the
request's checks, the store name, the learned direction with its entry and sweep, the examples a
classifier learns from and where it is saved; and the one-line error a walk that turns NaN gives."""

from pathlib import Path

import numpy as np
import pytest
from conftest import blob_images, run, write_images

from latentctl.errors import NonFiniteLossError, UsageError
from latentctl.files.workspace import Workspace
from latentctl.space.steer_run import (
    SWEEP_COLUMNS,
    ClassifierExamples,
    PickedLatents,
    SteerRequest,
    classifier_target,
    labelled_examples,
    learn_steer,
    plan_steer,
    steer_sweep,
    train_on_examples,
)
from latentctl.space.store import LatentStore


@pytest.mark.parametrize(
    "request_, words",
    [
        (SteerRequest(), "give --edit EDIT"),
        (SteerRequest(edit="zoom", assessor=Path("smile")), "give --edit EDIT"),
        (SteerRequest(edit="spin"), "unknown --edit 'spin'"),
        (SteerRequest(edit="color", channel="pink"), "unknown --channel 'pink'"),
        (SteerRequest(edit="zoom", alpha_max=0.0), "--alpha-max must be above 0"),
        (SteerRequest(edit="zoom", alpha_max=float("nan")), "--alpha-max nan"),
        (SteerRequest(edit="zoom", lr=0.0), "--lr must be above 0"),
        (SteerRequest(edit="zoom", steps=0), "--steps must be at least 1"),
        (SteerRequest(edit="zoom", batch_size=10**9), "--batch-size 1,000,000,000: at most"),
    ],
)
def test_a_steer_request_is_checked_before_any_model_loads(request_, words):
    with pytest.raises(UsageError) as err:
        request_.check()
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_direction_is_named_after_its_edit_or_classifier(tmp_path):
    from latentctl.space.assessor import Assessor, ClassifierConfig, build_classifier, save_classifier

    ws = Workspace.resolve(tmp_path / "ws")
    store = LatentStore(ws.store)
    assert plan_steer(SteerRequest(edit="zoom"), ws, store).name == "steer-zoom"
    assert plan_steer(SteerRequest(edit="color", channel="green"), ws, store).name == "steer-color-green"
    assert plan_steer(SteerRequest(edit="zoom", save="mine"), ws, store).name == "mine"
    cfg = ClassifierConfig(image_size=32, width=8)
    save_classifier(ws.root / "classifiers" / "smile.safetensors", Assessor(cfg, build_classifier(cfg)))
    plan = plan_steer(SteerRequest(assessor=Path("smile")), ws, store)  # a name from the workspace
    assert plan.name == "ganalyze-smile" and plan.classifier == ws.root / "classifiers" / "smile.safetensors"
    assert plan.learning == "learning the GANalyze direction of smile"
    with pytest.raises(UsageError, match="no classifier 'frown'"):
        plan_steer(SteerRequest(assessor=Path("frown")), ws, store)


def test_a_learned_walk_comes_with_its_entry_and_a_sweep_across_its_range(tiny_run):
    from latentctl.space.session import open_model

    session = open_model(tiny_run, "cpu")
    plan = plan_steer(SteerRequest(edit="brightness", steps=2, batch_size=4), session.ws, session.store)
    steps = []
    learned = learn_steer(session, plan, on_step=lambda done, total, loss: steps.append((done, total)))
    assert steps == [(1, 2), (2, 2)]
    meta = learned.entry.meta
    assert learned.entry.kind == "direction" and meta["method"] == "steerability" and meta["edit"] == "brightness"
    np.testing.assert_array_equal(learned.entry.z[0], learned.direction)
    assert learned.alpha_max == 0.5 and len(meta["errors"]) == len(learned.walk.errors) == 7
    better, moved = learned.walk.wins()
    assert moved == 6 and 0 <= better <= 6
    sweep = steer_sweep(session, learned, [3, 4])
    assert sweep.strengths == [-0.5, -0.25, 0.0, 0.25, 0.5] and sweep.suggested == 0.25
    assert sweep.latents.shape == (2 * SWEEP_COLUMNS, session.info.model.latent_dim)
    assert sweep.labels[:SWEEP_COLUMNS] == ["-0.5", "-0.25", "+0", "+0.25", "+0.5"]
    np.testing.assert_allclose(sweep.latents[SWEEP_COLUMNS + 2], session.seed_latents([4])[0])  # strength 0


def test_a_walk_that_turns_nan_stops_with_one_line_naming_alpha_max(tiny_run, workspace):
    # A zoom of 2^±1e6 samples from infinitely far away: the target image itself is NaN.
    res = run(
        "steer", tiny_run, "--edit", "zoom", "--alpha-max", "1000000", "--steps", "3", "--batch-size", "4", code=1
    )
    message = res.output.strip().splitlines()[-1]
    assert "learning the zoom walk went to NaN or infinity at step 1" in message
    assert "lower --alpha-max (1e+06) or --lr" in message
    assert not (workspace / "latents" / "steer-zoom.npz").exists()
    from latentctl.space.session import open_model

    session = open_model(tiny_run, "cpu")
    plan = plan_steer(SteerRequest(edit="zoom", alpha_max=1e6, steps=1, batch_size=4), session.ws, session.store)
    with pytest.raises(NonFiniteLossError, match="--alpha-max"):
        learn_steer(session, plan)


def test_a_labelled_folder_gives_its_positives_and_negatives(tmp_path):
    from latentctl.pictures.data import prepare_dataset

    folder = write_images(tmp_path / "faces", blob_images(8))
    values = ["1", "0", "1", "", "0", "2", "1", "0"]  # img_0003 has no label; 2 is neither side with --neg-if
    rows = [f"img_{i:04d}.png,{v}" for i, v in enumerate(values)]
    (folder / "labels.csv").write_text("file,smile\n" + "\n".join(rows) + "\n")
    ds = prepare_dataset(folder, 32, tmp_path / "cache")
    said = []
    every = labelled_examples(ds, folder, "smile", "==1", on_labels=said.append)
    assert said and "labelled image" in said[0] and "smile" in said[0]
    assert (every.n_pos, every.n_neg) == (3, 4)  # every other labelled image is negative, 2 included
    assert every.source == {"images": str(folder), "column": "smile", "pos_if": "==1", "neg_if": None}
    assert every.default_name == "smile" and every.images.shape == (7, 32, 32, 3)
    strict = labelled_examples(ds, folder, "smile", "==1", "==0")
    assert (strict.n_pos, strict.n_neg) == (3, 3)


def test_picked_latents_become_labelled_pictures(tiny_run):
    from latentctl.space.session import open_model

    session = open_model(tiny_run, "cpu")
    picked = PickedLatents.resolve(session, ["seeds:0-2"], ["seeds:3-4", "seeds:5"])
    assert picked.count == 6
    examples = picked.examples(session)
    assert examples.images.shape == (6, 32, 32, 3) and examples.images.dtype == np.uint8
    assert examples.labels.tolist() == [True] * 3 + [False] * 3
    assert examples.default_name == "seeds:0-2" and examples.source["model_id"] == session.info.model_id


def test_a_classifier_is_saved_where_asked_and_never_over_a_file_unasked(tmp_path):
    from latentctl.space.assessor import load_classifier, save_classifier

    ws = Workspace.resolve(tmp_path / "ws")
    target = classifier_target(ws, None, "big smile")
    assert target == ws.root / "classifiers" / "big-smile.safetensors"
    assert classifier_target(ws, tmp_path / "c.safetensors", "ignored") == tmp_path / "c.safetensors"
    rng = np.random.default_rng(0)
    examples = ClassifierExamples(
        rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) < 4, {"column": "smile"}, "smile"
    )
    clf, report = train_on_examples(examples, image_size=32, epochs=1)
    assert clf.meta["column"] == "smile" and clf.meta["epochs"] == 1 and clf.meta["n_pos"] == report.n_pos == 4
    save_classifier(target, clf)
    assert load_classifier(target).meta == clf.meta
    with pytest.raises(UsageError, match="already exists; pass --force"):
        classifier_target(ws, None, "big smile")
    assert classifier_target(ws, None, "big smile", force=True) == target
