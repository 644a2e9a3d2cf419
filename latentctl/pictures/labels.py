"""Per-image labels: read from a CSV file or from the file names, and pick images by a condition.

Labels are numbers only (ages, 0/1 flags, class indices), because everything that uses them either
averages latents over a subset (``select``) or colours a plot by value. Files are named the way
``latentctl.pictures.images.find_images`` lists them: paths relative to the image folder, with ``/``.

A label file that is only partly usable is not an error: a cell that is empty or not a number just
leaves that file without that label, and ``Labels.excluded`` counts why, so that a summary line can
tell the user that 3 of 23,708 files were left out rather than refusing the whole folder. Only a
file that cannot be read as a table of labels at all (no header, no rows, the same image twice)
raises ``DataError``.
"""

from __future__ import annotations

import csv
import math
import os
import posixpath
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from latentctl.errors import DataError, UsageError
from latentctl.pictures.images import IMAGE_EXTENSIONS, find_images

# [age]_[gender]_[race]_[date&time].jpg(.chip.jpg). The trailing "_" matters: a UTKFace file that
# lacks one field (there are a few, e.g. "39_1_20170116174525125.jpg") then fails to match instead
# of reading its time stamp as the race.
UTKFACE_PATTERN = r"^(?P<age>\d+)_(?P<gender>\d+)_(?P<race>\d+)_"

# UTKFace's documented ranges (gender 0 male, 1 female; race 0 White, 1 Black, 2 Asian, 3 Indian,
# 4 Others). Checked because a malformed name can still match the pattern with a field shifted
# into the wrong place; a value outside these is never a real label.
_UTKFACE_RANGES: dict[str, tuple[int, int]] = {"age": (0, 130), "gender": (0, 1), "race": (0, 4)}

# Header names that mark the column holding file names; otherwise the first column is used.
FILE_COLUMNS: tuple[str, ...] = ("file", "filename", "file_name", "path", "image")

# Reasons counted in Labels.excluded.
MISSING = "missing field"
NOT_NUMERIC = "not numeric"
OUT_OF_RANGE = "out of range"
NO_MATCH = "name does not match"
NOT_FOUND = "not in the image folder"
AMBIGUOUS = "ambiguous file name"

_TRUE_WORDS = frozenset({"true", "yes"})
_FALSE_WORDS = frozenset({"false", "no"})
# How spreadsheets and pandas write an empty cell; these count as missing, not as "not numeric".
_MISSING_WORDS = frozenset({"", "nan", "na", "n/a", "null", "none"})

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_HEADER_EXAMPLE = "start it with a header line such as 'file,age,gender'"
_CONDITION_EXAMPLES = "'>60', '>=60', '<30', '==1', '!=0', '1' or '20-30'"


@dataclass
class Labels:
    """Numeric labels for some of the files in an image folder.

    ``values`` maps a relative POSIX path to the columns that file has a value for; a file may lack
    some columns. ``excluded`` counts files by why they lack a value: each file is counted once,
    under the first problem found (in column order), whether it lost one column or all of them.
    ``ignored_columns`` names CSV columns that hold no numbers at all (e.g. a free-text note), which
    are left out of ``names`` rather than counted as thousands of "not numeric" cells.
    """

    names: list[str]
    values: dict[str, dict[str, float]]
    excluded: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    # Text-only columns (e.g. skin tone "dark"), kept as categories: column -> {file key: text}.
    # ``column`` returns them as an object array, and ``select`` takes ==TEXT or in:A,B for them.
    text: dict[str, dict[str, str]] = field(default_factory=dict)

    def column(self, files: list[str] | list[PurePath], name: str) -> np.ndarray:
        """Float array of column ``name`` aligned with ``files``; NaN where a file has no value.

        A file is looked up by its relative path first. If the labels name it differently, a label
        whose path is a suffix of the file's at a ``/`` (a bare file name, say) or the other way
        round is used, as long as exactly one label fits that file and no other file takes that
        label; otherwise the file gets NaN rather than a guess.
        """
        if name not in self.names and name not in self.text:
            known = ", ".join(self.names + list(self.text)) or "none"
            raise UsageError(f"no label column {name!r}; the columns are: {known}")
        keys = [_normalise(f) for f in files]
        if name in self.text:
            cells = self.text[name]
            found = _match_names(keys, list(cells))
            return np.array([cells[k] if k is not None else None for k in found], dtype=object)
        resolved = _match_names(keys, list(self.values))
        out = np.full(len(keys), np.nan, dtype=np.float64)
        for i, key in enumerate(resolved):
            if key is not None:
                out[i] = self.values[key].get(name, np.nan)
        return out

    def summary(self) -> str:
        """E.g. ``"23705 labelled images (labels left out for 3 files: 2 missing field, 1 not
        numeric); columns age, gender, race"``."""
        n = len(self.values)
        text = f"{n} labelled image{'' if n == 1 else 's'}"
        left_out = sum(self.excluded.values())
        if left_out:
            by_count = sorted(self.excluded.items(), key=lambda item: (-item[1], item[0]))
            reasons = ", ".join(f"{k} {reason}" for reason, k in by_count)
            files = "file" if left_out == 1 else "files"
            text += f" (labels left out for {left_out} {files}: {reasons})"
        text += "; columns " + (", ".join(self.names) if self.names else "none")
        if self.ignored_columns:
            text += " (text, select with ==VALUE or in:A,B: " + ", ".join(self.ignored_columns) + ")"
        return text


