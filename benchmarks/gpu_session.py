"""All the GPU work in one command: train and export candidate models, then benchmark.

Made for a GPU machine lent for minutes, which takes a small working tree and gives back a
few files. Run from the repository root:

    python3 benchmarks/gpu_session.py --cache .cache/carry_320x480.npz --out "$OUT"
    python3 benchmarks/gpu_session.py --cache .cache/carry_320x480.npz --out "$OUT" \
        --run w16=default:300:base_channels=16 --run w32=default:300 --stages env,smoke,train

Stages, each run as its own process (a failure is logged with its exit code and the next
stage still runs), each writing its results as soon as it has them:

1. env    -- torch, CUDA and the GPU's name;
2. smoke  -- within the first 30 s: imports, the carry file, a few training steps, best.pt,
             the fp16 export and reading it back (a broken setup shows here, not at minute 5);
3. train  -- the runs side by side (without --run: the `default` preset for --budget-default
             seconds and the `small` preset for --budget-small seconds), each exported in fp16
             as soon as it ends; several runs share the GPU well, since one run alone uses
             little of it;
4. bench  -- training throughput of the reference and default recipes at equal sizes,
             model FLOP utilisation, latency (`fetalhead bench --no-train`).

A run is NAME=PRESET:SECONDS[:KEY=VALUE,...]: `fetalhead train --preset PRESET --time-budget
SECONDS --set KEY=VALUE ...`. The smoke stage trains the first run's preset and settings; when
it fails, train is skipped (its minutes are better spent on a second try). The whole session
keeps to `--deadline` seconds (default 570, under the GPU machine's 600 s per command): the
runs' budgets are cut to what is left after env and smoke, each run is exported as soon as it
ends, and histories.csv is rewritten every 30 s while they train, so a run killed from outside
still leaves its history. Files in --out (at most 8, so at most MAX_RUNS runs):
session.log, stages.json, histories.csv (every run's history, column "run"), bench.json and
fetalhead_NAME.pt per run. Choose among the runs on the validation part afterwards
(`fetalhead evaluate --checkpoint FILE --part val`).

`--dry-run` runs the same stages on the CPU with quick-mode presets and seconds-long budgets
(a CI test does this), so the plumbing is proven before a GPU sees it. Outside a dry run, a
Python that sees no CUDA device fails the env stage (exit 3) and skips smoke, train and bench
within seconds, instead of training on the CPU for the whole budget: the machine's minutes are
left for a second try.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_RUNS = 4  #: 8 files come back: session.log, stages.json, histories.csv, bench.json + a file per run
STAGES = ("env", "smoke", "train", "bench")
DRY_RUN_BUDGET_S = 3.0  #: seconds of training per run in a dry run
TRAVEL_MIB = 64  #: what goes to the GPU machine: the working tree and the carry file together
NO_GPU_EXIT = 3  #: the exit code of the env check, and of a stage skipped, when --python sees no CUDA device
CUDA_EXIT = f"; import sys; sys.exit(0 if torch.cuda.is_available() else {NO_GPU_EXIT})"
DEADLINE_S = 570.0  #: default session deadline: a command on the GPU machine gets at most 600 s
START_S = 20.0  #: seconds a training run spends before its budget starts and after it ends (data, last validation)
EXPORT_S = 15.0  #: seconds kept for each run's export after training
HISTORY_EVERY_S = 30.0  #: histories.csv is rewritten this often while the runs train


@dataclass(frozen=True)
class Run:
    """One training run: `fetalhead train --preset preset --time-budget seconds --set ...`."""

    name: str
    preset: str
    seconds: float
    settings: tuple[str, ...] = ()


def parse_run(text: str) -> Run:
    """"NAME=PRESET:SECONDS[:KEY=VALUE,...]" -> Run; ValueError with a one-line message."""
    name, sep, rest = text.partition("=")
    parts = rest.split(":", 2)
    if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name) or len(parts) < 2:
        raise ValueError(f"run {text!r} is not NAME=PRESET:SECONDS[:KEY=VALUE,...] (NAME: letters, digits, _ or -)")
    try:
        seconds = float(parts[1])
    except ValueError:
        raise ValueError(f"run {text!r}: {parts[1]!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"run {text!r}: the budget must be positive")
    settings = tuple(x.strip() for x in parts[2].split(",") if x.strip()) if len(parts) == 3 else ()
    return Run(name, parts[0], seconds, settings)


def fit_to_deadline(runs: list[Run], seconds_left: float) -> list[Run]:
    """`runs` with each budget cut so that all of them (side by side) and their exports end
    within `seconds_left`: at most seconds_left - START_S - EXPORT_S x len(runs); ValueError
    when that leaves less than a second."""
    most = seconds_left - START_S - EXPORT_S * len(runs)
    if most < 1.0:
        raise ValueError(f"{seconds_left:.0f} s left before the deadline: no time to train")
    return [Run(r.name, r.preset, min(r.seconds, round(most, 1)), r.settings) for r in runs]


class Session:
    """Runs commands, tees their output into session.log, records each stage in stages.json."""

    def __init__(self, out: Path, work: Path) -> None:
        self.out, self.work = out, work
        self.log = open(out / "session.log", "a", buffering=1)
        self.stages: list[dict] = []
        self.t0 = time.monotonic()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}

    def say(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {msg}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def spawn(self, name: str, cmd: list[str]) -> tuple[subprocess.Popen, Path]:
        """Start `cmd` with its output in work/<name>.out; returns the process and that file."""
        path = self.work / f"{name}.out"
        self.say(f"$ {' '.join(cmd)}")
        with open(path, "w") as f:  # the child keeps its own copy of the file descriptor
            return subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT), path

    def finish(self, name: str, proc: subprocess.Popen, path: Path, deadline: float) -> int:
        """Wait for `proc` until `deadline` (monotonic seconds), kill it past that; log its output."""
        try:
            rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = 124
            self.say(f"{name}: killed at its time limit")
        text = path.read_text(errors="replace")
        tail = "\n".join(text.splitlines()[-25:])
        self.log.write(f"--- {name} (exit {rc}) ---\n{text}\n")
        print(f"--- {name} (exit {rc}), last lines ---\n{tail}", flush=True)
        return rc

    def run(self, name: str, cmd: list[str], limit_s: float) -> int:
        proc, path = self.spawn(name, cmd)
        return self.finish(name, proc, path, time.monotonic() + limit_s)

    def stage(self, name: str, fn) -> None:
        """Run stage `fn` (returns an exit code); any exception counts as a failure, not a stop."""
        t = time.monotonic()
        self.say(f"== stage {name}")
        try:
            rc = int(fn())
        except Exception as e:  # noqa: BLE001  (a stage's failure must not stop the next)
            self.say(f"{name}: {type(e).__name__}: {e}")
            rc = 1
        self.stages.append(dict(stage=name, exit_code=rc, seconds=round(time.monotonic() - t, 1)))
        self.say(f"== stage {name}: exit {rc} in {time.monotonic() - t:.1f} s")
        tmp = self.out / "stages.json.tmp"
        tmp.write_text(json.dumps(self.stages, indent=2) + "\n")
        os.replace(tmp, self.out / "stages.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="carry file (fetalhead prepare-cache)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")), help="result folder")
    p.add_argument("--run", action="append", default=[], metavar="NAME=PRESET:SECONDS[:KEY=VALUE,...]",
                   help=f"a training run (repeatable, at most {MAX_RUNS}); default: the default and small presets")
    p.add_argument("--budget-default", type=float, default=240.0, help="seconds of training, default preset")
    p.add_argument("--budget-small", type=float, default=120.0, help="seconds of training, small preset")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    p.add_argument("--python", default=sys.executable, help="the Python that has a CUDA torch")
    p.add_argument("--deadline", type=float, default=DEADLINE_S,
                   help="seconds from the start within which everything ends (budgets are cut to fit)")
    p.add_argument("--dry-run", action="store_true", help="CPU, quick presets, seconds-long budgets")
    args = p.parse_args(argv)
    try:
        runs = [parse_run(r) for r in args.run] or [Run("default", "default", args.budget_default),
                                                    Run("small", "small", args.budget_small)]
        stages = [x.strip() for x in args.stages.split(",") if x.strip()]
        if len(runs) > MAX_RUNS or len({r.name for r in runs}) < len(runs):
            raise ValueError(f"at most {MAX_RUNS} runs, with different names")
        if not stages or set(stages) - set(STAGES):
            raise ValueError(f"--stages {args.stages!r}: choose from {', '.join(STAGES)}")
        if not args.cache.is_file():
            raise ValueError(f"no carry file {args.cache}")
        for flag, budget in (("--budget-default", args.budget_default), ("--budget-small", args.budget_small),
                             ("--deadline", args.deadline)):
            if not budget > 0:  # NaN too
                raise ValueError(f"{flag} {budget:g}: must be a positive number of seconds")
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. a file where a parent folder should be
            raise ValueError(f"cannot create --out {args.out}: {e.strerror}") from None
    except ValueError as e:
        print(f"gpu_session: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        runs = [Run(r.name, r.preset, DRY_RUN_BUDGET_S, r.settings) for r in runs]
    work = Path(tempfile.mkdtemp(prefix="gpu_session_"))
    s = Session(args.out, work)
    deadline = s.t0 + args.deadline
    py, cache = args.python, str(args.cache.resolve())
    quick = ["--quick"] if args.dry_run else []
    fh = [py, "-m", "fetalhead"]
    s.say(f"out={args.out} work={work} dry_run={args.dry_run} stages={stages} runs={runs}")

    cuda: dict[str, bool] = {}  # whether --python sees a CUDA device, once asked
    smoked: dict[str, int] = {}  # the smoke stage's exit code, once it ran

    def env() -> int:
        code = ("import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, "
                "'cuda', torch.version.cuda); print('device', torch.cuda.get_device_name() "
                "if torch.cuda.is_available() else 'cpu (no CUDA)')" + CUDA_EXIT)
        rc = s.run("env", [py, "-c", code], 60)
        cuda["seen"] = rc == 0
        if shutil.which("nvidia-smi"):
            s.run("nvidia-smi", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"], 30)
        return 0 if args.dry_run and rc == NO_GPU_EXIT else rc  # a dry run needs no GPU

    def without_gpu(stage: str) -> bool:
        """Outside a dry run: whether `stage` must be skipped because --python sees no CUDA
        device (it would train on the CPU and spend the machine's minutes for nothing)."""
        if args.dry_run:
            return False
        if "seen" not in cuda:  # the env stage did not run
            cuda["seen"] = s.run("cuda-check", [py, "-c", "import torch" + CUDA_EXIT], 60) == 0
        if not cuda["seen"]:
            s.say(f"{stage}: skipped, {py} sees no CUDA device (see the env stage)")
        return not cuda["seen"]

    def smoke() -> int:
        if without_gpu("smoke"):
            return NO_GPU_EXIT
        run, first = work / "smoke", runs[0]  # what the train stage runs first, for seconds
        sets = [x for kv in first.settings for x in ("--set", kv)]
        rc = s.run("smoke-train", fh + ["train", "--preset", first.preset, "--cache", cache, "--out", str(run),
                                        "--time-budget", "3" if args.dry_run else "6", *sets, "--quiet", *quick], 120)
        smoked["rc"] = rc or s.run("smoke-export", fh + ["export", "--checkpoint", str(run / "best.pt"),
                                                         "--out", str(run / "export.pt")], 60)
        return smoked["rc"]

    def write_histories() -> None:
        """histories.csv: every run's history so far (one file for all runs: few files come back)."""
        header, rows = None, []
        for r in runs:
            history = work / r.name / "history.csv"
            if history.is_file():  # written whole after each epoch
                first, *rest = history.read_text().splitlines() or [""]
                header = header or f"run,{first}"
                rows += [f"{r.name},{line}" for line in rest]
        if header:
            tmp = args.out / "histories.csv.tmp"
            tmp.write_text("\n".join([header, *rows]) + "\n")
            os.replace(tmp, args.out / "histories.csv")

    def export(r: Run) -> int:
        best = work / r.name / "best.pt"
        if not best.is_file():  # a run killed at its limit still has its best epoch
            return 0
        limit = 60.0 if args.dry_run else max(min(60.0, deadline - time.monotonic()), EXPORT_S)
        return s.run(f"export-{r.name}", fh + ["export", "--checkpoint", str(best),
                                               "--out", str(args.out / f"fetalhead_{r.name}.pt"), "--overwrite"], limit)

    def train() -> int:
        if without_gpu("train"):
            return NO_GPU_EXIT
        if smoked.get("rc", 0) != 0:
            s.say(f"train: skipped, the smoke stage failed (exit {smoked['rc']}): fix it and run again")
            return smoked["rc"]
        todo = runs if args.dry_run else fit_to_deadline(runs, deadline - time.monotonic())
        for r, cut in zip(runs, todo, strict=True):
            if cut.seconds < r.seconds:
                s.say(f"train-{r.name}: {r.seconds:g} s cut to {cut.seconds:g} s to end within --deadline")
        procs = {}
        for r in todo:  # side by side: one run alone leaves most of the GPU idle
            sets = [x for kv in r.settings for x in ("--set", kv)]
            procs[r.name] = s.spawn(f"train-{r.name}", fh + [
                "train", "--preset", r.preset, "--cache", cache, "--out", str(work / r.name),
                "--time-budget", str(r.seconds), *sets, "--quiet", *quick])
        kill_at = time.monotonic() + max(r.seconds for r in todo) + 120
        if not args.dry_run:
            kill_at = min(kill_at, deadline - EXPORT_S * len(todo))
        rcs: dict[str, int] = {}
        written = time.monotonic()
        while len(rcs) < len(todo):  # each run exported as soon as it ends
            for r in todo:
                proc, path = procs[r.name]
                if r.name not in rcs and (proc.poll() is not None or time.monotonic() >= kill_at):
                    rcs[r.name] = s.finish(f"train-{r.name}", proc, path, kill_at)
                    rcs[r.name] = export(r) or rcs[r.name]
                    write_histories()
            if time.monotonic() - written >= HISTORY_EVERY_S:
                write_histories()
                written = time.monotonic()
            time.sleep(0.2)
        write_histories()
        return max(rcs.values())

    def bench() -> int:
        if without_gpu("bench"):
            return NO_GPU_EXIT
        extra = ["--quick", "--device", "cpu", "--steps", "2"] if args.dry_run else ["--steps", "20"]
        limit = 240.0 if args.dry_run else min(240.0, deadline - time.monotonic())
        if limit < 30:
            s.say(f"bench: skipped, {limit:.0f} s left before --deadline")
            return 1
        return s.run("bench", fh + ["bench", "--cache", cache, "--no-train", "--out",
                                    str(args.out / "bench.json"), "--overwrite", *extra], limit)

    for name, fn in (("env", env), ("smoke", smoke), ("train", train), ("bench", bench)):
        if name in stages:
            s.stage(name, fn)
    s.say("files: " + ", ".join(f"{f.name} ({f.stat().st_size / 2**20:.2f} MiB)" for f in sorted(args.out.iterdir())))
    shutil.rmtree(work, ignore_errors=True)
    s.log.close()
    return max(st["exit_code"] for st in s.stages)


if __name__ == "__main__":
    sys.exit(main())
