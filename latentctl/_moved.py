"""The module paths of latentctl 0.x before its modules moved into sub-packages, kept working for one
release: ``import latentctl.store`` (or ``from latentctl import checkpoint``) gives the very module
now at ``latentctl.space.store`` (``latentctl.files.checkpoint``), the same object, so state and
monkeypatching are shared. Nothing of latentctl's own imports these paths; scripts written against
docs/python-api.md of the previous release do. Remove in the release after next."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

OLD_PATHS = {
    **{
        f"latentctl.{m}": f"latentctl.train.{m}"
        for m in (
            "runs",
            "training",
            "trainers",
            "listeners",
            "distributed",
            "augment",
            "health",
            "events",
            "recipes",
            "tb",
        )
    },
    **{
        f"latentctl.{m}": f"latentctl.space.{m}"
        for m in (
            "store",
            "latents",
            "session",
            "directions",
            "steer",
            "encode",
            "gan_encoder",
            "lbfgs",
            "image_loss",
            "generate",
            "assessor",
        )
    },
    **{f"latentctl.{m}": f"latentctl.pictures.{m}" for m in ("images", "grid", "plot", "data", "labels", "synthetic")},
    **{f"latentctl.{m}": f"latentctl.quality.{m}" for m in ("score", "inception")},
    **{f"latentctl.{m}": f"latentctl.files.{m}" for m in ("checkpoint", "workspace", "runlist", "fsutil")},
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        # The module itself, not a copy: ``import latentctl.store`` and ``latentctl.space.store``
        # must be one object, or a setting changed through one path would not be seen by the other.
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # Already executed under its own name; the import system stamped the old name's spec on
        # it, which is given back so that the module still says where it lives.
        module.__spec__ = self.spec


class _OldPaths(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = OLD_PATHS.get(fullname)
        if new is None:
            return None
        warnings.warn(
            f"{fullname} is now {new}; the old path works in this release only", DeprecationWarning, stacklevel=3
        )
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OldPaths())  # before the path finders: these names are ours
