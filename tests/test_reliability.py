"""Faults a user meets (full disk, read-only folders, crashes mid-write, odd file names) end in one
line, the right exit code and nothing lost (docs/reliability.md)."""

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, blob_images, run, write_images
from PIL import Image

from latentctl.files import checkpoint, fsutil

RUN = "0001-images-32px"


def one_error_line(res) -> str:
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


# ---- permissions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_permissions_open_would_give(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        fsutil.atomic_write_text(tmp_path / "a.txt", "x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected


def test_replacing_a_file_keeps_its_mode(tmp_path):
    target = tmp_path / "shared.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    fsutil.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_checkpoints_grids_and_samples_are_readable_by_the_group(image_folder, workspace):
    old = os.umask(0o022)
    try:
        run("train", image_folder, *TINY_MODEL, "--epochs", "1")
        out = Path(run("sample", "-n", "2").stdout.strip().splitlines()[-1]).parent
    finally:
        os.umask(old)
    run_dir = workspace / "runs" / RUN
    for p in [run_dir / "checkpoint.safetensors", *run_dir.glob("grids/*.png"), *out.iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


# ---- a full disk, a read-only folder -------------------------------------------------------------


def _failing_writer(real, fail_on: int, err: OSError):
    """atomic_writer that writes part of the file and then fails like a full disk on call fail_on."""
    calls = {"n": 0}

    def writer(path, **kw):
        calls["n"] += 1
        if calls["n"] < fail_on:
            return real(path, **kw)

        class Broken:
            def __enter__(self):
                self.ctx = real(path, **kw)
                f = self.ctx.__enter__()
                f.write(b"half a checkpoint")
                try:
                    raise err
                except OSError as e:
                    self.ctx.__exit__(type(e), e, e.__traceback__)
                    raise

            def __exit__(self, *exc):
                return False

        return Broken()

    return writer


def test_disk_full_on_a_later_checkpoint_keeps_the_last_one_and_says_so(image_folder, workspace, monkeypatch):
    no_space = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint, "atomic_writer", _failing_writer(fsutil.atomic_writer, 2, no_space))
    res = run("train", image_folder, *TINY_MODEL, "--epochs", "3", "--checkpoint-every", "1", code=1)
    line = one_error_line(res)
    assert "no space left on the device" in line
    assert "the last checkpoint, epoch 1, is intact" in line and "free space and resume" in line
    assert "resume with: latentctl train --resume" in res.output
    run_dir = workspace / "runs" / RUN
    assert temp_files(run_dir) == []
    assert checkpoint.read_header(run_dir).state["epoch"] == 1  # the previous checkpoint, whole
    assert (workspace / "current").read_text().strip() == str(run_dir.resolve())


def test_disk_full_on_the_first_checkpoint_says_none_was_written(image_folder, workspace, monkeypatch):
    no_space = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint, "atomic_writer", _failing_writer(fsutil.atomic_writer, 1, no_space))
    line = one_error_line(run("train", image_folder, *TINY_MODEL, "--epochs", "1", code=1))
    assert "no space left on the device" in line and "no checkpoint was written yet" in line
    assert temp_files(workspace) == []
    assert not (workspace / "current").exists()  # a run without a checkpoint never becomes current


def test_disk_full_while_caching_images_is_one_line(image_folder, workspace, monkeypatch):
    import latentctl.pictures.data as data

    def short_write(f, arr):
        f.write(b"\x93NUMPY partial")
        raise OSError("147456 requested and 65408 written")  # what numpy raises on a full disk

    monkeypatch.setattr(data.np, "save", short_write)
    line = one_error_line(run("train", image_folder, *TINY_MODEL, "--epochs", "1", code=1))
    assert "image cache" in line and "no space left on the device" in line and str(workspace / "cache") in line
    assert temp_files(workspace) == []


