"""What every artifact shares: its kind and schema, its provenance, atomic writes and checked reads.

Every stage writes exactly one artifact through :func:`create_artifact` and reads its inputs
through :func:`open_artifact`. The kinds and their schema versions are listed once, here; the
layout of each kind is in docs/artifacts.md.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import shlex
import shutil
import sys
import uuid as _uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from labor_cli import __version__
from labor_cli.errors import Interrupted, LaborError, LaborUsageError

# kind -> schema version this package writes and the newest it reads.
SCHEMA_VERSIONS: dict[str, int] = {
    "checkpoint": 1,
    "masks": 1,
    "selection": 1,
    "labels": 1,
    "evaluation": 1,
}


def a_kind(kind: str) -> str:
    """'an evaluation artifact', 'a masks artifact': an artifact kind as error messages name it."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} artifact"


def command_line() -> str:
    return shlex.join([Path(sys.argv[0]).name] + sys.argv[1:])


def check_output_path(path: Path, force: bool, inputs: tuple = ()) -> None:
    """Refuse before any work is done: an output that is one of the stage's ``inputs`` (even with
    --force: the new artifact's lineage names that input, which replacing it would lose), an
    existing output without --force, or an unwritable folder."""
    path = Path(path)
    for given in inputs:
        if given is not None and Path(given).resolve() == path.resolve():
            raise LaborUsageError(f"-o {path}: the output would replace its own input {given}; write another file")
    if path.exists() and not force:
        raise LaborError(f"{path}: already exists; pass --force to replace it")
    if path.is_dir():
        raise LaborError(f"{path}: is a folder, expected a file name for the output artifact")
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise LaborError(f"{path}: cannot write in {existing}: it is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LaborError(f"{path}: cannot write in {existing} (permission denied)")


def resume_path_for(output: Path) -> Path:
    """runs/warmup.h5 -> runs/warmup.resume.h5: the periodic saves of a run in progress."""
    return output.with_name(output.stem + ".resume" + (output.suffix or ".h5"))


def lock_path_for(output: Path) -> Path:
    """runs/warmup.h5 -> runs/warmup.h5.lock: held while a run writes OUTPUT or its resume file."""
    return output.with_name(output.name + ".lock")


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold OUTPUT.lock (flock) while a run writes OUTPUT, its resume file or its temporary files:
    a second run on the same output stops at once with one line. The kernel drops the lock when
    its process dies, so a killed run never blocks the next one; the file itself goes on release.
    Stale temporary files of killed runs are removed once the lock is held (no one else writes them)."""
    output = Path(output)
    if output.name in ("", ".."):  # '.', '/', '..': no name to lock; the stage refuses it in its own words
        yield
        return
    created = _make_folders(output.parent)
    if created is None:  # cannot create the folder: the stage says so in its own words
        yield
        return
    lock = lock_path_for(output)
    fd = None
    try:
        fd = _take_lock(output, lock)
        for name in (output.name, resume_path_for(output).name):
            for stale in output.parent.glob(f".{glob_escape(name)}.*.partial"):
                stale.unlink(missing_ok=True)
        yield
    finally:
        if fd is not None:
            lock.unlink(missing_ok=True)  # before unlocking: a run waiting on this file then locks a new one
            os.close(fd)
        for folder in reversed(created):  # folders made for the lock alone go again if nothing was written
            with contextlib.suppress(OSError):
                folder.rmdir()


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _make_folders(folder: Path) -> list[Path] | None:
    """Create ``folder`` and its missing parents; the ones created, or None where that fails."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    try:
        for each in reversed(missing):
            each.mkdir()
    except OSError:
        return None
    return missing


def _take_lock(output: Path, lock: Path) -> int | None:
    """An exclusive flock on ``lock``, or a LaborError naming the run that holds it. None where the
    file system has no locks (some network file systems): the run goes on unlocked."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.ENOENT, errno.ENOTDIR):
                return None  # an unwritable folder: the stage says so in its own words
            raise LaborError(f"{lock}: cannot create the lock file ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LaborError(
                f"{output}: another labor run (pid {holder}) is writing it or its resume file "
                f"(lock {lock}); wait for it to finish, or choose another output"
            ) from None
        except OSError:
            os.close(fd)
            return None
        # The run that held the lock removes the file before it unlocks: if that happened between
        # our open and our flock, we hold a lock on a removed file; lock the new one instead.
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


@dataclass
class Parent:
    """An input artifact, recorded in the output's lineage."""

    kind: str
    uuid: str
    path: str


class KeepPartial(Interrupted):
    """Raised inside :func:`create_artifact`'s block: stop, keeping what is written as ``keep_as``."""


@contextlib.contextmanager
def create_artifact(
    path: Path,
    kind: str,
    config: dict[str, Any],
    parents: list[Parent] = (),
    force: bool = False,
    keep_as: Path | None = None,
    start_from: Path | None = None,
) -> Iterator[h5py.File]:
    """Write an artifact to a temporary name beside ``path`` and rename it when complete.

    A crash, a Ctrl-C or a full disk inside the ``with`` block leaves nothing under ``path``
    (and an existing file there untouched). A :class:`KeepPartial` raised in the block renames
    the unfinished file to ``keep_as`` instead (a resume file); ``start_from`` starts from a
    copy of such a file rather than from an empty one.
    """
    path = Path(path)
    check_output_path(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    artifact_uuid = str(_uuid.uuid4())
    temporary = path.with_name(f".{path.name}.{artifact_uuid[:8]}.partial")
    existed = path.exists()
    try:
        if start_from is not None:
            shutil.copyfile(start_from, temporary)
        with h5py.File(temporary, "a" if start_from is not None else "w") as f:
            f.attrs["labor_kind"] = kind
            f.attrs["labor_schema"] = SCHEMA_VERSIONS[kind]
            f.attrs["labor_version"] = __version__
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["command"] = command_line()
            f.attrs["config"] = json.dumps(config, sort_keys=True, default=str)
            f.attrs["uuid"] = artifact_uuid
            f.attrs["lineage"] = json.dumps([vars(p) for p in parents])
            yield f
        os.replace(temporary, path)
    except KeepPartial:
        if keep_as is not None and temporary.exists():
            os.replace(temporary, keep_as)
        temporary.unlink(missing_ok=True)
        raise
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        kept = ""
        if keep_as is not None and Path(keep_as).exists():
            kept = f"; the last save, {keep_as}, is kept: free some space and run the same command with --resume"
        elif existed:
            kept = f"; {path} is as it was"
        if is_disk_full(exc):
            raise LaborError(f"{path}: disk full while writing; nothing was written{kept}") from exc
        raise LaborError(f"{path}: cannot write ({exc.strerror or exc}){kept}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# What one dataset of an artifact may hold once read: a crafted file can declare any shape at
# no cost (HDF5 stores no chunk that was never written), so the declared size is checked first.
# Compressed data may be larger than its file: allow 100 times the file, and 256 MiB at least.
MIN_READ_LIMIT = 256 << 20


def check_declared_size(dataset: h5py.Dataset) -> None:
    """ValueError for a dataset that declares more bytes than its file can plausibly hold."""
    declared = int(np.prod(dataset.shape, dtype=np.float64) * dataset.dtype.itemsize)
    limit = max(MIN_READ_LIMIT, 100 * os.path.getsize(dataset.file.filename))
    if declared > limit:
        raise ValueError(f"{dataset.name} declares {declared:,} bytes, more than its file can hold")


def is_disk_full(exc: OSError) -> bool:
    """ENOSPC, or HDF5's own wording of it (h5py's OSError often carries no errno)."""
    return exc.errno == errno.ENOSPC or "No space left on device" in str(exc) or "errno = 28" in str(exc)


def _open_checked(path: Path, kind: str | None) -> h5py.File:
    """Open a labor artifact for reading after checking its kind (any known kind when ``kind`` is
    None) and that its schema is not newer than this labor reads; the caller closes it."""
    wanted = f"labor {kind} artifact" if kind else "labor artifact"
    if path.is_dir():
        raise LaborError(f"{path}: is a folder, expected a {wanted} (.h5)")
    if not path.exists():
        raise LaborError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LaborError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    try:
        found = f.attrs.get("labor_kind")
        if found is None or (kind is None and str(found) not in SCHEMA_VERSIONS):
            known = "" if kind else "known "
            raise LaborError(f"{path}: not a labor artifact (no {known}labor_kind attribute)")
        found = str(found)
        if kind is not None and found != kind:
            raise LaborError(f"{path}: is {a_kind(found)}, expected {a_kind(kind)}")
        try:
            schema = int(f.attrs.get("labor_schema", 0))
        except (TypeError, ValueError):
            raise LaborError(f"{path}: damaged {found} artifact: labor_schema is not a number") from None
        if schema > SCHEMA_VERSIONS[found]:
            raise LaborError(
                f"{path}: {found} schema version {schema} is newer than this labor "
                f"({__version__}) reads (<= {SCHEMA_VERSIONS[found]}); upgrade labor"
            )
    except BaseException:
        f.close()
        raise
    return f


class Artifact:
    """An artifact opened for reading, with its provenance checked."""

    def __init__(self, path: Path, kind: str):
        self.path = Path(path)
        self.file = _open_checked(self.path, kind)
        self.kind = kind
        try:
            self.uuid = str(self.file.attrs["uuid"])
            self.config = json.loads(self.file.attrs["config"])
            if not isinstance(self.config, dict):
                raise ValueError("config is not a JSON object")
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            self.file.close()
            raise LaborError(f"{self.path}: damaged {kind} artifact: bad provenance ({exc})") from None

    def parent(self) -> Parent:
        return Parent(self.kind, self.uuid, str(self.path))

    def damaged(self, problem: str) -> LaborError:
        return LaborError(f"{self.path}: damaged {self.kind} artifact: {problem}")

    def read(self, name: str, kinds: str | None = None, ndim: int | None = None) -> np.ndarray:
        """A whole dataset, its dtype kind (numpy's letters, e.g. "iu") and number of dimensions
        checked first, and its declared size too: a crafted file may declare any size, and
        nothing of it is read then. A missing or bad one means a damaged file, said in one line."""
        try:
            dataset = self.file[name]
            if not isinstance(dataset, h5py.Dataset):
                raise self.damaged(f"{name!r} is not a dataset")
            if kinds is not None and dataset.dtype.kind not in kinds:
                raise self.damaged(f"{name!r} holds {dataset.dtype}, not {'integers' if kinds == 'iu' else 'numbers'}")
            if ndim is not None and dataset.ndim != ndim:
                raise self.damaged(f"{name!r} has {dataset.ndim} dimensions, not {ndim}")
            check_declared_size(dataset)
            return dataset[()]
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise self.damaged(f"cannot read {name!r} ({exc})") from exc

    def attr_json(self, name: str, expected: type) -> Any:
        """A JSON attribute of the expected type (list, dict...)."""
        try:
            value = json.loads(self.file.attrs[name])
        except (KeyError, ValueError, TypeError, RecursionError) as exc:  # RecursionError: "[[[[..."
            raise self.damaged(f"attribute {name!r} is not JSON ({exc})") from None
        if not isinstance(value, expected):
            raise self.damaged(f"attribute {name!r} is not a JSON {expected.__name__}")
        return value

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Artifact:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_artifact(path: Path, kind: str) -> Artifact:
    return Artifact(Path(path), kind)


def read_any(path: Path) -> h5py.File:
    """Open any labor artifact (for inspect); the caller closes it."""
    return _open_checked(Path(path), None)


def write_image_ids(f: h5py.Group, image_ids: list[str]) -> None:
    """Image ids join every artifact with the dataset and with the other artifacts."""
    f.create_dataset("image_ids", data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype())


def read_image_ids(artifact: Artifact) -> list[str]:
    return [
        v.decode(errors="replace") if isinstance(v, bytes) else str(v)
        for v in artifact.read("image_ids", kinds="OSU", ndim=1)
    ]


# The largest image an artifact may describe (a 16384 x 16384 photograph): sizes beyond it are
# a damaged or crafted file, refused before anything of that size is allocated.
MAX_IMAGE_PIXELS = 1 << 28


def read_sizes(artifact: Artifact, count: int) -> np.ndarray:
    """The (count, 2) native (H, W) of an artifact's images, checked to be plausible image sizes."""
    sizes = artifact.read("sizes", kinds="iu", ndim=2).astype(np.int64)
    if sizes.shape != (count, 2):
        raise artifact.damaged(f"sizes has shape {sizes.shape}, expected ({count}, 2)")
    if count and (sizes.min() < 1 or (sizes[:, 0] * sizes[:, 1]).max() > MAX_IMAGE_PIXELS):
        raise artifact.damaged("sizes holds an impossible image size")
    return sizes


def check_offsets(artifact: Artifact, name: str, offsets: np.ndarray, count: int, rows: int) -> None:
    """Offsets of ``count`` images into ``rows`` rows: 0 first, never decreasing, ``rows`` last."""
    if offsets.shape != (count + 1,) or offsets[0] != 0 or offsets[-1] != rows or np.any(np.diff(offsets) < 0):
        raise artifact.damaged(f"{name} do not match the {rows} rows of {count} images")


def check_pixels(
    artifact: Artifact, what: str, y: np.ndarray, x: np.ndarray, offsets: np.ndarray, sizes: np.ndarray
) -> None:
    """Every (y, x) inside its own image."""
    image = np.repeat(np.arange(len(sizes)), np.diff(offsets))
    if len(y) and (y.min() < 0 or x.min() < 0 or np.any(y >= sizes[image, 0]) or np.any(x >= sizes[image, 1])):
        raise artifact.damaged(f"{what} holds pixels outside image bounds")


def read_class_set(artifact: Artifact) -> str:
    """A class set's name (a stage that reads a dataset checks it is one labor knows)."""
    class_set = artifact.file.attrs.get("class_set")
    if not isinstance(class_set, str) or not 0 < len(class_set) <= 64:
        raise artifact.damaged("class_set is not a class set's name")
    return class_set


def check_known_class_set(path: Path, class_set: str) -> None:
    """Before a stage reads a dataset in an artifact's class set: one labor knows, or one line."""
    from labor_cli.data.labels import CLASS_SETS

    if class_set not in CLASS_SETS:
        raise LaborError(f"{path}: class set {class_set!r} is none of {', '.join(CLASS_SETS)}")


def read_class_names(artifact: Artifact) -> list[str]:
    names = artifact.attr_json("class_names", list)
    if not names or len(names) > 255 or not all(isinstance(n, str) for n in names):
        raise artifact.damaged("class_names is not a list of at most 255 names")
    return names