def read_labels_csv(path: Path, root: Path | None = None) -> Labels:
    """Read a CSV of per-image labels with a header line.

    The file names are in the column headed ``file``, ``filename``, ``file_name``, ``path`` or
    ``image`` (any letter case), else in the first column; every other column is a label. Cells are
    numbers, or ``true``/``yes`` (1) and ``false``/``no`` (0); an empty cell (or ``NaN``, ``NA``,
    ``null``) counts as a missing field, any other text as not numeric, and either way that file
    just lacks that column. A column with no number in any row is ignored as a whole. Commas,
    semicolons and tabs are recognised as separators.

    With ``root``, each name is matched to an image under ``root``: exactly, or else by a unique
    suffix at a ``/`` (so a CSV of bare file names fits a folder with subfolders, and one whose names
    start with the folder's own name fits too). Rows that fit no image, or several, are counted as
    left out. Without ``root``, names are kept as written (``\\`` becomes ``/``) and
    ``Labels.column`` does the same matching later.

    Raises ``DataError`` for a file that cannot be read, is empty, has no header or no rows, has a
    row with more cells than the header, or names one image twice.
    """
    path = Path(path)
    rows = _read_rows(path)
    header = [cell.strip() for cell in rows[0][1]]
    file_col = _file_column(header)
    _check_header(path, header, file_col)
    label_cols = [i for i in range(len(header)) if i != file_col]
    if not label_cols:
        raise DataError(
            f"{path} has no label columns, only {header[file_col]!r}; "
            "add columns after the file names, e.g. a header line 'file,age,gender'"
        )

    records: list[tuple[int, str, list[str]]] = []  # (line number, file name, cells)
    for line, cells in rows[1:]:
        if not any(cell.strip() for cell in cells):
            continue  # blank line, or one made only of separators by a spreadsheet
        if len(cells) > len(header):
            raise DataError(
                f"{path}, line {line}: {len(cells)} cells but the header has {len(header)}; "
                "quote cells that contain the separator, or add the missing column names"
            )
        name = cells[file_col].strip() if file_col < len(cells) else ""
        if not name:
            raise DataError(
                f"{path}, line {line}: no file name in column {header[file_col]!r}; fill it in or delete the line"
            )
        records.append((line, name, cells))
    if not records:
        raise DataError(f"{path} has a header but no rows; add one line per image, e.g. 'a.jpg,25,1'")

    # A column without a single number is text (a note, a URL), not a label: ignore it wholesale.
    parsed = {c: [_parse_cell(cells[c] if c < len(cells) else "") for _, _, cells in records] for c in label_cols}
    numeric = [c for c in label_cols if any(isinstance(v, float) for v in parsed[c])]
    if not numeric:
        raise DataError(
            f"{path} has no column with numbers (columns: {', '.join(header)}); "
            "labels must be numbers or true/false/yes/no"
        )
    ignored = [header[c] for c in label_cols if c not in numeric]

    keys = _record_keys([name for _, name, _ in records], root)
    values: dict[str, dict[str, float]] = {}
    excluded: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    for r, (line, name, _) in enumerate(records):
        key, unmatched = keys[r]
        if unmatched:
            excluded[unmatched] += 1
            continue
        if key in first_line:
            raise DataError(
                f"{path}, line {line}: {name!r} is the same image as line {first_line[key]} "
                f"({key}); keep one line per image"
            )
        first_line[key] = line
        row: dict[str, float] = {}
        problem = None
        for c in numeric:
            value = parsed[c][r]
            if isinstance(value, float):
                row[header[c]] = value
            elif problem is None:
                problem = value  # the reason string
        if problem is not None:
            excluded[problem] += 1
        if row:
            values[key] = row
    text: dict[str, dict[str, str]] = {}
    for c in label_cols:
        if c in numeric:
            continue
        column: dict[str, str] = {}
        for r, (_, _, cells) in enumerate(records):
            key, unmatched = keys[r]
            cell = (cells[c] if c < len(cells) else "").strip()
            if not unmatched and cell.lower() not in _MISSING_WORDS:
                column[key] = cell
        text[header[c]] = column
    return Labels([header[c] for c in numeric], values, dict(excluded), ignored, text)


