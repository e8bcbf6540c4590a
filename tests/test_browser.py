"""The widgets in a real browser: JupyterLab 4 + headless Chromium driven by Playwright.

A JupyterLab server runs in a subprocess (this interpreter, so its kernel is this venv's) on a
copy of tests/browser_notebook.ipynb in a temporary folder, with every Jupyter folder
(config, data, runtime, settings, workspaces) isolated there and its network features off
(news, update check, PyPI extension manager). Chromium is Debian's /usr/bin/chromium: Playwright
never downloads a browser, and the page may reach nothing but the local server.

Skips when Chromium or Playwright is missing, unless FETALHEAD_REQUIRE_BROWSER=1 (CI), which
makes that a failure. FETALHEAD_UPDATE_SCREENSHOT=1 rewrites figures/viewer_jupyterlab.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REQUIRE_ENV = "FETALHEAD_REQUIRE_BROWSER"
SCREENSHOT_ENV = "FETALHEAD_UPDATE_SCREENSHOT"
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(__file__).with_name("browser_notebook.ipynb")
N_CASES = 6  # held_out_viewer(n=6) in the notebook
TIMEOUT_MS = 60_000  # per wait; a cold kernel imports torch (metrics) on a busy 2-core runner


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _require_browser() -> None:
    problem = None
    if not CHROMIUM.is_file():
        problem = f"{CHROMIUM} not found (apt-get install chromium chromium-driver)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if _flag(REQUIRE_ENV):
        pytest.fail(f"browser test required (${REQUIRE_ENV}=1) but {problem}", pytrace=False)
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, token: str) -> object:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _wait_until(what: str, ok, proc: subprocess.Popen, log: Path, timeout_s: float = 90.0,
                sleep=time.sleep):
    """Poll `ok()` until it returns a truthy value; fail with the server log if it never does.

    With a page open, pass `sleep=lambda s: page.wait_for_timeout(1000 * s)`: Playwright's sync
    API only handles browser events (routes, dialogs) while a Playwright call is running.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited ({proc.returncode}) while waiting for {what}; "
                        f"log:\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            value = ok()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; server log:\n{log.read_text()[-3000:]}",
                pytrace=False)


