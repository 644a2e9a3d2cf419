"""`latentctl latents list` starts as fast as `latentctl runs`: it reads the store without numpy
(issue 29; numpy alone took about half of its 0.45 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from latentctl.space.store import LatentEntry, write_entry


def run_fresh(argv: list[str], workspace) -> tuple[set[str], str]:
    """(the modules a fresh interpreter holds after running the CLI with ``argv``, its stdout)."""
    code = (
        "import sys\nfrom latentctl.cli.app import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "sys.__stderr__.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n')\n"
    )
    env = dict(os.environ, LATENTCTL_HOME=str(workspace), COLUMNS="200")
    env.pop("LATENTCTL_STORE", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return set(proc.stderr.rsplit("MODULES ", 1)[1].split()), proc.stdout


@pytest.fixture
def store_of_three(workspace):
    root = workspace / "latents"
    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    write_entry(root / "glasses.npz", LatentEntry(z=z, seeds=np.arange(4), model_id="abc123", meta={"n": 4}))
    write_entry(root / "smile.npz", LatentEntry(z=z[:1], kind="direction", space="w"))
    np.savez(root / "theirs.npz", z=z[:2])  # another tool's file: just z
    return workspace


@pytest.mark.parametrize("as_json", [False, True])
def test_latents_list_imports_no_numpy(store_of_three, as_json):
    modules, out = run_fresh(["latents", "list", *(["--json"] if as_json else [])], store_of_three)
    assert not {m for m in modules if m.split(".")[0] in ("numpy", "torch")}
    assert "latentctl.space.store" not in modules
    if as_json:
        rows = {e["name"]: e for e in json.loads(out)}
        assert (rows["glasses"]["kind"], rows["glasses"]["count"], rows["glasses"]["latent_dim"]) == ("points", 4, 16)
        assert rows["smile"]["kind"] == "direction" and rows["theirs"]["count"] == 2
        assert all(e["error"] is None for e in rows.values())
    else:
        assert "glasses" in out and "4×16" in out and "smile" in out and "direction" in out


def test_an_unusual_entry_is_still_listed_through_numpy(store_of_three):
    """A file the quick reader does not take (float64 here) is read whole, as before."""
    np.savez(store_of_three / "latents" / "wide.npz", z=np.ones((3, 16)))
    modules, out = run_fresh(["latents", "list", "--json"], store_of_three)
    assert "numpy" in modules
    assert {e["name"]: e["count"] for e in json.loads(out)}["wide"] == 3
