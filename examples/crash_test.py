"""Crash test: kill `labor warmup`, `extract` and `adapt` with SIGKILL at random moments, resume, compare.

    python examples/crash_test.py --runs 3 --kills 3 --seed 0 --workdir runs/crash

For each stage: one uninterrupted run is the reference. Then, per run, the same command is
started and killed -9 at a random moment (seeded: the same --seed replays the same moments),
up to --kills times, each time started again with --resume where a resume file exists, and
finally run to its end. After every kill the output path must hold nothing or a whole
artifact (never a partial one) and the resume file, if any, must load; at the end the
artifact must equal the reference's bit for bit: every dataset, every weight, every attribute
but the artifact's own uuid, time and command line. It prints one line per run and a total,
and exits 1 if any run differed. CPU only: the runs are bit-for-bit reproducible there.

tests/test_crash.py runs a reduced form of it (extract, a few kills) in `make test`.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

# labor in a process of its own, with the torch settings of the tests (tests/conftest.py), so
# that runs started here and artifacts made in the tests' own process compare bit for bit.
LABOR = (
    "import torch; torch.set_num_threads(2); torch.backends.mkldnn.enabled = False; from labor_cli import main; main()"
)
# What differs between two runs that computed the same thing.
OWN_ATTRIBUTES = {"uuid", "created", "command"}
STAGES = ("warmup", "extract", "adapt")
TRAIN = [
    "--iters",
    "4",
    "--source-batch",
    "1",
    "--target-batch",
    "1",
    "--save-every",
    "1",
    "--log-every",
    "1",
    "--seed",
    "0",
]
RUN = ["--device", "cpu", "--workers", "0", "-q"]


def labor(*args, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", LABOR, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"labor {' '.join(map(str, args))} failed: {result.stderr.strip()}")
    return result


def resume_path(output: Path) -> Path:
    return output.with_name(output.stem + ".resume" + output.suffix)


def differences(a: Path, b: Path) -> list[str]:
    """Where two artifacts differ: datasets (bytes, dtype, shape) and attributes, all groups."""
    out = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:

        def attributes(name, node_a, node_b):
            keys = (set(node_a.attrs) | set(node_b.attrs)) - (OWN_ATTRIBUTES if name == "/" else set())
            for key in sorted(keys):
                if key not in node_a.attrs or key not in node_b.attrs:
                    out.append(f"{name} attribute {key}: only in one")
                elif not np.array_equal(np.asarray(node_a.attrs[key]), np.asarray(node_b.attrs[key])):
                    out.append(f"{name} attribute {key}")

        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            out.append(f"members differ: {sorted(set(names_a) ^ set(names_b))[:5]}")
        attributes("/", fa, fb)
        for name in sorted(set(names_a) & set(names_b)):
            node_a, node_b = fa[name], fb[name]
            attributes(name, node_a, node_b)
            if isinstance(node_a, h5py.Dataset):
                va, vb = np.asarray(node_a[()]), np.asarray(node_b[()])
                same = va.tolist() == vb.tolist() if va.dtype.kind == "O" else va.tobytes() == vb.tobytes()  # strings
                if va.dtype != vb.dtype or va.shape != vb.shape or not same:
                    out.append(f"dataset {name}")
    return out


def whole(path: Path) -> bool:
    """A complete labor artifact: opens, has its kind, and every dataset reads."""
    try:
        with h5py.File(path, "r") as f:
            if "labor_kind" not in f.attrs:
                return False
            f.visititems(lambda name, node: node[()] if isinstance(node, h5py.Dataset) else None)
        return True
    except Exception:  # noqa: BLE001 (anything unreadable is not whole)
        return False


@dataclass
class RunReport:
    stage: str
    run: int
    kills: int = 0
    moments: list[float] = field(default_factory=list)
    identical: bool = False
    problems: list[str] = field(default_factory=list)


def crash_run(
    stage: str,
    argv: list[str],
    output: Path,
    reference: Path,
    kills: int,
    rng: random.Random,
    span: float,
    run: int = 0,
) -> RunReport:
    """Start ``argv`` (writing ``output``), kill it -9 at up to ``kills`` random moments within
    ``span`` seconds of each start, resume, finish, and compare the artifact with ``reference``."""
    report = RunReport(stage, run)
    resume = resume_path(output)
    for _ in range(kills):
        command = argv + (["--resume"] if resume.exists() else [])
        moment = rng.uniform(0.1, 1.0) * span
        process = subprocess.Popen(
            [sys.executable, "-c", LABOR, *map(str, command)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            process.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            report.kills += 1
            report.moments.append(round(moment, 2))
        err = process.communicate()[1]
        if process.returncode not in (0, -signal.SIGKILL):
            report.problems.append(f"exit {process.returncode}: {err.strip()[-300:]}")
            return report
        if output.exists() and not whole(output):
            report.problems.append(f"a partial file at {output}")
            return report
        if resume.exists() and not whole(resume):
            report.problems.append(f"a damaged resume file {resume}")
            return report
        if output.exists():
            break
    if not output.exists():
        result = labor(*argv, *(["--resume"] if resume.exists() else []), check=False)
        if result.returncode != 0:
            report.problems.append(f"the last run failed: {result.stderr.strip()[-300:]}")
            return report
    if resume.exists():
        report.problems.append(f"{resume} left behind")
    for name in (output.name, resume.name):  # temporary files of killed runs go when the next run starts
        report.problems += [f"{stale} left behind" for stale in output.parent.glob(f".{name}.*.partial")]
    report.problems += differences(output, reference)
    report.identical = not report.problems
    return report


def stage_commands(workdir: Path) -> dict:
    """Each stage's command (without -o) and what it needs made first."""
    pair = workdir / "pair"
    source, target = f"gta5:{pair / 'source'}", f"cityscapes:{pair / 'target'}"
    return {
        "warmup": ["warmup", "--source", source, "--target", target, "--arch", "small", *TRAIN, *RUN],
        "extract": [
            "extract",
            "-m",
            workdir / "warmup.h5",
            "--target",
            target,
            "--batch-size",
            "1",
            "--save-every",
            "1",
            *RUN,
        ],
        "adapt": [
            "adapt",
            "-m",
            workdir / "warmup.h5",
            "--labels",
            workdir / "labels.h5",
            "--source",
            source,
            "--target",
            target,
            *TRAIN,
            *RUN,
        ],
    }


