"""Writing files safely: whole files or nothing, and no existing file replaced by surprise.

`atomic_file` yields a temporary path in the target's folder and renames it over the target
only when the block ends without an error (a rename within one file system is atomic): a
reader, or the next run, sees the old file or the new one, never half a file, and a failure
leaves the old file as it was and no temporary file behind. `staged_dir` does the same for a
set of files written into a folder. The `check_*` functions and `refuse_overwrite` let a
command find an unwritable or occupied target before it starts its work. `file_state` tells
whether a file read before is still the same file, and `KeptFile` is what a reader keeps of the
one file it reads frame after frame (an open clip, a parsed cine loop, an open TIFF stack or
animation; `KeptOpenFile` for the files Pillow holds open).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fetalhead.errors import FetalheadError

__all__ = ["KEPT_IDLE_S", "KeptFile", "KeptOpenFile", "atomic_file", "check_frame", "check_input_file", "check_output_dir", "check_output_file", "file_state", "frames_in",
           "refuse_overwrite", "staged_dir", "utf8_name"]


def file_state(path: str | os.PathLike) -> tuple[Path, int, int]:
    """The file `path` as it is now: (resolved path, size in bytes, modification time in ns),
    which changes when the file is replaced or rewritten; FetalheadError (one line) when it is
    missing."""
    path = Path(path)
    if not path.is_file():
        raise FetalheadError(f"missing file {path}")
    stat = path.stat()
    return path.resolve(), stat.st_size, stat.st_mtime_ns


#: seconds a kept file stays kept without a read: then it is closed, so that a long-lived process
#: (a notebook, the viewer) does not hold open a file it read once (Windows cannot delete or
#: rename an open file); longer than a batch of frames takes to measure
KEPT_IDLE_S = 10.0


class KeptFile:
    """What a reader keeps of the one file it is reading frame after frame, from its first
    frame on (an open clip, a parsed cine loop, an open TIFF stack or animation), so that each next frame
    needs neither the whole file again nor a seek. `take` gives it back only for the same file
    as it is now (`file_state`) and in the process that kept it; whatever stops being kept is
    closed with `close`, as is what is kept at exit or `idle_s` seconds after it was last kept
    (one timer thread, re-armed, not one per frame). Use it under `lock`."""

    def __init__(self, close: Callable[[Any], None] = lambda item: None, idle_s: float = KEPT_IDLE_S) -> None:
        self.lock = threading.RLock()
        self._close = close
        self._held: tuple[tuple[Path, int, int], Any, int] | None = None  # file_state, item, process
        self.idle_s = float(idle_s)
        self.clock: Callable[[], float] = time.monotonic  # seconds, for the idle time
        self._kept_at = 0.0  # clock() at the last keep
        self._timer: threading.Timer | None = None
        atexit.register(self.release)
        if hasattr(os, "register_at_fork"):  # a forked child starts with a free lock (its parent's may be held)
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.lock = threading.RLock()
        self._held = None  # the parent's item: not the child's to use or close
        self._timer = None  # the parent's timer thread does not run here

    def _arm(self, delay: float) -> None:
        timer = threading.Timer(delay, self._expire)
        timer.daemon = True  # never holds up the process's exit
        self._timer = timer
        timer.start()

    def _expire(self) -> None:
        """The timer's call: close what is kept if it was not kept again for `idle_s` s, else
        wait for the rest of that time."""
        with self.lock:
            self._timer = None
            if self._held is None or self._held[2] != os.getpid():
                return
            left = self._kept_at + self.idle_s - self.clock()
            if left > 0:
                self._arm(left)
            else:
                self.release()

    def take(self, key: tuple[Path, int, int]) -> Any | None:
        """The item kept for the file whose `file_state` is `key`, no longer kept; None when
        none is (what was kept for another file is closed)."""
        with self.lock:
            held, self._held = self._held, None
            if held is None or held[2] != os.getpid():  # a copy from the parent process: not ours to use
                return None
            if held[0] == key:
                return held[1]
            self._close(held[1])
            return None

    def keep(self, key: tuple[Path, int, int], item: Any) -> None:
        """Keep `item` for the file whose `file_state` is `key` (what was kept is closed)."""
        with self.lock:
            self.release()
            self._held = (key, item, os.getpid())
            self._kept_at = self.clock()
            if self._timer is None:
                self._arm(self.idle_s)

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether an item is kept for the file at `path` as it is now."""
        held = self._held
        try:
            return held is not None and held[2] == os.getpid() and held[0] == file_state(path)
        except FetalheadError:
            return False

    def release(self) -> None:
        """Keep nothing (what was kept is closed)."""
        with self.lock:
            held, self._held = self._held, None
            if held is not None and held[2] == os.getpid():
                self._close(held[1])


