"""The benchmark scripts (benchmarks/*.py are scripts, not a package), loaded as modules for tests."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py executed afresh as module `name` (registered in sys.modules, where
    dataclasses and the scripts' imports of each other look it up)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def evaluate_table(rows, folder: Path, run: str = "a_run") -> Path:
    """`rows` (a DataFrame) written as the per-image table of a `fetalhead evaluate` report in
    `folder`, with the summary.json beside it naming the weights' training run `run`."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    rows.to_csv(folder / "metrics_per_image.csv", index=False)
    (folder / "summary.json").write_text(json.dumps({"training_run": run}))
    return folder / "metrics_per_image.csv"
