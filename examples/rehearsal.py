"""Measuring helper of examples/rehearsal.sh: runs one stage and records what it needed.

python examples/rehearsal.py stage RUN NAME --units N --unit iteration [--artifact PATH] [--images K] -- CMD...
    runs CMD, passes its output through, and appends to RUN/stages.jsonl: wall time, the peak
    resident memory of its largest process (getrusage of the child and what it waited for), the
    peak proportional memory of its whole process tree (sampled every 0.2 s from
    /proc/PID/smaps_rollup: shared pages counted once), time per unit, and the bytes of the
    artifact (a file or a folder) per image. Exits with CMD's exit status.
python examples/rehearsal.py annotate RUN --selection S --target KIND:PATH --split SPLIT --output O
    [--points N] [-- LABOR...]
    starts `labor annotate --port 0` in the background, answers N points per image from the
    ground truth through its JSON API (urllib), finishes it, and records it like a stage (time
    per answer, the first GET of each full-size picture).
python examples/rehearsal.py table RUN
    prints one table of every stage and writes RUN/summary.json; exits 1 if a stage failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.2
TABLE_KEYS = ("stages", "total_s", "failed")  # what summary.json holds besides the facts of the run


@dataclass
class Usage:
    """What one child process (and every process it waited for) used."""

    exit_code: int
    wall_s: float
    cpu_s: float  # user + system, all threads and waited-for children: the work, whatever the load
    peak_rss_bytes: int  # the largest single process (the stage's own, or a worker)
    peak_tree_pss_bytes: int  # the process tree at its sampled peak, shared pages counted once


@dataclass
class StageRecord:
    """One stage of the rehearsal, as measured."""

    name: str
    exit_code: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    peak_tree_pss_bytes: int
    units: int
    unit: str
    artifact: str | None = None
    artifact_bytes: int | None = None
    images: int | None = None
    note: str = ""
    unit_s: float | None = None  # time per unit measured inside the stage; else wall time / units

    @property
    def s_per_unit(self) -> float | None:
        if self.unit_s is not None:
            return self.unit_s
        return self.wall_s / self.units if self.units else None

    @property
    def bytes_per_image(self) -> float | None:
        if self.artifact_bytes is None or not self.images:
            return None
        return self.artifact_bytes / self.images

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "s_per_unit": self.s_per_unit, "bytes_per_image": self.bytes_per_image}


# ---------------------------------------------------------------------------------------------
# Memory of a process tree


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(_children(p))
    return found


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _lines(path: Path | None) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except (OSError, TypeError):
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed PSS of a process and its descendants until stopped; with
    ``progress_file``, also when that file (a training stage's OUTPUT.losses.csv, one row per
    iteration with --log-every 1) gains lines."""

    def __init__(self, pid: int, progress_file: Path | None = None):
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_event = pid, 0, threading.Event()
        self.progress_file, self.progress = progress_file, []  # (seconds, lines) at each change

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, sum(_pss_bytes(p) for p in _tree(self.pid)))
            lines = _lines(self.progress_file)
            if lines > 1 and (not self.progress or lines != self.progress[-1][1]):  # rows, not the header
                self.progress.append((time.perf_counter(), lines))
            self._stop_event.wait(SAMPLE_SECONDS)

    def steady_unit_s(self) -> float | None:
        """Seconds per progress line between the first row and the last (start-up, the first unit
        and what follows the last one left out); None with fewer than two rows seen."""
        if len(self.progress) < 2:
            return None
        (t0, n0), (t1, n1) = self.progress[0], self.progress[-1]
        return (t1 - t0) / (n1 - n0)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


class Measured:
    """A child process with its memory watched; ``wait()`` gives its Usage."""

    def __init__(self, command: list[str], progress_file: Path | None = None, **popen):
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, **popen)
        self.sampler = TreeSampler(self.process.pid, progress_file)
        self.sampler.start()

    def wait(self) -> Usage:
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - self.started
        cpu = usage.ru_utime + usage.ru_stime
        return Usage(
            self.process.returncode, round(wall, 2), round(cpu, 1), usage.ru_maxrss * 1024, self.sampler.stop()
        )


