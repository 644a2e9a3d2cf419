import json
import pickle
import struct
import subprocess
import sys

import pytest
import torch
from conftest import tiny

from latentctl.config import TrainConfig
from latentctl.errors import CheckpointError
from latentctl.files import checkpoint
from latentctl.models import build_models

# the tiny model at width 8: the messages below name this config's shapes (G.fc is [8 x 8 x 8, 8] = [512, 8])
CFG = tiny(width=8)


def _trained_pair():
    torch.manual_seed(0)
    G, D = build_models(CFG)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    D(G(torch.randn(4, 8))).mean().backward()
    opt_g.step()
    opt_d.step()
    return G, D, {"G": opt_g, "D": opt_d}


def _state(epoch: int = 1) -> dict:
    """A training state with every key resume reads (training.py writes the same)."""
    return {
        "epoch": epoch,
        "step_in_epoch": 0,
        "global_step": 3 * epoch,
        "steps_per_epoch": 3,
        "elapsed_s": 1.5,
        "finished": False,
        "rng": {"torch": checkpoint.encode_rng(torch.get_rng_state())},
        "data": {"root": "/data/faces", "fingerprint": "abc123", "count": 12, "skipped": 0},
    }


def test_training_checkpoint_round_trips_weights_optimizers_and_config(tmp_path):
    G, D, opts = _trained_pair()
    state = _state(2)
    path = checkpoint.save(
        tmp_path / "c.safetensors",
        generator=G,
        partner=D,
        optimizers=opts,
        model_config=CFG,
        train_config=TrainConfig(epochs=3),
        state=state,
        run_id="r1",
    )
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
    assert info.model == CFG and info.train.epochs == 3 and info.state == state and info.run_id == "r1"


def test_header_is_readable_without_torch(tmp_path):
    G, _, _ = _trained_pair()
    path = checkpoint.save(tmp_path / "g.safetensors", generator=G, model_config=CFG)
    code = (
        "import sys; from latentctl.files.checkpoint import read_header; "
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
    [
        (b"", "too short"),
        (b"\x05\x00\x00\x00\x00\x00\x00\x00{}", "header length"),
        (b"hello world, not a model", "not a safetensors"),
    ],
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
    save_file(
        {"w": torch.zeros(2)},
        str(path),
        metadata={"format": "latentctl-checkpoint", "format_version": "99", "model_config": "{}"},
    )
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
    checkpoint.save(
        run / "checkpoint.safetensors",
        generator=G,
        partner=D,
        optimizers=opts,
        model_config=CFG,
        train_config=TrainConfig(),
        state=_state(1),
        run_id="r",
    )
    assert checkpoint.read_header(run).run_id == "r"
    loaded = checkpoint.load(run)
    for a, b in zip(G.state_dict().values(), loaded.generator.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="folder without checkpoint.safetensors"):
        checkpoint.load(tmp_path)


# ---- recognising safetensors by its structure, not its first byte -------------------------------


def _raw_file(path, header: dict, data: bytes = b"", pad_to: int | None = None):
    """Write a safetensors file by hand, with a header of exactly ``pad_to`` bytes (padded with
    trailing spaces, which the format allows): safetensors' own writer only makes multiples of 8."""
    text = json.dumps(header).encode()
    if pad_to is not None:
        assert len(text) <= pad_to
        text += b" " * (pad_to - len(text))
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


# Every low byte of the header length, and lengths whose first bytes spell a pickle's opening
# (0x80, protocol 2-5) or a zip's "PK" (0x4B50).
HEADER_LENGTHS = [512 + r for r in range(256)] + [0x280, 0x380, 0x480, 0x580, 0x4B50]


def test_every_header_length_is_read_as_safetensors(tmp_path):
    entry = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    for n in HEADER_LENGTHS:
        path = _raw_file(tmp_path / f"h{n}.safetensors", {"__metadata__": {"pad": "x"}, **entry}, bytes(8), pad_to=n)
        assert path.read_bytes()[:8] == struct.pack("<Q", n)
        assert checkpoint.read_raw_header(path)["w"]["shape"] == [2], n
    # the lengths the bug refused: the file starts like a pickle (or a zip), yet is safetensors
    assert (tmp_path / "h640.safetensors").read_bytes()[:2] == b"\x80\x02"
    assert (tmp_path / f"h{0x4B50}.safetensors").read_bytes()[:2] == b"PK"


def _save_with_header_low_byte(path, low: int, **kwargs):
    """Save a real checkpoint, lengthening its run id until the header length ends in ``low``."""
    pad = 0
    for _ in range(8):
        checkpoint.save(path, run_id="r" * pad, **kwargs)
        (n,) = struct.unpack("<Q", path.read_bytes()[:8])
        if n % 256 == low:
            return path
        pad += (low - n) % 256 or 256  # safetensors pads the header to 8 bytes: aim, then adjust
    raise AssertionError(f"could not reach a header length ending in {low:#x}")


def test_real_checkpoints_whose_header_length_ends_in_0x80_load(tmp_path):
    """Regression: 1 checkpoint in 32 has a header length like 0x3480, so its first byte is 0x80,
    and was refused as a pickle by every command: info, sample, export and --resume."""
    G, D, opts = _trained_pair()
    gen = _save_with_header_low_byte(tmp_path / "g.safetensors", 0x80, generator=G, model_config=CFG)
    full = _save_with_header_low_byte(
        tmp_path / "c.safetensors",
        0x80,
        generator=G,
        partner=D,
        optimizers=opts,
        model_config=CFG,
        train_config=TrainConfig(),
        state=_state(1),
    )
    for path in (gen, full):
        assert path.read_bytes()[:1] == b"\x80"
        assert checkpoint.read_header(path).model == CFG
    assert torch.equal(checkpoint.load(gen).generator.fc.weight, G.fc.weight)
    loaded = checkpoint.load(full, training=True)
    assert torch.equal(loaded.discriminator.fc.weight, D.fc.weight)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_real_pickle_under_a_safetensors_name_is_refused_without_unpickling(tmp_path, protocol):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=protocol))
    for read in (checkpoint.read_header, checkpoint.load):
        with pytest.raises(CheckpointError, match=f"Python pickle \\(protocol {protocol}"):
            read(path)
    assert not marker.exists()