def test_a_read_only_output_folder_is_one_line(image_folder, workspace, monkeypatch):
    run("train", image_folder, *TINY_MODEL, "--epochs", "1")
    import latentctl.pictures.grid as grid

    def read_only(path, data, **kw):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(grid, "atomic_write_bytes", read_only)
    line = one_error_line(run("sample", "-n", "2", code=1))
    assert "read-only" in line and "seed0000.png" in line


def test_a_workspace_that_is_a_file_is_a_usage_error(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    line = one_error_line(run("latents", "list", "--workspace", f, code=2))
    assert "is a file, not a folder" in line


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00binary", b"", b"/a\x00b\n"])
def test_a_damaged_current_marker_is_named(workspace, garbage):
    workspace.mkdir(exist_ok=True)
    (workspace / "current").write_bytes(garbage)
    line = one_error_line(run("sample", "-n", "1", code=2))
    assert "current-run marker" in line and "damaged" in line


# ---- crash leftovers -----------------------------------------------------------------------------


def test_resume_drops_a_torn_metrics_line_and_stale_temp_files(image_folder, workspace):
    run("train", image_folder, *TINY_MODEL, "--epochs", "1")
    run_dir = workspace / "runs" / RUN
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "global_st')  # a crash mid-write
    stale = run_dir / ".checkpoint.safetensors.k1ll3d.tmp"  # SIGKILL between write and rename
    stale.write_bytes(b"partial")
    res = run("train", "--resume", run_dir, "--epochs", "2")
    assert "dropped 1 torn line" in res.output
    assert not stale.exists()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records] == list(range(1, len(records) + 1))
    assert checkpoint.read_header(run_dir).state["epoch"] == 2


def test_a_run_that_fails_before_its_first_checkpoint_does_not_become_current(tmp_path, image_folder, workspace):
    run("train", image_folder, *TINY_MODEL, "--epochs", "1")
    good = (workspace / "current").read_text()
    few = write_images(tmp_path / "few", blob_images(3))
    line = one_error_line(run("train", few, *TINY_MODEL, "--epochs", "1", code=1))
    assert "fewer than one batch" in line
    assert (workspace / "current").read_text() == good
    run("sample", "-n", "1")  # the previous run still answers a bare sample


# ---- names and messages --------------------------------------------------------------------------


def test_file_names_that_are_not_utf8_or_hold_newlines_train_or_are_listed_on_one_line(tmp_path, workspace):
    folder = write_images(tmp_path / "odd", blob_images(32))
    Image.fromarray(blob_images(1, seed=5)[0]).save(os.fsencode(folder) + b"/caf\xe9.png")  # Latin-1 name
    (folder / "bad\nname.png").write_bytes(b"not an image")
    (folder / "tab\tname.png").write_bytes(b"")
    res = run("train", folder, *TINY_MODEL, "--epochs", "1")
    assert "33 images" in res.output  # the Latin-1 picture is used
    lines = (workspace / "runs" / "0001-odd-32px" / "skipped.txt").read_text().splitlines()
    assert lines == [
        "bad\\nname.png\tunreadable\tnot a JPEG, PNG, WebP or BMP image",
        "tab\\tname.png\tempty\tthe file is empty (0 bytes)",
    ]


def test_display_names_are_unambiguous():
    assert fsutil.display_name("caf\udce9.png") == "caf\\xe9.png"
    assert fsutil.display_name("a\nb\\c") == "a\\nb\\\\c"
    assert fsutil.display_name("café ☺.png") == "café ☺.png"
    assert fsutil.display_name("a\\nb") != fsutil.display_name("a\nb")


