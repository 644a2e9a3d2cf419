"""`latentctl score`'s decisions as library calls: which real images a checkpoint is compared with,
how many samples, and the record `runs show` reads, without the CLI around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import blob_images, write_images

from latentctl.errors import DataError
from latentctl.files.workspace import Workspace
from latentctl.quality import scoring
from latentctl.quality.score import FeatureSpace, Metrics, ScoreReport


def _report(n: int) -> ScoreReport:
    m = Metrics(fd=1.23456, kid=0.0123456, kid_std=0.001, precision=0.5, recall=0.25)
    return ScoreReport(m, m, n_generated=n, n_reference=n, n_holdout=n, features="builtin", feature_dim=560)


def test_a_run_is_scored_against_the_folder_it_trained_on_with_as_many_samples_as_images(tiny_run, tiny_images):
    plan = scoring.plan_score(Workspace(Path("unused")), tiny_run)
    assert plan.checkpoint == tiny_run / "checkpoint.safetensors"
    assert plan.images.resolve() == tiny_images.resolve()
    assert plan.n == 64  # fewer real images than DEFAULT_N: one sample per image


def test_a_named_folder_is_decoded_only_as_far_as_the_two_halves_need(tiny_run, tmp_path):
    folder = write_images(tmp_path / "real", blob_images(40))
    plan = scoring.plan_score(Workspace(tmp_path / "ws"), tiny_run, folder, 8)
    assert (plan.images, plan.n, plan.max_images) == (folder, 8, 16)
    with pytest.raises(DataError, match="has 6 images; scoring needs at least 8"):
        scoring.plan_score(Workspace(tmp_path / "ws"), tiny_run, write_images(tmp_path / "few", blob_images(6)))
    with pytest.raises(DataError, match="not a folder of images"):
        scoring.plan_score(Workspace(tmp_path / "ws"), tiny_run, tmp_path / "nowhere")


def test_a_runs_score_is_recorded_and_the_result_is_what_json_prints(tiny_run, tmp_path):
    ws = Workspace(tmp_path / "ws")
    plan = scoring.plan_score(ws, tiny_run, n=16)
    kept = scoring.keep_score(ws, plan, _report(16), Path("/data/images"), 1.234)
    assert kept.recorded == ws.root / "scores.jsonl"
    line = json.loads(kept.recorded.read_text().splitlines()[-1])
    assert line["score_fd"] == 1.2346 and line["seeds"] == "0-15" and line["images"] == "/data/images"
    out = kept.to_dict()
    assert list(out)[-4:] == ["checkpoint", "images", "seeds", "seconds"]
    assert out["seeds"] == "0-15" and out["seconds"] == 1.23 and out["score"]["fd"] == 1.23456


def test_a_workspace_that_cannot_be_written_loses_only_the_record(tiny_run, tmp_path):
    blocked = tmp_path / "ws"
    blocked.write_text("a file where the workspace folder would be")
    plan = scoring.plan_score(Workspace(tmp_path / "elsewhere"), tiny_run, n=16)
    warnings: list[str] = []
    kept = scoring.keep_score(Workspace(blocked), plan, _report(16), Path("x"), 0.5, warn=warnings.append)
    assert kept.recorded is None and kept.report.score.fd == 1.23456
    assert len(warnings) == 1 and "the score was not recorded for 'latentctl runs show'" in warnings[0]


def test_inception_features_follow_the_model_to_its_gpu_and_the_builtin_ones_stay_on_the_cpu():
    import torch

    inception = FeatureSpace("inception", 2048, 299, "weights.safetensors")
    builtin = FeatureSpace("builtin", 560, 64)
    assert scoring.space_on(inception, torch.device("cuda")).device == "cuda"
    assert scoring.space_on(inception, torch.device("cpu")).device == "cpu"
    assert scoring.space_on(builtin, torch.device("cuda")) == builtin
