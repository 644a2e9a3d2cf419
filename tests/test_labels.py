"""Tests for latentctl.pictures.labels: label CSVs, UTKFace-style file names and CLI conditions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentctl.errors import DataError, UsageError
from latentctl.pictures.labels import (
    UTKFACE_PATTERN,
    Labels,
    labels_from_names,
    read_labels_csv,
    select,
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)
    return path


# --- read_labels_csv -----------------------------------------------------------------------------


def test_csv_header_columns_and_values(tmp_path):
    csv = write(tmp_path / "labels.csv", "file,age,gender\na.jpg,25,0\nb.jpg,61.5,1\n")
    labels = read_labels_csv(csv)
    assert labels.names == ["age", "gender"]
    assert labels.values == {"a.jpg": {"age": 25.0, "gender": 0.0}, "b.jpg": {"age": 61.5, "gender": 1.0}}
    assert labels.excluded == {}
    assert labels.summary() == "2 labelled images; columns age, gender"


@pytest.mark.parametrize("name", ["filename", "Path", "IMAGE", "file_name"])
def test_csv_file_column_found_by_name_anywhere(tmp_path, name):
    csv = write(tmp_path / "labels.csv", f"age,{name},smile\n30,x/a.png,1\n")
    labels = read_labels_csv(csv)
    assert labels.names == ["age", "smile"]
    assert labels.values == {"x/a.png": {"age": 30.0, "smile": 1.0}}


def test_csv_first_column_is_files_without_a_known_name(tmp_path):
    csv = write(tmp_path / "labels.csv", "picture,age\na.jpg,3\n")
    assert read_labels_csv(csv).values == {"a.jpg": {"age": 3.0}}


def test_csv_bool_words_and_number_forms(tmp_path):
    csv = write(
        tmp_path / "labels.csv",
        "file,glasses,smile,score\na.jpg,true,Yes,1e2\nb.jpg,FALSE,no,-.5\nc.jpg, True , NO ,+3.\n",
    )
    values = read_labels_csv(csv).values
    assert values["a.jpg"] == {"glasses": 1.0, "smile": 1.0, "score": 100.0}
    assert values["b.jpg"] == {"glasses": 0.0, "smile": 0.0, "score": -0.5}
    assert values["c.jpg"] == {"glasses": 1.0, "smile": 0.0, "score": 3.0}


def test_csv_missing_and_non_numeric_cells_are_counted_per_file(tmp_path):
    csv = write(
        tmp_path / "labels.csv",
        "file,age,gender\n"
        "a.jpg,25,0\n"
        "b.jpg,,1\n"  # empty cell
        "c.jpg,NaN,1\n"  # how pandas writes a missing value
        "d.jpg,old,1\n"  # text
        "e.jpg,inf,\n"  # not finite, then missing: counted once, under the first problem
        "f.jpg,40\n"  # short row: gender missing
        "g.jpg,1_000,0\n",  # float() would take this; a label file should not
    )
    labels = read_labels_csv(csv)
    assert labels.excluded == {"missing field": 3, "not numeric": 3}
    assert labels.values["b.jpg"] == {"gender": 1.0}
    assert labels.values["d.jpg"] == {"gender": 1.0}
    assert labels.values["f.jpg"] == {"age": 40.0}
    assert "e.jpg" not in labels.values  # nothing usable left
    assert labels.summary() == (
        "6 labelled images (labels left out for 6 files: 3 missing field, 3 not numeric); columns age, gender"
    )
    ages = labels.column(["a.jpg", "b.jpg", "e.jpg", "f.jpg", "zzz.jpg"], "age")
    np.testing.assert_array_equal(ages, [25.0, np.nan, np.nan, 40.0, np.nan])


def test_csv_text_only_column_is_ignored_not_counted(tmp_path):
    csv = write(tmp_path / "labels.csv", "file,note,age\na.jpg,blurry,3\nb.jpg,,4\n")
    labels = read_labels_csv(csv)
    assert labels.names == ["age"]
    assert labels.ignored_columns == ["note"]
    assert labels.excluded == {}
    assert "text, select with ==VALUE or in:A,B: note" in labels.summary()
    np.testing.assert_array_equal(labels.column(["a.jpg", "b.jpg"], "note"), np.array(["blurry", None], dtype=object))


def test_csv_semicolons_tabs_bom_crlf_quotes_and_blank_lines(tmp_path):
    semi = write(tmp_path / "semi.csv", '\ufefffile;age\r\n\r\n"a;b.jpg";7\r\n;\r\n', "utf-8")
    assert read_labels_csv(semi).values == {"a;b.jpg": {"age": 7.0}}
    tab = write(tmp_path / "tab.csv", "\n\nfile\tage\nsub\\a.jpg\t8\n./b.jpg\t9\n")
    # Windows separators and a leading ./ become the form find_images lists.
    assert read_labels_csv(tab).values == {"sub/a.jpg": {"age": 8.0}, "b.jpg": {"age": 9.0}}


def test_synthetic_dataset_labels_file_reads(tmp_path):
    from latentctl.pictures.synthetic import LABELS_FILE, make_dataset

    folder = make_dataset(tmp_path / "faces", n=5, size=32)
    labels = read_labels_csv(folder / LABELS_FILE, folder)
    assert len(labels.values) == 5 and labels.excluded == {} and labels.names


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("\n\n  \n", "empty"),
        (",,\n", "no header"),
        ("a.jpg,25,1\nb.jpg,30,0\n", "no header"),
        ("file,0,1\na.jpg,25,1\n", "no header"),
        ("file,age,age\na.jpg,1,2\n", "twice"),
        ("file,,gender\na.jpg,1,2\n", "column 2 of the header has no name"),
        ("file\na.jpg\n", "no label columns"),
        ("file,age\n", "no rows"),
        ("file,age\n\n,,\n", "no rows"),
        ("file,age\na.jpg,1,2\n", "line 2: 3 cells"),
        ("file,age\n,5\n", "line 2: no file name"),
        ("file,note\na.jpg,x\n", "no column with numbers"),
        ("file,age\na.jpg,1\nb.jpg,2\n./a.jpg,3\n", "line 4: './a.jpg' is the same image as line 2"),
        ('file,age\n"a.jpg,1\n', "not valid CSV"),
    ],
)
def test_csv_bad_files_raise_data_error_naming_file(tmp_path, text, message):
    csv = write(tmp_path / "labels.csv", text)
    with pytest.raises(DataError, match=message) as info:
        read_labels_csv(csv)
    assert str(csv) in str(info.value)
    assert "\n" not in str(info.value)


def test_csv_unreadable_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_labels_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder"):
        read_labels_csv(tmp_path)
    latin = write(tmp_path / "latin.csv", "file,âge\na.jpg,1\n", "latin-1")
    with pytest.raises(DataError, match="not UTF-8"):
        read_labels_csv(latin)
    binary = tmp_path / "img.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    with pytest.raises(DataError, match="binary|not UTF-8"):
        read_labels_csv(binary)


def test_csv_matched_to_folder_by_bare_name_when_unambiguous(tmp_path):
    root = tmp_path / "faces"
    for rel in ["a/one.jpg", "b/two.jpg", "a/dup.jpg", "b/dup.jpg", "three.png"]:
        image(root / rel)
    csv = write(
        tmp_path / "labels.csv",
        "file,age\n"
        "one.jpg,1\n"  # bare name, one image has it
        "faces/b/two.jpg,2\n"  # path that includes the folder's own name
        "three.png,3\n"  # exact
        "dup.jpg,4\n"  # two images have this name: no guessing
        "b/dup.jpg,5\n"  # exact, so fine
        "gone.jpg,6\n",  # no such image
    )
    labels = read_labels_csv(csv, root)
    assert labels.values == {
        "a/one.jpg": {"age": 1.0},
        "b/two.jpg": {"age": 2.0},
        "three.png": {"age": 3.0},
        "b/dup.jpg": {"age": 5.0},
    }
    assert labels.excluded == {"ambiguous file name": 1, "not in the image folder": 1}


def test_csv_two_rows_for_one_image_in_folder_is_an_error(tmp_path):
    root = tmp_path / "faces"
    image(root / "sub/x.jpg")
    csv = write(tmp_path / "labels.csv", "file,age\nsub/x.jpg,1\nx.jpg,2\n")
    with pytest.raises(DataError, match=r"line 3: 'x.jpg' is the same image as line 2 \(sub/x.jpg\)"):
        read_labels_csv(csv, root)


def test_csv_absolute_paths_inside_the_folder(tmp_path):
    root = tmp_path / "faces"
    image(root / "x.jpg")
    csv = write(tmp_path / "labels.csv", f"file,age\n{root / 'x.jpg'},4\n")
    assert read_labels_csv(csv, root).values == {"x.jpg": {"age": 4.0}}


# --- Labels.column -------------------------------------------------------------------------------


def test_column_aligns_and_matches_bare_names():
    labels = Labels(["age"], {"a.jpg": {"age": 1.0}, "sub/b.jpg": {"age": 2.0}, "c.jpg": {"age": 3.0}})
    files = ["x/a.jpg", "sub/b.jpg", "nothing.jpg", Path("p/c.jpg"), "q/c.jpg"]
    out = labels.column(files, "age")
    assert out.dtype == np.float64
    # c.jpg would fit two files: neither gets it.
    np.testing.assert_array_equal(out, [1.0, 2.0, np.nan, np.nan, np.nan])


def test_column_exact_match_wins_over_suffix():
    labels = Labels(["age"], {"a.jpg": {"age": 1.0}})
    np.testing.assert_array_equal(labels.column(["a.jpg", "x/a.jpg"], "age"), [1.0, np.nan])


def test_column_unknown_name_lists_columns():
    labels = Labels(["age", "gender"], {})
    with pytest.raises(UsageError, match="no label column 'race'; the columns are: age, gender"):
        labels.column([], "race")


# --- labels_from_names ---------------------------------------------------------------------------


def test_utkface_names_valid_and_malformed():
    files = [
        "61_0_4_20170109150557335.jpg.chip.jpg",
        "utk/part1/1_1_2_20161219140530307.jpg",  # nested relative path: the base name is parsed
        "39_1_20170116174525125.jpg",  # race missing: must not read the time stamp as race
        "39_1_20170116174525125.jpg.chip.jpg",
        "abc_1_2_x.jpg",
        "25_3_1_x.jpg",  # gender 3
        "25_0_5_x.jpg",  # race 5
        "131_0_0_x.jpg",  # age 131
        "part_7/readme.jpg",
    ]
    labels = labels_from_names(files)
    assert labels.names == ["age", "gender", "race"]
    assert labels.values == {
        "61_0_4_20170109150557335.jpg.chip.jpg": {"age": 61.0, "gender": 0.0, "race": 4.0},
        "utk/part1/1_1_2_20161219140530307.jpg": {"age": 1.0, "gender": 1.0, "race": 2.0},
    }
    assert labels.excluded == {"name does not match": 4, "out of range": 3}
    np.testing.assert_array_equal(labels.column(files[:3], "race"), [4.0, 2.0, np.nan])


def test_utkface_ranges_apply_even_if_a_shifted_field_matches():
    # A name where the time stamp lands in the race group anyway.
    labels = labels_from_names(["39_1_20170116174525125_x.jpg"], UTKFACE_PATTERN)
    assert labels.values == {} and labels.excluded == {"out of range": 1}


def test_names_accept_paths_and_windows_separators():
    labels = labels_from_names([Path("a") / "5_0_1_x.jpg", "b\\6_1_0_y.jpg"])
    assert set(labels.values) == {"a/5_0_1_x.jpg", "b/6_1_0_y.jpg"}


def test_custom_pattern_groups_become_columns():
    files = ["cat_3_0.5.png", "dog_x_1.png", "cat_4.png", "bird.png"]
    labels = labels_from_names(files, r"_(?P<legs>[^_.]+)(?:_(?P<weight>\d+(?:\.\d+)?))?\.png$")
    assert labels.names == ["legs", "weight"]
    assert labels.values == {"cat_3_0.5.png": {"legs": 3.0, "weight": 0.5}}
    # dog: "x" is not a number; cat_4: the optional weight did not take part; bird: no match.
    assert labels.excluded == {"not numeric": 1, "missing field": 1, "name does not match": 1}
    # No range checks for custom patterns, even with UTKFace's column names.
    wide = labels_from_names(["200_7_9_x.jpg"], r"^(?P<age>\d+)_(?P<gender>\d+)_(?P<race>\d+)_.*")
    assert wide.values == {"200_7_9_x.jpg": {"age": 200.0, "gender": 7.0, "race": 9.0}}


@pytest.mark.parametrize(
    "pattern, message", [("(?P<age>\\d+", "not a valid regular expression"), (r"(\d+)_", "no named groups")]
)
def test_bad_patterns_are_usage_errors(pattern, message):
    with pytest.raises(UsageError, match=message):
        labels_from_names(["1_0_0_x.jpg"], pattern)


def test_summary_singular_and_empty():
    assert labels_from_names(["x.jpg"]).summary() == (
        "0 labelled images (labels left out for 1 file: 1 name does not match); columns age, gender, race"
    )
    assert Labels(["a"], {"x": {"a": 1.0}}).summary() == "1 labelled image; columns a"


# --- select --------------------------------------------------------------------------------------

COLUMN = np.array([10.0, 20.0, 30.0, 60.0, 61.0, np.nan, 0.0, 1.0, -5.0])


@pytest.mark.parametrize(
    "condition, expected",
    [
        (">60", [61.0]),
        (" >= 60 ", [60.0, 61.0]),
        ("<10", [0.0, 1.0, -5.0]),
        ("<=10", [10.0, 0.0, 1.0, -5.0]),
        ("==1", [1.0]),
        ("=1", [1.0]),
        ("1", [1.0]),
        ("1.0", [1.0]),
        ("true", [1.0]),
        ("=no", [0.0]),
        ("!=0", [10.0, 20.0, 30.0, 60.0, 61.0, 1.0, -5.0]),  # NaN is not "different from 0"
        ("20-30", [20.0, 30.0]),
        ("20 - 30", [20.0, 30.0]),
        ("-5", [-5.0]),
        ("-10--1", [-5.0]),
        (">-1", [10.0, 20.0, 30.0, 60.0, 61.0, 0.0, 1.0]),
        ("1e1", [10.0]),
        ("99", []),
    ],
)
def test_select_conditions(condition, expected):
    mask = select(COLUMN, condition)
    assert mask.dtype == bool and mask.shape == COLUMN.shape
    np.testing.assert_array_equal(COLUMN[mask], expected)
    assert not mask[5]


@pytest.mark.parametrize("condition", ["", "old", ">", "=>60", "1-", "20-30-40", "> 6 0", "nan", ">inf", None])
def test_select_bad_text_is_usage_error_with_examples(condition):
    with pytest.raises(UsageError, match="'>=60'.*'20-30'"):
        select(COLUMN, condition)


def test_select_empty_range_says_how_to_fix():
    with pytest.raises(UsageError, match="write the smaller number first, e.g. '20-30'"):
        select(COLUMN, "30-20")


def test_select_accepts_lists_and_ints():
    np.testing.assert_array_equal(select([1, 2, 3], ">=2"), [False, True, True])
    assert select(np.array([], dtype=float), ">1").shape == (0,)
    np.testing.assert_array_equal(select([float("nan"), 2.0], "!=1"), [False, True])


def test_patterns_that_re_cannot_compile_are_usage_errors():
    import warnings

    from latentctl.pictures.labels import compile_pattern

    for bad in ("(?P<age>a{99999999999})", "(" * 500 + ")" * 500, "(?P<a>x", "[a"):
        with pytest.raises(UsageError, match="not a valid regular expression|no named groups"):
            labels_from_names(["1.jpg"], bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the library never prints, not even re's FutureWarning
        assert compile_pattern("(?P<a>[[0-9])").groupindex == {"a": 1}


def test_ranges_of_infinite_numbers_are_refused():
    with pytest.raises(UsageError, match="cannot read the condition '1e999-2e999'"):
        select(np.array([1.0]), "1e999-2e999")