def check_frame(frame: int | None, n: int, source: str | os.PathLike, kind: str, instead: str) -> None:
    """FetalheadError (one line, naming `source`) unless `frame` (from 1) is one of the `n`
    frames of a file of several: `kind` names such a file ("TIFF stack"), `instead` what to do
    rather than choose a frame ("save it as single images")."""
    article = "an" if kind[0] in "aeiou" else "a"
    if frame is None:
        raise FetalheadError(f"{source}: {article} {kind} of {n} frames; choose the frame you measure "
                             f"(predict --frame N, 1 to {n}, or --frame all) or {instead}")
    if not 1 <= frame <= n:
        raise FetalheadError(f"{source}: no frame {frame} in this {kind} of {n} frames (1 to {n})")


def frames_in(source: Any, open_: Callable[[Any], Any], frames: Callable[[Any], int],
              unreadable: tuple[type[BaseException], ...] = ()) -> int:
    """`frames(opened)` of what `open_(source)` opens (a file or its bytes), left by its `with`
    block as it leaves it (Pillow's image closes a file it opened itself, not bytes it was
    given), or 1 when either raises one of `unreadable`: not a file of frames that reader knows
    (the decoder then reports the file's trouble as for any image)."""
    try:
        with open_(source) as opened:
            return frames(opened)
    except unreadable:
        return 1


class KeptOpenFile(KeptFile):
    """A `KeptFile` of an open multi-frame file (an object with `close()`, such as Pillow's
    image of a TIFF stack or of an animation) and its number of frames: `read` serves a frame
    through it, kept open while the file is read from its first frame on."""

    def __init__(self) -> None:
        super().__init__(close=lambda item: item[0].close())

    def read(self, path: str | os.PathLike, frame: int, open_: Callable[[Path], Any],
             frames: Callable[[Any], int], read: Callable[[Any, int], Any],
             unreadable: tuple[type[BaseException], ...] = ()) -> Any | None:
        """Frame `frame` (from 1) of the file at `path`: `read(opened, n)` of what `open_(path)`
        opened (or of what is kept open for it, the file unchanged), `n = frames(opened)` its
        frames (1 when it raises one of `unreadable`). None, and closed, when `open_` raises one
        of `unreadable` or `n` is 1 (not a file of frames: the caller reads it as an ordinary
        image). Kept open when read in order from the first frame and not at the last; closed
        otherwise, and when `read` raises."""
        path = Path(path)
        key = file_state(path)
        with self.lock:
            item = self.take(key)
            kept = item is not None
            if kept:
                opened, n = item
            else:
                try:
                    opened = open_(path)
                except unreadable:
                    return None
                try:
                    n = frames(opened)
                except unreadable:
                    n = 1
                except BaseException:
                    opened.close()
                    raise
            if n == 1:
                opened.close()
                return None
            try:
                pixels = read(opened, n)
            except BaseException:
                opened.close()
                raise
            if (kept or frame == 1) and frame < n:
                self.keep(key, (opened, n))
            else:
                opened.close()
            return pixels


