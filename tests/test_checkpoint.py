import json
import pickle
import struct
import subprocess
import sys

import pytest
import torch

from latentctl import checkpoint
from latentctl.config import ModelConfig, TrainConfig
from latentctl.errors import CheckpointError
from latentctl.models import build_models

CFG = ModelConfig(image_size=32, width=8, latent_dim=8)


def _trained_pair():
    torch.manual_seed(0)
    G, D = build_models(CFG)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    D(G(torch.randn(4, 8))).mean().backward()
    opt_g.step()
    opt_d.step()
    return G, D, {"G": opt_g, "D": opt_d}


def test_training_checkpoint_round_trips_weights_optimizers_and_config(tmp_path):
    G, D, opts = _trained_pair()
    path = checkpoint.save(tmp_path / "c.safetensors", generator=G, partner=D, optimizers=opts,
                           model_config=CFG, train_config=TrainConfig(epochs=3), state={"epoch": 2}, run_id="r1")
    loaded = checkpoint.load(path, training=True)
    for a, b in zip(G.state_dict().values(), loaded.generator.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(D.state_dict().values(), loaded.discriminator.state_dict().values()):
        assert torch.equal(a, b)
    G2, D2 = build_models(CFG)
    new_opts = {"G": torch.optim.Adam(G2.parameters()), "D": torch.optim.Adam(D2.parameters())}
    loaded.restore_optimizers(new_opts)
    for name in ("G", "D"):
        s_old, s_new = opts[name].state_dict()["state"], new_opts[name].state_dict()["state"]
        assert s_old.keys() == s_new.keys()
        for k in s_old:
            assert torch.equal(s_old[k]["exp_avg_sq"], s_new[k]["exp_avg_sq"])
    info = loaded.info
    assert info.model == CFG and info.train.epochs == 3 and info.state == {"epoch": 2} and info.run_id == "r1"


def test_header_is_readable_without_torch(tmp_path):
    G, _, _ = _trained_pair()
    path = checkpoint.save(tmp_path / "g.safetensors", generator=G, model_config=CFG)
    code = (
        "import sys; from latentctl.checkpoint import read_header; "
        f"h = read_header({str(path)!r}); assert 'torch' not in sys.modules; print(h.model.latent_dim, h.kind)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["8", "generator"]
    # and with the standard library alone, as docs/checkpoint-format.md shows
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n))["__metadata__"]
    assert json.loads(meta["model_config"])["latent_dim"] == 8
    assert meta["format"] == "latentctl-checkpoint" and meta["format_version"] == "1"


def test_model_id_changes_with_weights():
    G, _, _ = _trained_pair()
    before = checkpoint.model_id_of(G)
    with torch.no_grad():
        G.fc.bias.add_(1e-3)
    assert checkpoint.model_id_of(G) != before


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_suffixes_are_refused_without_unpickling(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    path = tmp_path / f"model{suffix}"
    # a pickle that would create a file if it were ever loaded
    path.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(CheckpointError, match="pickle"):
        checkpoint.load(path)
    assert not marker.exists()


def test_pickle_content_under_a_safetensors_name_is_refused(tmp_path):
    path = tmp_path / "sneaky.safetensors"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="pickled"):
        checkpoint.read_header(path)


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    G, _, _ = _trained_pair()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, generator=G, model_config=CFG, state={"epoch": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):  # the moment between writing the temp file and renaming it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", crash)
    with torch.no_grad():
        G.fc.bias.add_(1.0)
    with pytest.raises(OSError):
        checkpoint.save(path, generator=G, model_config=CFG, state={"epoch": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left behind


@pytest.mark.parametrize(
    "content, message",
    [(b"", "too short"), (b"\x05\x00\x00\x00\x00\x00\x00\x00{}", "header length"), (b"hello world, not a model", "not a safetensors")],
)
def test_malformed_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.read_header(path)


def test_foreign_safetensors_file_is_named_as_such(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a latentctl checkpoint"):
        checkpoint.read_header(path)


def test_newer_format_asks_for_an_upgrade(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "latentctl-checkpoint", "format_version": "99", "model_config": "{}"})
    with pytest.raises(CheckpointError, match="upgrade latentctl"):
        checkpoint.read_header(path)


def test_wrapped_module_names_are_fixed_up_in_one_place(tmp_path):
    """Checkpoints written from torch.compile / DDP-wrapped modules still load."""
    from safetensors.torch import save_file

    G, _, _ = _trained_pair()
    good = checkpoint.save(tmp_path / "g.safetensors", generator=G, model_config=CFG)
    meta = checkpoint.read_header(good).raw_metadata
    wrapped = {f"G._orig_mod.{k}": v.contiguous() for k, v in G.state_dict().items()}
    path = tmp_path / "wrapped.safetensors"
    save_file(wrapped, str(path), metadata=meta)
    loaded = checkpoint.load(path)
    assert torch.equal(loaded.generator.fc.weight, G.fc.weight)


def test_generator_only_checkpoint_cannot_resume(tmp_path):
    G, _, _ = _trained_pair()
    path = checkpoint.save(tmp_path / "g.safetensors", generator=G, model_config=CFG)
    with pytest.raises(CheckpointError, match="only a generator"):
        checkpoint.load(path, training=True)


def test_a_run_folder_loads_its_checkpoint_and_other_folders_are_named(tmp_path):
    G, D, opts = _trained_pair()
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.save(run / "checkpoint.safetensors", generator=G, partner=D, optimizers=opts,
                    model_config=CFG, train_config=TrainConfig(), state={"epoch": 1}, run_id="r")
    assert checkpoint.read_header(run).run_id == "r"
    loaded = checkpoint.load(run)
    for a, b in zip(G.state_dict().values(), loaded.generator.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="folder without checkpoint.safetensors"):
        checkpoint.load(tmp_path)
