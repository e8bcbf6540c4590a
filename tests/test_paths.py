"""Where things live: environment variables, the checkout's folders, the shipped weights; and
what each module drags in when copied (predict needs no training loop and no disk cache)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fetalhead.paths import (
    CACHE_ENV,
    DATA_ENV,
    PACKAGE_DIR,
    SHIPPED_MODELS,
    cache_dir,
    data_dir,
    repo_root,
    shipped_checkpoint,
)


def test_data_dir_order(monkeypatch, tmp_path):
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv(DATA_ENV)
    root = repo_root()
    assert data_dir() == (root / "data" / "hc18" if root else Path.home() / ".cache" / "fetalhead" / "hc18")


def test_cache_dir_is_created_where_asked(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c1"))
    assert cache_dir() == tmp_path / "c1" and (tmp_path / "c1").is_dir()
    assert cache_dir(tmp_path / "c2") == tmp_path / "c2" and (tmp_path / "c2").is_dir()


def test_shipped_checkpoint_names_and_best_present(monkeypatch, tmp_path):
    assert shipped_checkpoint("small") == PACKAGE_DIR / "weights" / "fetalhead_small.pt"
    with pytest.raises(ValueError, match="unknown shipped model"):
        shipped_checkpoint("huge")
    monkeypatch.setattr("fetalhead.paths.PACKAGE_DIR", tmp_path)
    assert shipped_checkpoint() == tmp_path / "weights" / f"fetalhead_{SHIPPED_MODELS[0]}.pt"  # none present
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / f"fetalhead_{SHIPPED_MODELS[-1]}.pt").write_bytes(b"x")
    assert shipped_checkpoint() == tmp_path / "weights" / f"fetalhead_{SHIPPED_MODELS[-1]}.pt"


def test_each_shipped_model_has_its_own_file_and_the_first_present_wins(monkeypatch, tmp_path):
    monkeypatch.setattr("fetalhead.paths.PACKAGE_DIR", tmp_path)
    files = [tmp_path / "weights" / f"fetalhead_{m}.pt" for m in SHIPPED_MODELS]
    assert [shipped_checkpoint(m) for m in SHIPPED_MODELS] == files
    (tmp_path / "weights").mkdir()
    for f in files:
        f.write_bytes(b"x")
    assert shipped_checkpoint() == files[0]  # all present: the best (first) one


@pytest.mark.parametrize("module,forbidden", [
    ("fetalhead.predict", {"fetalhead.train", "fetalhead.cache", "fetalhead.evaluate", "fetalhead.widgets"}),
    ("fetalhead.checkpoint", {"fetalhead.train", "fetalhead.cache"}),
    ("fetalhead.cli", {"torch"}),  # parsing the command line imports no torch
    ("fetalhead.files", {"numpy", "pandas", "torch"}),  # safe writes need only the standard library
])
def test_a_copied_module_brings_only_what_it_needs(module, forbidden):
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert module in loaded and not (forbidden & loaded), forbidden & loaded