def labels_from_names(files: list[str] | list[PurePath], pattern: str = UTKFACE_PATTERN) -> Labels:
    """Labels read from each file's base name with a regular expression.

    Every named group of ``pattern`` becomes a column, and its text must be a number (or
    true/false/yes/no). The pattern is searched for, so anchor it with ``^`` to match from the
    start. A file counts as left out, all columns at once, when its name does not match, a group did
    not take part in the match (missing field), or a group is not a number. With the default
    UTKFace pattern the values must also be in UTKFace's ranges (age 0-130, gender 0-1, race 0-4),
    else the file is left out as out of range.

    Raises ``UsageError`` if ``pattern`` is not a regular expression or has no named groups.
    """
    regex = compile_pattern(pattern)
    names = list(regex.groupindex)
    ranges = _UTKFACE_RANGES if pattern == UTKFACE_PATTERN else {}

    values: dict[str, dict[str, float]] = {}
    excluded: Counter[str] = Counter()
    for f in files:
        key = _normalise(f)
        match = regex.search(posixpath.basename(key))
        if match is None:
            excluded[NO_MATCH] += 1
            continue
        row: dict[str, float] = {}
        problem = None
        for name in names:
            value = _parse_cell(match.group(name))
            if not isinstance(value, float):
                problem = value
            elif name in ranges and not _in_range(value, ranges[name]):
                problem = OUT_OF_RANGE
            if problem is not None:
                break
            row[name] = value
        if problem is not None:
            excluded[problem] += 1
        else:
            values[key] = row
    return Labels(names, values, dict(excluded))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled for ``labels_from_names``, so a command can check it before any work.

    Raises ``UsageError`` if it is not a regular expression or has no named groups.
    """
    example = r"e.g. '^(?P<age>\d+)_(?P<gender>\d+)_'"
    if not isinstance(pattern, str):
        raise UsageError(f"the label pattern must be text, got {type(pattern).__name__}")
    try:
        # re warns (FutureWarning) about patterns such as '[[' that may change meaning; the
        # library never prints, and the pattern works as typed today.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regex = re.compile(pattern)
    # re.compile also raises OverflowError ('a{99999999999}') and RecursionError (thousands of
    # nested groups); to a user each is just a pattern that cannot be used.
    except (re.error, OverflowError, RecursionError, ValueError) as err:
        raise UsageError(
            f"the label pattern {pattern!r} is not a valid regular expression ({err}); {example}"
        ) from None
    if not regex.groupindex:
        raise UsageError(
            f"the label pattern {pattern!r} has no named groups, so it gives no columns; name each one, {example}"
        )
    return regex


def select(labels_column: np.ndarray, condition: str) -> np.ndarray:
    """Boolean mask of the values in ``labels_column`` that satisfy ``condition``.

    ``condition`` is text as typed on a command line: ``>60``, ``>=60``, ``<30``, ``<=30``,
    ``==1`` or ``=1``, ``!=0``, a bare number for equality, or an inclusive range ``20-30``.
    ``true``/``yes`` and ``false``/``no`` stand for 1 and 0. NaN (no label) is never selected, not
    even by ``!=``. A text column (an object array of strings, None where missing) takes
    ``==dark``, ``!=dark``, a bare ``dark``, or ``in:dark,medium-dark``; ``in:1,2`` works on
    numbers too. Raises ``UsageError`` for any other text.
    """
    text = condition.strip() if isinstance(condition, str) else ""
    raw = np.asarray(labels_column)
    if raw.dtype == object or raw.dtype.kind in "US":
        return _select_text(raw, text, condition)
    column = np.asarray(labels_column, dtype=np.float64)
    labelled = ~np.isnan(column)

    if text.lower().startswith("in:"):
        values = [_parse_cell(v) for v in text[3:].split(",")]
        if not values or not all(isinstance(v, float) for v in values):
            raise UsageError(f"cannot read the condition {condition!r}; write e.g. 'in:1,2' for a numeric column")
        return labelled & np.isin(column, values)

    m = re.fullmatch(rf"({_NUMBER})\s*-\s*({_NUMBER})", text)
    if m:
        lo, hi = _parse_cell(m.group(1)), _parse_cell(m.group(2))
        if not (isinstance(lo, float) and isinstance(hi, float)):  # '1e999' is infinity
            raise UsageError(f"cannot read the condition {condition!r}; write e.g. {_CONDITION_EXAMPLES}")
        if lo > hi:
            raise UsageError(
                f"the range {condition!r} is empty; write the smaller number first, e.g. '{m.group(2)}-{m.group(1)}'"
            )
        return labelled & (column >= lo) & (column <= hi)

    m = re.fullmatch(r"(>=|<=|==|!=|>|<|=)?\s*(\S.*)", text)
    value = _parse_cell(m.group(2)) if m else None
    if not isinstance(value, float):
        if m and (m.group(1) or "==") in ("==", "=", "!=") and value == NOT_NUMERIC:
            raise UsageError(
                f"the condition {condition!r} compares with text, but this column holds numbers; "
                f"write e.g. {_CONDITION_EXAMPLES}"
            )
        raise UsageError(f"cannot read the condition {condition!r}; write e.g. {_CONDITION_EXAMPLES}")
    op = m.group(1) or "=="
    with np.errstate(invalid="ignore"):
        if op == ">":
            mask = column > value
        elif op == ">=":
            mask = column >= value
        elif op == "<":
            mask = column < value
        elif op == "<=":
            mask = column <= value
        elif op == "!=":
            mask = column != value
        else:
            mask = column == value
    return labelled & mask


def check_condition(condition: str) -> None:
    """Refuse a condition no column could take, before any slow work (the column's type, numbers
    or text, is only known once the labels are read)."""
    try:
        select(np.empty(0), condition)
    except UsageError as numeric:
        text = condition.strip().lstrip("=!").strip() if isinstance(condition, str) else ""
        # Text values start with a letter; '1e999-2e999' or '>x' are numeric conditions gone wrong.
        if not text[:1].isalpha() and not text.lower().startswith("in:"):
            raise numeric from None
        try:
            select(np.empty(0, dtype=object), condition)
        except UsageError:
            raise numeric from None


def _select_text(column: np.ndarray, text: str, condition: str) -> np.ndarray:
    cells = [None if v is None else str(v) for v in column.tolist()]
    labelled = np.array([c is not None for c in cells], dtype=bool)
    if text.lower().startswith("in:"):
        wanted = {v.strip() for v in text[3:].split(",") if v.strip()}
        negate = False
    else:
        m = re.fullmatch(r"(==|!=|=)?\s*([^<>=!\s][^,]*)", text)
        if not m:
            raise UsageError(
                f"cannot read the condition {condition!r} for a text column; write e.g. "
                "'==dark', '!=dark' or 'in:dark,medium-dark'"
            )
        wanted, negate = {m.group(2).strip()}, m.group(1) == "!="
    if not wanted:
        raise UsageError(f"the condition {condition!r} names no value; write e.g. 'in:dark,medium-dark'")
    hit = np.array([c in wanted for c in cells], dtype=bool)
    return labelled & (~hit if negate else hit)


# --- helpers -------------------------------------------------------------------------------------


def _parse_cell(text: str | None) -> float | str:
    """The cell's value as a float, or the reason it has none (``MISSING`` or ``NOT_NUMERIC``)."""
    if text is None:
        return MISSING
    cell = text.strip()
    lower = cell.lower()
    if lower in _MISSING_WORDS:
        return MISSING
    if lower in _TRUE_WORDS:
        return 1.0
    if lower in _FALSE_WORDS:
        return 0.0
    # Stricter than float(), which also takes "1_000", "inf" and "nan" spelt in other ways.
    if not _NUMBER_RE.fullmatch(cell):
        return NOT_NUMERIC
    value = float(cell)
    return value if math.isfinite(value) else NOT_NUMERIC


