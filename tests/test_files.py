"""Safe writes: a file is replaced whole or not at all, nothing temporary is left behind, and
existing files are replaced only when asked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fetalhead.errors import FetalheadError
from fetalhead.files import (
    KeptOpenFile,
    atomic_file,
    check_output_dir,
    check_output_file,
    refuse_overwrite,
    staged_dir,
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_file_replaces_the_target_on_success(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target and tmp.is_file()
        tmp.write_text("new")
        assert target.read_text() == "old"  # untouched until the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # not private like mkstemp's


def test_atomic_file_keeps_the_old_file_and_no_temporary_on_an_error(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    for failure in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(failure)):
            with atomic_file(target) as tmp:
                tmp.write_text("half")
                raise failure
        assert target.read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_file_makes_parents_and_removes_them_on_an_error(tmp_path):
    deep = tmp_path / "x" / "y" / "a.csv"
    with pytest.raises(ValueError):
        with atomic_file(deep) as tmp:
            tmp.write_text("half")
            raise ValueError
    assert list(tmp_path.iterdir()) == []
    with atomic_file(deep) as tmp:
        tmp.write_text("whole")
    assert deep.read_text() == "whole"


def test_staged_dir_moves_files_in_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")
    (out / "a.csv").write_text("old")
    with staged_dir(out) as stage:
        (stage / "a.csv").write_text("new")
        (stage / "figures").mkdir()
        (stage / "figures" / "f.png").write_bytes(b"png")
        assert (out / "a.csv").read_text() == "old"
    assert (out / "a.csv").read_text() == "new" and (out / "keep.txt").read_text() == "not ours"
    assert (out / "figures" / "f.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_dir_into_a_link_to_another_file_system(tmp_path):
    """An output folder that is a link to a folder on another file system (or a mount point):
    staged inside it, since a rename cannot cross file systems."""
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        out = tmp_path / "out"
        out.symlink_to(elsewhere, target_is_directory=True)
        with staged_dir(out) as stage:
            (stage / "a.csv").write_text("new")
        assert (Path(elsewhere) / "a.csv").read_text() == "new" and sorted(os.listdir(elsewhere)) == ["a.csv"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_dir_leaves_nothing_on_an_error(tmp_path):
    out = tmp_path / "new" / "deep"
    with pytest.raises(OSError):
        with staged_dir(out) as stage:
            (stage / "a.csv").write_text("half")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    with staged_dir(out) as stage:
        (stage / "a.csv").write_text("whole")
    assert (out / "a.csv").read_text() == "whole"
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()


def test_existing_files_are_replaced_only_when_asked(tmp_path):
    old = tmp_path / "a.csv"
    old.write_text("precious")
    with pytest.raises(FetalheadError, match="use --overwrite"):
        check_output_file(old, overwrite=False)
    check_output_file(old, overwrite=True)
    check_output_file(tmp_path / "new.csv", overwrite=False)
    with pytest.raises(FetalheadError, match=r"a.csv exists \(and 1 more output files\); use --overwrite"):
        refuse_overwrite([tmp_path / "none", old, old], overwrite=False)
    refuse_overwrite([old], overwrite=True)
    refuse_overwrite([tmp_path / "none"], overwrite=False)
    assert old.read_text() == "precious"


def test_output_checks_name_the_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FetalheadError, match="is a folder"):
        check_output_file(tmp_path, overwrite=True)
    with pytest.raises(FetalheadError, match="--results .* is a file, not a folder"):
        check_output_file(tmp_path / "file" / "r.json", overwrite=False, flag="--results")
    with pytest.raises(FetalheadError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "file")
    check_output_dir(tmp_path / "not" / "yet")
    assert not (tmp_path / "not").exists()  # checking creates nothing


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_output_checks_find_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(FetalheadError, match="no write permission"):
            check_output_dir(locked / "out")
        with pytest.raises(FetalheadError, match="no write permission"):
            check_output_file(locked / "a.csv", overwrite=False)
    finally:
        locked.chmod(stat.S_IRWXU)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_output_checks_find_a_folder_that_refuses_files_whatever_its_permissions():
    # /proc takes no new files, not even from root, for whom the permission bits say yes
    with pytest.raises(FetalheadError, match="cannot write --out /proc/x.pt"):
        check_output_file(Path("/proc/x.pt"), overwrite=False)
    with pytest.raises(FetalheadError, match="cannot write --out /proc/run"):
        check_output_dir(Path("/proc/run"))


def test_output_checks_leave_no_probe_behind(tmp_path):
    check_output_file(tmp_path / "a.csv", overwrite=False)
    check_output_dir(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_kept_file_is_given_back_only_for_the_same_file_in_the_same_process(tmp_path, monkeypatch):
    import time

    from fetalhead.files import KeptFile, file_state

    closed: list[str] = []
    kept = KeptFile(close=closed.append)
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    kept.keep(file_state(a), "A")
    assert kept.holds(a) and not kept.holds(b) and not kept.holds(tmp_path / "none")
    assert kept.take(file_state(a)) == "A" and not kept.holds(a) and closed == []  # taken back, not closed
    kept.keep(file_state(a), "A")
    assert kept.take(file_state(b)) is None and closed == ["A"]  # another file's: closed
    kept.keep(file_state(a), "A2")
    a.write_bytes(b"a, rewritten")
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not kept.holds(a) and kept.take(file_state(a)) is None and closed == ["A", "A2"]  # the file changed
    kept.keep(file_state(b), "B")
    kept.keep(file_state(a), "A3")
    assert closed == ["A", "A2", "B"]  # keeping one closes what was kept
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as a forked child sees its parent's
    assert not kept.holds(a) and kept.take(file_state(a)) is None and closed == ["A", "A2", "B"]  # not ours to close
    monkeypatch.undo()
    kept.keep(file_state(a), "A4")
    kept.release()
    assert closed == ["A", "A2", "B", "A4"] and not kept.holds(a)


def test_a_kept_file_is_closed_once_no_read_kept_it_for_a_while(tmp_path):
    """Kept again within `idle_s` (each next frame): still kept; left alone longer: closed by
    the timer, once (the clock is the test's own; the timer's waits are real but short)."""
    import time

    import fetalhead.files as files

    now = [100.0]
    closed: list[str] = []
    kept = files.KeptFile(close=closed.append, idle_s=0.05)
    kept.clock = lambda: now[0]
    a = tmp_path / "a.bin"
    a.write_bytes(b"a")
    kept.keep(files.file_state(a), "A")
    time.sleep(0.3)  # the timer fired several times, but the clock says it was kept just now
    assert kept.holds(a) and closed == []
    with kept.lock:  # the next frame: taken back and kept again
        kept.keep(files.file_state(a), kept.take(files.file_state(a)))
    now[0] += 1.0  # then a second with no read
    for _ in range(100):
        if closed:
            break
        time.sleep(0.05)
    assert closed == ["A"] and not kept.holds(a) and kept._timer is None  # closed, nothing left armed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_starts_with_nothing_kept_and_a_free_lock(tmp_path):
    """Forked while another thread reads (holds the lock): the child can still read."""
    import threading

    from fetalhead.files import KeptFile, file_state

    kept = KeptFile()
    a = tmp_path / "a.bin"
    a.write_bytes(b"a")
    kept.keep(file_state(a), "A")
    holding, done = threading.Event(), threading.Event()

    def reader() -> None:
        with kept.lock:
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    holding.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if it may take the lock and keeps nothing
            ok = kept.lock.acquire(timeout=3) and not kept.holds(a) and kept.take(file_state(a)) is None
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        done.set()
        thread.join()
    assert os.WEXITSTATUS(status) == 0
    assert kept.take(file_state(a)) == "A"  # the parent's item is still its own


class _Opened:
    """A stand-in for an open multi-frame file: counts its closes."""

    def __init__(self, name: str) -> None:
        self.name, self.closed = name, 0

    def close(self) -> None:
        self.closed += 1

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_a_kept_open_file_serves_its_frames_and_closes_what_it_does_not_keep(tmp_path):
    path = tmp_path / "clip.bin"
    path.write_bytes(b"frames")
    kept, opened = KeptOpenFile(), []

    def open_(p):
        opened.append(_Opened(p.name))
        return opened[-1]

    def read(item, n):
        return (item.name, n)

    frame = lambda k, frames=lambda item: 3: kept.read(path, k, open_, frames, read, unreadable=(OSError,))  # noqa: E731
    assert [frame(k) for k in (1, 2)] == [("clip.bin", 3)] * 2 and len(opened) == 1 and kept.holds(path)
    assert frame(3) == ("clip.bin", 3) and opened[0].closed == 1 and not kept.holds(path)  # its last frame
    assert frame(2) == ("clip.bin", 3) and opened[1].closed == 1 and not kept.holds(path)  # not from frame 1
    assert frame(1, lambda item: 1) is None and opened[2].closed == 1  # one frame: not a file of frames

    def cannot_count(item):
        raise OSError("no directory")

    assert frame(1, cannot_count) is None and opened[3].closed == 1  # uncountable: an ordinary image

    def broken(item, n):
        raise ValueError("bad frame")

    with pytest.raises(ValueError):
        kept.read(path, 1, open_, lambda item: 3, broken, unreadable=(OSError,))
    assert opened[4].closed == 1 and not kept.holds(path)

    def cannot_open(p):
        raise OSError("not mine")

    assert kept.read(path, 1, cannot_open, lambda item: 3, read, unreadable=(OSError,)) is None
    with pytest.raises(OSError):  # what `unreadable` does not name goes through
        kept.read(path, 1, cannot_open, lambda item: 3, read)


def test_frames_are_counted_through_what_opens_the_file_and_it_is_closed():
    from fetalhead.files import frames_in

    opened: list[_Opened] = []

    def open_(source):
        if source == "not mine":
            raise OSError("cannot open")
        opened.append(_Opened(source))
        return opened[-1]

    def uncountable(item):
        raise OSError("no directory")

    def broken(item):
        raise ValueError("a reader's bug")

    assert frames_in("a", open_, lambda item: 5, (OSError,)) == 5 and opened[0].closed == 1
    assert frames_in("b", open_, uncountable, (OSError,)) == 1 and opened[1].closed == 1  # read as one image
    assert frames_in("not mine", open_, lambda item: 5, (OSError,)) == 1
    with pytest.raises(ValueError):  # what `unreadable` does not name goes through, the file closed
        frames_in("c", open_, broken, (OSError,))
    assert opened[2].closed == 1