def test_a_torch_save_zip_under_a_safetensors_name_is_refused_by_load(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.safetensors"
    torch.save({"x": _Exploit(str(marker))}, path)
    with pytest.raises(CheckpointError, match="zip archive"):
        checkpoint.load(path)
    assert not marker.exists()


# ---- hostile or damaged checkpoints: one line, naming the file and what is wrong --------------


def _parts(path):
    """(metadata, tensors) of a saved checkpoint, to write altered copies of it."""
    from safetensors.torch import load_file

    return checkpoint.read_raw_header(path)["__metadata__"], load_file(str(path))


@pytest.fixture(scope="module")
def _training_parts(tmp_path_factory):
    G, D, opts = _trained_pair()
    path = checkpoint.save(
        tmp_path_factory.mktemp("ckpt") / "c.safetensors",
        generator=G,
        partner=D,
        optimizers=opts,
        model_config=CFG,
        train_config=TrainConfig(),
        state=_state(1),
    )
    return _parts(path)


def _write_edited(tmp_path, parts, edit):
    """A copy of the training checkpoint with ``edit(meta, tensors)`` applied (tensors are replaced,
    never changed in place, so shallow copies keep the module's original intact)."""
    from safetensors.torch import save_file

    meta, tensors = dict(parts[0]), dict(parts[1])
    edit(meta, tensors)
    path = tmp_path / "hostile.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _meta_json(key, change):
    def edit(meta, tensors):
        value = json.loads(meta[key])
        meta[key] = json.dumps(change(value))

    return edit


def _set(key, value):
    def edit(meta, tensors):
        meta[key] = value

    return edit


def _tensor(name, value):
    def edit(meta, tensors):
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value

    return edit


def _drop_state(*keys):
    def change(state):
        for key in keys[:-1]:
            state = state[key]
        del state[keys[-1]]

    return lambda st: (change(st), st)[1]


HOSTILE = [
    # tensors that do not fit the file's own config
    (
        _tensor("G.fc.weight", torch.zeros(3, 4)),
        r"G\.fc\.weight has shape \[3, 4\] but the config \(gan 32px, width 8, latent 8\) needs \[512, 8\]",
    ),
    (_tensor("D.fc.bias", None), r"lacks D\.fc\.bias, which the config .* needs"),
    (_tensor("G.extra.weight", torch.zeros(2)), r"holds G\.extra\.weight, which the model"),
    (_tensor("G.fc.bias", torch.zeros(512, dtype=torch.int32)), r"G\.fc\.bias is I32, not floating-point"),
    (_tensor("G.module.fc.bias", torch.zeros(512)), r"holds G\.fc\.bias twice"),
    # metadata that is JSON but not what it should be
    (_set("model_config", "[1, 2]"), r"'model_config' is not a JSON object"),
    (_set("model_config", "{not json"), r"'model_config' is not valid JSON"),
    (_meta_json("model_config", lambda c: {**c, "width": 8.5}), r"has width = 8.5, which is not an integer"),
    (
        _meta_json("model_config", lambda c: {**c, "latent_dim": True}),
        r"has latent_dim = true, which is not an integer",
    ),
    (_meta_json("model_config", lambda c: {**c, "channels": 0}), r"invalid ModelConfig: channels"),
    (_meta_json("train_config", lambda c: {**c, "lr": "fast"}), r"'train_config' has lr = fast, which is not a number"),
    (_set("kind", "weights"), r"kind weights is neither"),
    (_set("format_version", "0"), r"format_version 0 is not valid"),
    # a training checkpoint that resume could not continue from
    (_set("training_state", "{}"), r"training checkpoint whose training_state lacks 'epoch'; it cannot be resumed"),
    (_set("training_state", "[]"), r"'training_state' is not a JSON object"),
    (_meta_json("training_state", _drop_state("step_in_epoch")), r"lacks 'step_in_epoch'"),
    (_meta_json("training_state", _drop_state("rng")), r"lacks 'rng'"),
    (_meta_json("training_state", _drop_state("data", "root")), r"training_state\.data lacks 'root'"),
    (_meta_json("training_state", _drop_state("data", "fingerprint")), r"training_state\.data lacks 'fingerprint'"),
    (_meta_json("training_state", lambda s: {**s, "epoch": -1}), r"training_state\.epoch = -1 is not valid"),
    (_meta_json("training_state", lambda s: {**s, "data": "here"}), r"training_state\.data = here is not valid"),
    (_meta_json("training_state", lambda s: {**s, "rng": {"torch": "%%%"}}), r"rng\.torch is not a base64 RNG state"),
    (_meta_json("training_state", lambda s: {**s, "rng": {"torch": "AAAA"}}), r"rng\.torch holds 3 bytes"),
    (lambda meta, tensors: meta.pop("optimizers"), r"metadata lacks 'optimizers'"),
    (_set("optimizers", '{"G": {"param_groups": 5}}'), r"optimizer G's param_groups are malformed"),
    (_tensor("opt.G.0.nonsense", torch.zeros(1)), None),  # an unknown key is ignored, as torch ignores it
    (_tensor("opt.G.x.exp_avg", torch.zeros(1)), r"opt\.G\.x\.exp_avg is not named opt\.<optimizer>\.<index>\.<key>"),
    (_tensor("opt.Q.0.exp_avg", torch.zeros(1)), r"opt\.Q\.0\.exp_avg is not named"),
    (_tensor("opt.G.99.exp_avg", torch.zeros(1)), r"opt\.G\.99\.exp_avg is for a parameter optimizer G does not have"),
]


@pytest.mark.parametrize("edit, message", HOSTILE, ids=[m or "accepted" for _, m in HOSTILE])
def test_a_hostile_training_checkpoint_is_refused_with_one_line(tmp_path, _training_parts, edit, message):
    path = _write_edited(tmp_path, _training_parts, edit)
    if message is None:
        checkpoint.load(path, training=True)
        return
    with pytest.raises(CheckpointError, match=message) as err:
        checkpoint.load(path, training=True)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def _only_optimizer_g(meta, tensors):
    meta["optimizers"] = json.dumps({"G": json.loads(meta["optimizers"])["G"]})
    for name in [n for n in tensors if n.startswith("opt.D.")]:
        del tensors[name]


def _fresh_optimizers():
    G, D = build_models(CFG)
    return {"G": torch.optim.Adam(G.parameters()), "D": torch.optim.Adam(D.parameters())}


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            _tensor("opt.G.0.exp_avg", torch.zeros(3)),
            r"opt\.G\.0\.exp_avg has shape \[3\] but its parameter needs \[512, 8\]",
        ),
        (_tensor("opt.G.0.step", torch.zeros(2)), r"opt\.G\.0\.step has shape \[2\] but its parameter needs \[\]"),
        (_tensor("opt.D.1.exp_avg_sq", None), r"optimizer D's state for parameter 1 lacks exp_avg_sq"),
        (
            _meta_json(
                "optimizers",
                lambda o: {**o, "G": {"param_groups": [{**o["G"]["param_groups"][0], "params": [*range(8), 99]}]}},
            ),
            r"optimizer G holds 9 parameters but the model's has 8",
        ),
        (
            _meta_json(
                "optimizers", lambda o: {**o, "G": {"param_groups": [{**o["G"]["param_groups"][0], "lr": "x"}]}}
            ),
            r"optimizer G's lr is missing or not a number",
        ),
        (
            _meta_json(
                "optimizers",
                lambda o: {**o, "G": {"param_groups": [{**o["G"]["param_groups"][0], "capturable": True}]}},
            ),
            r"saved with capturable=True",
        ),
        (_only_optimizer_g, r"no optimizer state for D"),
    ],
)
def test_optimizer_state_that_does_not_fit_is_refused_before_training(tmp_path, _training_parts, edit, message):
    path = _write_edited(tmp_path, _training_parts, edit)
    loaded = checkpoint.load(path, training=True)
    with pytest.raises(CheckpointError, match=message) as err:
        loaded.restore_optimizers(_fresh_optimizers())
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_generator_checkpoint_with_a_wrong_tensor_is_refused_by_every_reader(tmp_path):
    from safetensors.torch import save_file

    G, _, _ = _trained_pair()
    good = checkpoint.save(tmp_path / "g.safetensors", generator=G, model_config=CFG)
    meta, tensors = _parts(good)
    tensors["G.to_rgb.weight"] = torch.zeros(3, 8, 4, 4)
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata=meta)
    checkpoint.read_header(path)  # the header alone is a fine header: `info` still describes it
    with pytest.raises(
        CheckpointError,
        match=r"G\.to_rgb\.weight has shape \[3, 8, 4, 4\] but .* needs \[3, 8, 8, 8\]; the file does not match its own config",
    ):
        checkpoint.load(path)


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
LATENTCTL_META = {"format": "latentctl-checkpoint", "format_version": "1", "model_config": "{}"}


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"__metadata__": ["format"], "w": ENTRY}, bytes(8), r"__metadata__ is not a map of strings"),
        (
            {"__metadata__": {**LATENTCTL_META, "format_version": 1}, "w": ENTRY},
            bytes(8),
            r"__metadata__ is not a map of strings",
        ),
        ({"w": "F32"}, bytes(8), r"tensor w has no dtype/shape/data_offsets entry"),
        ({"w": {**ENTRY, "dtype": "F33"}}, bytes(8), r"tensor w has unknown dtype F33"),
        ({"w": {**ENTRY, "shape": [-2]}}, bytes(8), r"tensor w has an invalid shape \[-2\]"),
        ({"w": {**ENTRY, "shape": [2.0]}}, bytes(8), r"tensor w has an invalid shape"),
        ({"w": {**ENTRY, "data_offsets": [8, 0]}}, bytes(8), r"tensor w has invalid data_offsets \[8, 0\]"),
        (
            {"w": {**ENTRY, "data_offsets": [0, 16], "shape": [4]}},
            bytes(8),
            r"tensor w ends at data byte 16 but the file holds only 8; is it truncated\?",
        ),
        ({"w": {**ENTRY, "shape": [3]}}, bytes(8), r"tensor w is F32 \[3\], which does not fill its 8 data bytes"),
        ({"w": ENTRY, "v": ENTRY}, bytes(8), r"starts at data byte 0, not 8: tensors overlap or leave a gap"),
        ({"w": {**ENTRY, "data_offsets": [4, 12]}}, bytes(12), r"starts at data byte 4, not 0"),
        ({"w": ENTRY}, bytes(12), r"cover 8 of the 12 data bytes"),
        ({"w\nx": {**ENTRY, "dtype": "X"}}, bytes(8), r"tensor w\\nx has unknown dtype"),
    ],
)
def test_malformed_tensor_entries_are_named(tmp_path, header, data, message):
    path = _raw_file(tmp_path / "bad.safetensors", header, data)
    for read in (checkpoint.read_raw_header, checkpoint.read_header, checkpoint.load):
        with pytest.raises(CheckpointError, match=message) as err:
            read(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_deeply_nested_json_is_not_a_crash(tmp_path):
    path = _raw_file(tmp_path / "deep.safetensors", {})
    text = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(CheckpointError, match="header is not JSON"):
        checkpoint.read_header(path)


def test_save_refuses_a_training_checkpoint_resume_could_not_use(tmp_path):
    G, D, opts = _trained_pair()
    with pytest.raises(CheckpointError, match="refusing to write .* lacks 'step_in_epoch'"):
        checkpoint.save(
            tmp_path / "c.safetensors",
            generator=G,
            partner=D,
            optimizers=opts,
            model_config=CFG,
            train_config=TrainConfig(),
            state={"epoch": 1},
        )
    assert not (tmp_path / "c.safetensors").exists()
