"""The notebooks follow the house layout: a markdown title, ONE imports cell, ONE config cell,
short code cells, imports from the library, stored outputs without errors, small files.

(Running them is nbval's job: `pytest --nbval-lax notebooks`.)
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = [
    "01_data_exploration.ipynb",
    "02_augmentation.ipynb",
    "03_unet.ipynb",
    "04_training.ipynb",
    "05_evaluation.ipynb",
    "06_head_circumference.ipynb",
]
MAX_CODE_LINES = 12
MAX_BYTES = 2 * 1024 * 1024
NBVAL_TAGS = {"nbval-check-output", "nbval-ignore-output"}


def _load(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _python(cell: dict) -> ast.Module:
    """The cell's code without IPython magics (lines starting with % or !)."""
    lines = [ln for ln in _source(cell).splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines))


def _is_imports_only(cell: dict) -> bool:
    body = _python(cell).body
    return bool(body) and all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body)


def _imports(tree: ast.Module) -> list[ast.AST]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_the_six_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_file_is_small(name):
    size = (NOTEBOOK_DIR / name).stat().st_size
    assert size < MAX_BYTES, f"{name} is {size / 2**20:.2f} MB; lower the figure dpi"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_title_then_one_imports_cell_then_one_config_cell(name):
    cells = _load(name)["cells"]
    title, imports, config = cells[0], cells[1], cells[2]
    assert title["cell_type"] == "markdown" and _source(title).startswith("# "), "first cell: a markdown title"
    assert "**Goal:**" in _source(title), "the title cell states the goal"
    assert imports["cell_type"] == "code" and _is_imports_only(imports), "second cell: imports only"
    assert any(
        isinstance(n, ast.ImportFrom) and (n.module or "").startswith("fetalhead") for n in _imports(_python(imports))
    ), "the notebook imports from fetalhead"
    assert config["cell_type"] == "code" and "quick_mode()" in _source(config), "third cell: config"
    assert not _imports(_python(config)), "the config cell imports nothing"
    for i, cell in enumerate(cells[3:], start=3):
        if cell["cell_type"] == "code":
            assert not _imports(_python(cell)), f"cell {i} imports: all imports go in the imports cell"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_code_cells_are_short_and_tagged(name):
    cells = [c for c in _load(name)["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(cells[1:], start=1):  # the imports cell holds no logic: any length
        lines = [ln for ln in _source(cell).splitlines() if ln.strip()]
        assert len(lines) <= MAX_CODE_LINES, f"code cell {i} has {len(lines)} lines: move logic to the library"
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells[2:]]
    assert all(t & NBVAL_TAGS for t in tags), "every cell after the imports is nbval-tagged"
    assert any("nbval-check-output" in t for t in tags), "some deterministic output is compared"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_outputs_have_no_errors(name):
    cells = [c for c in _load(name)["cells"] if c["cell_type"] == "code"]
    assert any(c.get("outputs") for c in cells), f"{name} is stored without outputs"
    for i, cell in enumerate(cells):
        kinds = [o.get("output_type") for o in cell.get("outputs", [])]
        assert "error" not in kinds, f"code cell {i} of {name} stored an error"
        streams = [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]
        assert not any("Traceback" in "".join(o.get("text", "")) for o in streams)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_markdown_between_steps(name):
    cells = _load(name)["cells"]
    kinds = [c["cell_type"] for c in cells]
    assert kinds.count("markdown") >= 4, "narrative markdown between the steps"
    assert kinds[-1] == "markdown", "the notebook ends with a summary"