def _in_range(value: float, bounds: tuple[int, int]) -> bool:
    return value.is_integer() and bounds[0] <= value <= bounds[1]


def _normalise(name: str | PurePath) -> str:
    """A file name as a relative POSIX path, the form ``find_images`` lists and datasets store."""
    if isinstance(name, PurePath):
        name = name.as_posix()
    name = name.strip().replace("\\", "/")
    if not name:
        return name
    norm = posixpath.normpath(name)
    return norm[2:] if norm.startswith("./") else norm


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Rows of the CSV with their line numbers; the first is the header."""
    try:
        # utf-8-sig: Excel starts its UTF-8 CSVs with a byte-order mark that would otherwise become
        # part of the first column's name.
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"label file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise DataError(f"label file {path} is a folder; give the CSV file inside it") from None
    except UnicodeDecodeError as err:
        raise DataError(f"label file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8 CSV") from None
    except OSError as err:
        raise DataError(f"cannot read label file {path}: {err.strerror or err}") from None
    if "\0" in text:
        raise DataError(f"label file {path} is binary, not CSV text; give a .csv file")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise DataError(f"label file {path} is empty; {_HEADER_EXAMPLE}")
    # The header decides the separator; a comma wins because it is the CSV default.
    delimiter = next((d for d in (",", "\t", ";") if d in first), ",")
    rows = []
    try:
        # strict: an unclosed quote otherwise swallows the rest of the file into one cell.
        reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
        for cells in reader:
            rows.append((reader.line_num, cells))
    except csv.Error as err:
        raise DataError(
            f"{path}, line {reader.line_num}: not valid CSV ({err}); check the quotes on that line"
        ) from None
    # Leading blank lines are not the header; later ones are skipped by the caller.
    while rows and not any(c.strip() for c in rows[0][1]):
        rows.pop(0)
    if not rows:
        raise DataError(f"label file {path} has no header, only empty cells; {_HEADER_EXAMPLE}")
    return rows


def _file_column(header: list[str]) -> int:
    lowered = [h.lower() for h in header]
    for name in FILE_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    return 0


def _check_header(path: Path, header: list[str], file_col: int) -> None:
    example = _HEADER_EXAMPLE
    first = header[file_col]
    if os.path.splitext(first)[1].lower() in IMAGE_EXTENSIONS or any(
        _NUMBER_RE.fullmatch(h) for i, h in enumerate(header) if i != file_col
    ):
        raise DataError(f"{path} has no header: its first line {','.join(header)!r} looks like data; {example}")
    for i, h in enumerate(header):
        if not h:
            raise DataError(f"{path}: column {i + 1} of the header has no name; name every column")
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        if h in seen:
            raise DataError(
                f"{path}: the header names column {h!r} twice (columns {seen[h] + 1} and {i + 1}); rename one"
            )
        seen[h] = i


def _record_keys(names: list[str], root: Path | None) -> list[tuple[str, str | None]]:
    """For each file name in a CSV: the key its labels are stored under, and why it has none
    (``NOT_FOUND`` or ``AMBIGUOUS``) or None."""
    names = [_normalise(name) for name in names]
    if root is None:
        return [(name, None) for name in names]
    root = Path(root)
    images = [p.relative_to(root).as_posix() for p in find_images(root)]
    resolved_root = Path(os.path.abspath(root))
    for i, name in enumerate(names):
        # Absolute paths inside the folder are fine too; those outside simply fit no image.
        if posixpath.isabs(name):
            try:
                names[i] = Path(name).relative_to(resolved_root).as_posix()
            except ValueError:
                pass
    index = _SuffixIndex(images)
    keys: list[tuple[str, str | None]] = []
    for name in names:
        found = index.lookup(name)
        if len(found) == 1:
            keys.append((found[0], None))
        else:
            keys.append((name, AMBIGUOUS if found else NOT_FOUND))
    return keys


class _SuffixIndex:
    """Finds, for a path, the stored paths equal to it or suffixes of it at a ``/`` (or vice
    versa), grouped by base name so that a lookup only compares names that can match."""

    def __init__(self, paths: list[str]):
        self.exact = set(paths)
        self.by_base: dict[str, list[str]] = defaultdict(list)
        for p in paths:
            self.by_base[posixpath.basename(p)].append(p)

    def lookup(self, name: str) -> list[str]:
        if name in self.exact:
            return [name]
        return [
            p
            for p in self.by_base.get(posixpath.basename(name), ())
            if p.endswith("/" + name) or name.endswith("/" + p)
        ]


def _match_names(files: list[str], keys: list[str]) -> list[str | None]:
    """For each file, the label key it takes, or None. Exact matches first; a suffix match only
    where it is unique both ways, so two files never share one label by accident."""
    index = _SuffixIndex(keys)
    out: list[str | None] = []
    taken: Counter[str] = Counter()
    for f in files:
        found = index.lookup(f)
        key = found[0] if len(found) == 1 else None
        out.append(key)
        if key is not None:
            taken[key] += 1
    exact = set(files) & index.exact
    return [
        key if key is not None and (key == f or (taken[key] == 1 and key not in exact)) else None
        for f, key in zip(files, out)
    ]