def test_a_huge_picture_is_skipped_in_latentctls_words_without_pillows_warning(tmp_path, workspace, recwarn):
    folder = write_images(tmp_path / "big", blob_images(32))
    # 100.5 million pixels: above latentctl's limit (100 M) and Pillow's warning limit (89 M).
    Image.new("1", (10025, 10025)).save(folder / "huge.png")
    res = run("train", folder, *TINY_MODEL, "--epochs", "1")
    assert "DecompressionBomb" not in res.output and "PIL" not in res.output
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    skipped = (workspace / "runs" / "0001-big-32px" / "skipped.txt").read_text()
    assert skipped.startswith(
        "huge.png\toversized\t10025x10025 is 100,500,625 pixels, more than the limit of 100,000,000"
    )


def test_messages_with_brackets_are_printed_whole(tmp_path):
    # The edge prints with rich markup on; a message naming ['G.x'] must not lose its brackets.
    bad = tmp_path / "x[1].safetensors"
    line = one_error_line(run("info", bad, code=1))
    assert "x[1].safetensors" in line


def test_memory_errors_are_one_line(monkeypatch, image_folder):
    import latentctl.pictures.data as data

    def no_memory(*a, **k):
        raise MemoryError

    monkeypatch.setattr(data, "prepare_dataset", no_memory)
    line = one_error_line(run("train", image_folder, *TINY_MODEL, code=1))
    assert "out of memory" in line


def test_skipped_list_round_trips_every_name(tmp_path):
    from latentctl.pictures.data import Skipped, write_skipped_list

    names = ["a\nb.png", "a\\nb.png", "x\udcff.png", "ok.png"]
    path = write_skipped_list(tmp_path, [Skipped(n, "unreadable", "bad") for n in names])
    lines = path.read_text().splitlines()
    assert len(lines) == len(names) and len({line.split("\t")[0] for line in lines}) == len(names)
    assert np.all([line.count("\t") == 2 for line in lines])


def test_a_stop_is_said_once_and_not_as_an_error(capsys):
    import typer

    from latentctl.cli.common import handles_errors
    from latentctl.errors import TrainingInterrupted

    @handles_errors
    def stopped(reported: bool):
        err = TrainingInterrupted("stopped at epoch 2, step 3 of 8; checkpoint saved to x")
        err.reported = reported
        raise err

    for reported, expected in ((False, 1), (True, 0)):
        with pytest.raises(typer.Exit) as exit_:
            stopped(reported)
        assert exit_.value.exit_code == 130
        err = capsys.readouterr().err
        assert err.count("stopped at epoch 2") == expected and "Error" not in err


# ---- failed commands leave no empty folders ------------------------------------------------------


def test_a_failed_command_leaves_no_empty_numbered_folder(tmp_path, image_folder, workspace, tiny_run, monkeypatch):
    few = write_images(tmp_path / "few", blob_images(3))
    run("train", few, *TINY_MODEL, "--epochs", "1", code=1)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())

    import latentctl.space.encode

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(latentctl.space.encode, "encode_images", stopped)
    photo = write_images(tmp_path / "photo", blob_images(1))
    out = tmp_path / "new" / "encoded"
    for extra in ([], ["--out", str(out)]):
        run("encode", photo, "--model", tiny_run, *extra, code=130)
    assert not (workspace / "outputs").exists() or not any((workspace / "outputs").iterdir())
    assert not out.exists() and not out.parent.exists()  # nor the parent --out made
    # A folder that already held something, or that the user made, is never removed.
    out.mkdir(parents=True)
    run("encode", photo, "--model", tiny_run, "--out", str(out), code=130)
    assert out.is_dir()


def test_tidying_removes_only_what_the_command_made_and_left_empty(tmp_path):
    from latentctl.files.workspace import Workspace, tidy_on_failure

    ws = Workspace(tmp_path / "ws")
    with pytest.raises(RuntimeError), tidy_on_failure():
        empty = ws.new_output_dir("sample")
        full = ws.new_output_dir("sample")
        (full / "seed0000.png").write_bytes(b"x")
        raise RuntimeError
    assert not empty.exists() and full.exists()
    with tidy_on_failure():  # success: nothing is touched
        done = ws.new_output_dir("sample")
    assert done.is_dir()
