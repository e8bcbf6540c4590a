"""Shared fixtures: the real HC18 folder, and a tiny synthetic HC18 folder for fast tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fetalhead.synthetic import write_synthetic_hc18


@pytest.fixture
def hc18_dir() -> Path:
    """The real HC18 folder from $HC18_DIR (CI sets it); skips the test when it is unset."""
    value = os.environ.get("HC18_DIR")
    if not value:
        pytest.skip("HC18_DIR is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"HC18_DIR={value} is not a folder")
    return path


@pytest.fixture
def synthetic_hc18(tmp_path: Path) -> Path:
    """A tiny HC18-like folder (64x96 images, filled 3-channel masks, both CSVs); see
    `fetalhead.synthetic.write_synthetic_hc18`."""
    return write_synthetic_hc18(tmp_path / "hc18")


@pytest.fixture
def make_synthetic_hc18(tmp_path: Path):
    """Factory: `make_synthetic_hc18(outline=True, size=(48, 72), ...)` -> folder Path."""
    counter = iter(range(1000))

    def make(**kwargs) -> Path:
        return write_synthetic_hc18(tmp_path / f"hc18_{next(counter)}", **kwargs)

    return make


@pytest.fixture
def cache_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $FETALHEAD_CACHE at a fresh folder so tests never share or pollute caches."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FETALHEAD_CACHE", str(path))
    return path
