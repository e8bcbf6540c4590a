"""pyproject.toml and environment.yml must list the same dependencies; the CI entry point must
run the README's test command."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    """Normalised distribution name of a requirement string ('opencv-python-headless>=4.8')."""
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_deps() -> dict[str, set[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {"runtime": {_name(r) for r in meta["dependencies"]}}
    for extra, reqs in meta["optional-dependencies"].items():
        out[extra] = {_name(r) for r in reqs}
    return out


def _conda_pip_deps() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r) for r in pip_section if not r.startswith("-")}


def test_environment_yml_matches_pyproject():
    deps = _pyproject_deps()
    wanted = set().union(*deps.values())  # the run-time stack and every extra
    got = _conda_pip_deps()
    assert got == wanted, f"only in environment.yml: {got - wanted}; only in pyproject: {wanted - got}"


def test_environment_yml_installs_package_and_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.startswith("python") for d in conda) and "pip" in conda
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section


def test_runtime_dependencies_are_the_mission_stack():
    # The library must stay copyable: only this stack at run time (STYLE.md rule 2).
    assert _pyproject_deps()["runtime"] == {
        "torch", "numpy", "opencv-python-headless", "pillow", "pandas", "matplotlib",
        "ipywidgets", "tqdm",
    }


def test_torch_range_admits_the_local_cpu_build():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in meta["dependencies"] if _name(r) == "torch")
    assert torch_req.replace(" ", "") == "torch>=2.4"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README has no Quick start code block"
    commands = [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(commands) == 2, f"the quick start must have exactly two commands, found {commands}"
    test_cmd = commands[1]
    assert test_cmd in ci, f"{test_cmd!r} is not what .ci/run runs"


def _modules() -> set[str]:
    return {p.stem for p in (ROOT / "fetalhead").glob("*.py") if p.stem not in {"__init__", "__main__"}}


def test_the_architecture_table_has_one_row_per_module():
    rows = re.findall(r"^\| `([a-z_]+)`", (ROOT / "docs" / "ARCHITECTURE.md").read_text(), re.M)
    assert sorted(rows) == sorted(_modules()), set(rows) ^ _modules()


def test_the_readme_library_section_names_every_module():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The library"):]
    section = section[:section.index("\n## ", 1)]
    named = set(re.findall(r"`([a-z_]+)`", section))
    assert not _modules() - named, _modules() - named
