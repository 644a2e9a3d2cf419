"""The module paths of the previous release (flat: ``latentctl.store``, ``latentctl.checkpoint``, ...)
still import, for one release, as the very modules now in sub-packages, with a DeprecationWarning
naming the new path; nothing of latentctl's own uses them (docs/architecture.md)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from latentctl._moved import OLD_PATHS

PACKAGE = Path(__file__).resolve().parents[1] / "latentctl"


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_path_is_the_new_module_with_a_warning(old):
    new = importlib.import_module(OLD_PATHS[old])
    with pytest.warns(DeprecationWarning, match=OLD_PATHS[old].replace(".", r"\.")):
        sys.modules.pop(old, None)
        moved = importlib.import_module(old)
    assert moved is new and moved.__spec__.name == OLD_PATHS[old]


def test_published_imports_of_the_last_release_work_in_a_fresh_process():
    # docs/python-api.md of the previous release named these; a script written then still runs.
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from latentctl import checkpoint, latents, store\n"
        "import latentctl.score, latentctl.directions\n"
        "from latentctl.store import LatentStore\n"
        "import latentctl.space.store as new\n"
        "assert store is new and LatentStore is new.LatentStore\n"
        "assert checkpoint.read_header is __import__('latentctl.files.checkpoint').files.checkpoint.read_header\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_old_path_is_a_file_and_none_is_used_by_latentctl_itself():
    for old in OLD_PATHS:
        name = old.split(".", 1)[1]
        assert not (PACKAGE / f"{name}.py").exists()
    users = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.name != "_moved.py"
        for old in OLD_PATHS
        if f"{old} " in p.read_text(encoding="utf-8") or f"{old}\n" in p.read_text(encoding="utf-8")
    ]
    assert users == []