def prepare(workdir: Path) -> None:
    """The toy pair, and the reference chain the stages read: warmup.h5, masks.h5, labels.h5."""
    workdir.mkdir(parents=True, exist_ok=True)
    commands = stage_commands(workdir)
    if not (workdir / "pair").exists():
        labor("data", "toy", workdir / "pair", "--size", "tiny")
    for stage, output in (("warmup", "warmup.h5"), ("extract", "masks.h5")):
        if not (workdir / output).exists():
            labor(*commands[stage], "-o", workdir / output)
    if not (workdir / "labels.h5").exists():
        labor(
            "select",
            "--masks",
            workdir / "masks.h5",
            "--mode",
            "ppl",
            "--points",
            "5",
            "-o",
            workdir / "selection.h5",
            "-q",
        )
        labor(
            "label",
            "--selection",
            workdir / "selection.h5",
            "--target",
            f"cityscapes:{workdir / 'pair' / 'target'}",
            "-o",
            workdir / "labels.h5",
            "-q",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Killed runs per stage.")
    parser.add_argument("--kills", type=int, default=3, help="Kills per run, at most.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--workdir", type=Path, default=Path("runs/crash"))
    parser.add_argument("--stages", default=",".join(STAGES))
    args = parser.parse_args()
    prepare(args.workdir)
    commands = stage_commands(args.workdir)
    reports = []
    for stage in args.stages.split(","):
        reference = args.workdir / f"{stage}-reference.h5"
        seconds = reference.with_suffix(".seconds")
        if not reference.exists() or not seconds.exists():
            reference.unlink(missing_ok=True)
            started = time.monotonic()
            labor(*commands[stage], "-o", reference)
            seconds.write_text(f"{time.monotonic() - started:.2f}\n")
        span = max(2.0, float(seconds.read_text()))  # kill moments fall within one uninterrupted run's time
        for run in range(args.runs):
            output = args.workdir / f"{stage}-run{run}.h5"
            for leftover in (output, resume_path(output)):
                leftover.unlink(missing_ok=True)
            rng = random.Random(f"{args.seed}-{stage}-{run}")
            report = crash_run(stage, commands[stage] + ["-o", output], output, reference, args.kills, rng, span, run)
            reports.append(report)
            print(
                f"{stage} run {run}: {report.kills} kills at {report.moments} s, "
                f"{'identical' if report.identical else 'DIFFERENT: ' + '; '.join(report.problems)}",
                flush=True,
            )
    kills = sum(r.kills for r in reports)
    identical = sum(r.identical for r in reports)
    print(json.dumps({"seed": args.seed, "runs": len(reports), "kills": kills, "identical": identical}))
    return 0 if identical == len(reports) else 1


if __name__ == "__main__":
    sys.exit(main())