def utf8_name(path: Path) -> Path:
    """`path`, or a one-line FetalheadError when its name is not valid UTF-8 (bytes of another
    encoding, from an old system or a USB stick): the CSVs and pages that name it are UTF-8."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise FetalheadError(f"{ascii(str(path))}: its name is not valid UTF-8; rename it") from None
    return path


def check_input_file(path: Path, what: str) -> None:
    """Raise FetalheadError unless `path` is an existing file; `what` names it in the message
    (e.g. "--resume", "pixel-size CSV")."""
    if path.is_dir():
        raise FetalheadError(f"{what} {path} is a folder; give a file")
    if not path.is_file():
        raise FetalheadError(f"{what} {path}: no such file")


def check_output_dir(out: Path, flag: str = "--out") -> None:
    """Raise FetalheadError unless `out` is (or can be created as) a writable folder; `flag`
    names the option in the message."""
    if out.exists() and not out.is_dir():
        raise FetalheadError(f"{flag} {out} exists and is not a folder")
    _check_parent_writable(out, flag)


def check_output_file(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Raise FetalheadError unless the file `out` can be written, and replaced only when
    `overwrite` (the --overwrite option)."""
    if out.is_dir():
        raise FetalheadError(f"{flag} {out} is a folder; give a file name")
    if os.path.lexists(out) and not overwrite:  # a link too, even one whose target is gone
        raise FetalheadError(f"{out} exists; use --overwrite to replace it")
    _check_parent_writable(out, flag)


def refuse_overwrite(targets: Sequence[Path], overwrite: bool) -> None:
    """Raise FetalheadError naming the first of `targets` that exists, unless `overwrite`; and,
    with it or not, when a file stands where a target's folder must be (--overwrite replaces
    files, not a file of yours by a folder)."""
    for target in targets:
        folder = target.parent
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise FetalheadError(f"{folder} exists and is not a folder, but {target.name} goes into it; "
                                 "move it or give another --out")
    if overwrite:
        return
    existing = [t for t in targets if os.path.lexists(t)]  # a link whose target is gone is yours too
    if existing:
        more = f" (and {len(existing) - 1} more output files)" if len(existing) > 1 else ""
        raise FetalheadError(f"{existing[0]} exists{more}; use --overwrite to replace")


def _check_parent_writable(out: Path, flag: str) -> None:
    existing = out if out.is_dir() else out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FetalheadError(f"cannot create {flag} {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FetalheadError(f"cannot write {flag} {out}: no write permission in {existing}")
    try:  # permissions say yes, but some folders (read-only mounts, /proc) still refuse a file
        with tempfile.TemporaryFile(dir=existing, prefix=".fetalhead-probe-"):
            pass
    except OSError as e:
        raise FetalheadError(f"cannot write {flag} {out}: {e.strerror or type(e).__name__} in {existing}") from None


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of `path`; return them, outermost first."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    created = []
    for d in reversed(missing):
        d.mkdir()
        created.append(d)
    return created


def _remove_empty(folders: list[Path]) -> None:
    for d in reversed(folders):
        try:
            d.rmdir()
        except OSError:
            pass


def _create_unique(folder: Path, prefix: str, create: Callable[[Path], None]) -> Path:
    """`create` a new entry `folder/<prefix><random>.tmp` that did not exist; return its path.
    (Not `tempfile.mkstemp`: its files are private, 0600, and would stay so after the
    rename; `create` uses the usual mode, which the umask narrows.)"""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}.tmp"
        try:
            create(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}*.tmp in {folder}")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary file beside `path` (missing parent folders are created);
    write it in the block. On success it replaces `path` in one rename; on any error (or
    Ctrl-C) it is deleted, with the parent folders made for it, and `path` is untouched."""
    path = Path(path)
    created = _make_parents(path)
    try:
        tmp = _create_unique(path.parent, f".{path.name}.", lambda p: p.touch(mode=0o666, exist_ok=False))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_empty(created)
        raise


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside (or inside) `out`; on success move its files into
    `out` (replacing files of the same name, keeping the others), on any error delete it and
    any parent folders created for it."""
    created = _make_parents(out)
    # Beside the target, so the final move is a rename on one file system and the target is
    # untouched until then; inside it when its parent is not writable, or is on another file
    # system (a link to a folder elsewhere, a mount point).
    inside = out.is_dir() and (not os.access(out.parent, os.W_OK | os.X_OK)
                               or os.stat(out).st_dev != os.stat(out.parent).st_dev)
    base = out if inside else out.parent
    try:
        stage = _create_unique(base, ".fetalhead-", lambda p: p.mkdir(mode=0o777))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield stage
        if out.is_dir():
            for f in sorted(stage.rglob("*")):
                dest = out / f.relative_to(stage)
                if f.is_dir():
                    dest.mkdir(exist_ok=True)
                else:
                    os.replace(f, dest)
            shutil.rmtree(stage)
        else:
            os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(created)
        raise