# ---------------------------------------------------------------------------------------------
# Records


def size_of(path: Path) -> int | None:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


def append_record(run: Path, record: StageRecord) -> None:
    with open(run / "stages.jsonl", "a") as f:
        f.write(json.dumps(record.as_dict()) + "\n")


def read_records(run: Path) -> list[dict]:
    path = run / "stages.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_stage(args: argparse.Namespace) -> int:
    command = args.command
    print(f"== {args.name}: {' '.join(command)}", flush=True)
    measured = Measured(command, Path(args.progress_file) if args.progress_file else None)
    usage = measured.wait()
    artifact = Path(args.artifact) if args.artifact else None
    record = StageRecord(
        name=args.name,
        **dataclasses.asdict(usage),
        units=args.units,
        unit=args.unit,
        artifact=str(artifact) if artifact else None,
        artifact_bytes=size_of(artifact) if artifact and usage.exit_code == 0 else None,
        images=args.images,
        note=args.note,
        unit_s=measured.sampler.steady_unit_s(),
    )
    append_record(Path(args.run), record)
    print(
        f"== {args.name}: exit {usage.exit_code}, {usage.wall_s:.1f} s, CPU {usage.cpu_s:.0f} s, "
        f"peak RSS {usage.peak_rss_bytes / 2**30:.2f} GiB",
        flush=True,
    )
    return usage.exit_code


# ---------------------------------------------------------------------------------------------
# labor annotate through its JSON API


class Client:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=120) as reply:
            data = reply.read()
            return json.loads(data) if reply.headers.get_content_type() == "application/json" else data

    def post(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=600) as reply:
            return json.loads(reply.read())


def _server_url(process: subprocess.Popen, echo: list[str]) -> str:
    """The address `labor annotate` prints ("open http://HOST:PORT/ in a browser")."""
    for line in process.stdout:
        echo.append(line)
        print(line, end="", flush=True)
        found = re.search(r"open (http://\S+) in a browser", line)
        if found:
            return found.group(1)
    raise SystemExit("rehearsal: labor annotate ended before it printed its address")


def _ground_truth(target: str, split: str):
    """image id -> (H, W) class indices, read by labor's own loader (the annotator's eyes)."""
    from labor_cli.data.datasets import open_dataset

    dataset = open_dataset(target, split)
    return {image_id: i for i, image_id in enumerate(dataset.image_ids)}, dataset


def answer_points(client: Client, target: str, split: str, per_image: int) -> tuple[int, float, float]:
    """Answer ``per_image`` points of each image from the ground truth: (answers, s per answer,
    s of the slowest first GET of an image's picture)."""
    session = client.get("/api/session")
    names = [c["name"] for c in session["classes"]]
    index_of, dataset = _ground_truth(target, split)
    answers, answer_s, picture_s = 0, 0.0, 0.0
    for i, image in enumerate(session["images"]):
        started = time.perf_counter()
        client.get(f"/image/{i}")
        picture_s = max(picture_s, time.perf_counter() - started)
        truth = dataset.read_label(index_of[image["image_id"]])
        for x, y in client.get(f"/api/image/{i}")["anchors"][:per_image]:
            value = int(truth[y, x])
            body = {"image_id": image["image_id"], "x": x, "y": y, "seconds": 1.0}
            body["class"] = "unsure" if value == 255 else names[value]
            started = time.perf_counter()
            client.post("/api/answer", body)
            answer_s += time.perf_counter() - started
            answers += 1
    return answers, answer_s / max(answers, 1), picture_s


