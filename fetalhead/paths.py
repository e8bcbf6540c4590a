"""Where things live: the HC18 folder, the cache folder, the repository, the shipped weights.

Every environment variable the library reads is named here, so a user finds them in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "PACKAGE_DIR",
    "SHIPPED_MODELS",
    "cache_dir",
    "data_dir",
    "figures_dir",
    "repo_root",
    "shipped_checkpoint",
]

DATA_ENV = "HC18_DIR"  #: folder holding training_set/, test_set/ and the two CSVs
CACHE_ENV = "FETALHEAD_CACHE"  #: where decoded/resized arrays are cached (never ../shared)
PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The source checkout this package runs from, or None when installed elsewhere."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The HC18 folder: `path`, else $HC18_DIR, else `data/hc18` in the checkout (git-ignored),
    else `~/.cache/fetalhead/hc18`. The folder need not exist yet (see `fetalhead.download`)."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    root = repo_root()
    if root is not None:
        return root / "data" / "hc18"
    return Path.home() / ".cache" / "fetalhead" / "hc18"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Writable cache folder: `path`, else $FETALHEAD_CACHE, else `.cache/` in the checkout
    (git-ignored), else `~/.cache/fetalhead`. Created on demand."""
    if path is not None:
        out = Path(path).expanduser()
    elif os.environ.get(CACHE_ENV):
        out = Path(os.environ[CACHE_ENV]).expanduser()
    elif repo_root() is not None:
        out = repo_root() / ".cache"  # type: ignore[operator]
    else:
        out = Path.home() / ".cache" / "fetalhead"
    out.mkdir(parents=True, exist_ok=True)
    return out


def figures_dir() -> Path:
    """`figures/` in the checkout (else `figures/` under the current folder); created on demand."""
    root = repo_root()
    out = (root if root is not None else Path.cwd()) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    return out


#: the shipped models, best first by the validation part's HC mean absolute difference
#: (results/<model>_val.json; a test keeps this order honest): "small" (U-Net width 8 at
#: 192x288, fast on a CPU) and "default" (width 32 at 192x288, trained on a GPU)
SHIPPED_MODELS = ("small", "default")


def shipped_checkpoint(model: str | None = None) -> Path:
    """Path of a shipped model's weights (fp16 or int8, as each file's dtype says; in the
    package's weights/ folder, each with a model card beside it): `model` ("default" or
    "small"), else the best one present (the first of SHIPPED_MODELS whose file exists; the
    first's path when none does)."""
    if model is not None and model not in SHIPPED_MODELS:
        raise ValueError(f"unknown shipped model {model!r}; choose one of {', '.join(SHIPPED_MODELS)}")
    paths = [PACKAGE_DIR / "weights" / f"fetalhead_{m}.pt" for m in SHIPPED_MODELS]
    if model is not None:
        return paths[SHIPPED_MODELS.index(model)]
    return next((p for p in paths if p.is_file()), paths[0])