def _stop(proc: subprocess.Popen) -> None:
    # SIGTERM makes jupyter_server shut its kernels down before exiting.
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A running JupyterLab on a temporary copy of the notebook: yields base URL, token, log."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    jdirs = {name: root / name for name in ("config", "data", "runtime", "settings",
                                           "workspaces", "ipython")}
    for d in jdirs.values():
        d.mkdir()
    # The announcements plugin asks to fetch news on first start: switch it off entirely.
    (jdirs["config"] / "labconfig").mkdir()
    (jdirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(jdirs["config"]),
        JUPYTER_DATA_DIR=str(jdirs["data"]),  # user kernelspecs elsewhere cannot shadow ours
        JUPYTER_RUNTIME_DIR=str(jdirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(jdirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(jdirs["workspaces"]),
        IPYTHONDIR=str(jdirs["ipython"]),
        # The kernel imports this checkout's fetalhead even if another copy is installed.
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = root / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
        "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    with open(log, "w") as log_file:
        # The kernelspec "python3" runs `python`, which jupyter_client maps to sys.executable.
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until("the server", lambda: _get_json(f"{base}/api/status", token), proc, log)
        yield {"base": base, "token": token, "log": log, "proc": proc, "root": root}
    finally:
        _stop(proc)


def _kernel_idle(lab: dict) -> bool:
    sessions = _get_json(f"{lab['base']}/api/sessions", lab["token"])
    return any(s["path"].endswith(NOTEBOOK.name) and s["kernel"]["execution_state"] == "idle"
               for s in sessions)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def page(lab: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Chromium on the notebook, all cells run, both widgets shown."""
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("browser-failure")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            # Nothing but the local server: no CDNs, fonts, telemetry or news. A regex (not a
            # Python predicate) so that the browser matches it without waiting for Python.
            context.route(re.compile(f"^(?!{re.escape(lab['base'])}/)"),
                          lambda route: route.abort())
            pg = context.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            try:
                pg.goto(f"{lab['base']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}")
                pg.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
                _wait_until("an idle kernel", lambda: _kernel_idle(lab), lab["proc"], lab["log"],
                            sleep=lambda s: pg.wait_for_timeout(1000 * s))
                # ...and the page connected to it (status bar "Python 3 (ipykernel) | Idle").
                pg.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for()
                # Run > Run All Cells, as a user would (Lumino menus carry ARIA roles).
                pg.get_by_role("menuitem", name="Run", exact=True).click()
                pg.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                pg.wait_for_function(
                    "() => [...document.querySelectorAll('img.fetalhead-viewer-figure, "
                    "img.fetalhead-augment-figure')].filter(i => i.complete && i.naturalWidth > 0)"
                    ".length === 2")
                pg.wait_for_selector(".fetalhead-viewer-label", state="visible")
            except BaseException:  # pytest.fail raises a BaseException
                path = shots / "setup.png"
                pg.screenshot(path=str(path), full_page=True)
                print(f"browser screenshot: {path}\nserver log: {lab['log']}")
                raise
            yield pg
        finally:
            browser.close()


def _img_src(page, selector: str) -> str:
    return page.locator(selector).get_attribute("src") or ""


@contextlib.contextmanager
def _screenshot_on_failure(page, path: Path) -> Iterator[None]:
    """Save the page's screenshot to `path` (and print it) when the block raises."""
    try:
        yield
    except BaseException:
        page.screenshot(path=str(path), full_page=True)
        print(f"browser screenshot: {path}")
        raise


def test_viewer_case_slider_in_jupyterlab(page, tmp_path: Path) -> None:
    label = page.locator(".fetalhead-viewer-label")
    figure = "img.fetalhead-viewer-figure"
    with _screenshot_on_failure(page, tmp_path / "failure.png"):
        text0 = label.inner_text()
        assert re.match(rf"case 1/{N_CASES}: \w+HC\.png — Dice 0\.\d+ — HC pred ", text0), text0
        assert " mm vs true " in text0
        src0 = _img_src(page, figure)
        pixels0 = page.locator(figure).screenshot()
        if _flag(SCREENSHOT_ENV):
            out = REPO / "figures" / "viewer_jupyterlab.png"
            out.parent.mkdir(exist_ok=True)
            page.locator(".fetalhead-viewer").scroll_into_view_if_needed()
            page.locator(".fetalhead-viewer").screenshot(path=str(out))
            print(f"wrote {out}")

        # Keyboard, as a user: focus the case slider's handle and press the right arrow.
        handle = page.locator(".fetalhead-viewer-case .noUi-handle")
        handle.focus()
        handle.press("ArrowRight")
        page.wait_for_function(
            "old => document.querySelector('.fetalhead-viewer-label').innerText !== old",
            arg=text0)
        page.wait_for_function(
            f"old => {{ const i = document.querySelector('{figure}');"
            " return i.src !== old && i.complete && i.naturalWidth > 0; }", arg=src0)
        text1 = label.inner_text()
        assert text1.startswith(f"case 2/{N_CASES}: ") and text1.split(" — ")[0] != text0.split(" — ")[0], text1
        assert page.locator(".fetalhead-viewer-case .widget-readout").inner_text().strip() == "2"
        assert page.locator(figure).screenshot() != pixels0  # the drawn pixels changed


def test_explorer_checkbox_in_jupyterlab(page, tmp_path: Path) -> None:
    label = page.locator(".fetalhead-augment-label")
    figure = "img.fetalhead-augment-figure"
    with _screenshot_on_failure(page, tmp_path / "failure.png"):
        text0 = label.inner_text()
        assert "v-flip yes" in text0, text0  # seed 0 with the default params flips up-down
        src0 = _img_src(page, figure)
        page.locator(".fetalhead-augment-vflip input[type=checkbox]").click()
        page.wait_for_function(
            "old => document.querySelector('.fetalhead-augment-label').innerText !== old",
            arg=text0)
        page.wait_for_function(
            f"old => document.querySelector('{figure}').src !== old", arg=src0)
        assert "v-flip no" in label.inner_text()