def run_annotate(args: argparse.Namespace) -> int:
    labor = args.command or ["labor"]
    command = labor + ["annotate", "--selection", args.selection, "--target", args.target]
    command += ["--split", args.split, "-o", args.output, "--port", "0", "--force"]
    print(f"== annotate: {' '.join(command)}", flush=True)
    measured = Measured(command, stdout=subprocess.PIPE, text=True)
    echo: list[str] = []
    try:
        client = Client(_server_url(measured.process, echo))
        answers, per_answer, picture = answer_points(client, args.target, args.split, args.points)
        reply = client.post("/api/finish")
    except BaseException:
        measured.process.terminate()
        raise
    finally:
        rest = measured.process.stdout.read()
        print(rest, end="", flush=True)
    usage = measured.wait()
    note = f"{answers} answers, {per_answer * 1000:.1f} ms each; slowest picture GET {picture:.2f} s"
    if reply.get("output") != args.output:
        usage.exit_code = usage.exit_code or 1
        note += f"; finish replied {reply}"
    record = StageRecord(
        name="annotate (HTTP API)",
        **dataclasses.asdict(usage),
        units=answers,
        unit="answer",
        artifact=args.output,
        artifact_bytes=size_of(Path(args.output)),
        images=args.images,
        note=note,
        unit_s=per_answer,
    )
    append_record(Path(args.run), record)
    print(f"== annotate: exit {usage.exit_code}, {note}", flush=True)
    return usage.exit_code


# ---------------------------------------------------------------------------------------------
# The summary


def _gib(value) -> str:
    return "-" if value is None else f"{value / 2**30:.2f}"


def _per_unit(record: dict) -> str:
    value = record["s_per_unit"]
    if value is None:
        return "-"
    text = f"{value * 1000:.1f} ms" if value < 1 else f"{value:.1f} s"
    return f"{text} / {record['unit']}"


def _bytes(value) -> str:
    if value is None:
        return "-"
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def write_table(args: argparse.Namespace) -> int:
    run = Path(args.run)
    records = read_records(run)
    header = (
        "stage",
        "exit",
        "wall s",
        "CPU s",
        "peak RSS GiB",
        "tree PSS GiB",
        "time per unit",
        "artifact",
        "per image",
    )
    rows = [
        (
            r["name"],
            str(r["exit_code"]),
            f"{r['wall_s']:.1f}",
            "-" if r.get("cpu_s") is None else f"{r['cpu_s']:.0f}",
            _gib(r["peak_rss_bytes"]),
            _gib(r["peak_tree_pss_bytes"]),
            _per_unit(r),
            _bytes(r["artifact_bytes"]),
            _bytes(r["bytes_per_image"]),
        )
        for r in records
    ]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) if k == 0 else cell.rjust(w) for k, (cell, w) in enumerate(zip(row, widths))))
    for r in records:
        if r["note"]:
            print(f"  {r['name']}: {r['note']}")
    failed = [r["name"] for r in records if r["exit_code"] != 0]
    total = sum(r["wall_s"] for r in records)
    print(f"total {total / 60:.1f} min over {len(records)} stages; failed: {', '.join(failed) or 'none'}")
    path = run / "summary.json"
    facts = {k: v for k, v in (json.loads(path.read_text()) if path.is_file() else {}).items() if k not in TABLE_KEYS}
    facts.update(json.loads(args.facts or "{}"))  # kept from an earlier table of the same run, updated
    summary = {"stages": records, "total_s": round(total, 1), "failed": failed, **facts}
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if failed or not records else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="what", required=True)
    stage = commands.add_parser("stage")
    stage.add_argument("run")
    stage.add_argument("name")
    stage.add_argument("--units", type=int, default=1)
    stage.add_argument("--unit", default="run")
    stage.add_argument("--artifact")
    stage.add_argument("--images", type=int)
    stage.add_argument("--note", default="")
    stage.add_argument("--progress-file", help="a file that gains one line per unit (OUTPUT.losses.csv)")
    annotate = commands.add_parser("annotate")
    annotate.add_argument("run")
    for name in ("--selection", "--target", "--output"):
        annotate.add_argument(name, required=True)
    annotate.add_argument("--split", default="train")
    annotate.add_argument("--points", type=int, default=10)
    annotate.add_argument("--images", type=int)
    table = commands.add_parser("table")
    table.add_argument("run")
    table.add_argument("--facts", help="JSON object of facts to keep in summary.json (build, machine)")
    command = argv[argv.index("--") + 1 :] if "--" in argv else []  # what follows -- is the command, untouched
    args = parser.parse_args(argv[: len(argv) - len(command) - (1 if "--" in argv else 0)])
    args.command = command
    return {"stage": run_stage, "annotate": run_annotate, "table": write_table}[args.what](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
