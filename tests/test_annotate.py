"""labor annotate without a browser: the HTTP API end to end on hand-made selections of the tiny toy target."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import numpy as np
import pytest
from helpers import executable_argv, one_line, run_main
from typer.testing import CliRunner

from labor_cli import artifacts
from labor_cli.annotate.server import WORKERS, AnnotateServer
from labor_cli.cli import app
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import class_colours, class_names
from labor_cli.errors import LaborError
from labor_cli.options import AnnotateOptions, LabelOptions
from labor_cli.stages.annotate import journal_path_for, open_annotation, print_annotate, run_annotate
from labor_cli.stages.label import run_label

NAMES = list(class_names("cityscapes19"))


def annotate_options(selection, target, output, **overrides) -> AnnotateOptions:
    """The options of `labor annotate` as the command line gives them (any free port, no progress display)."""
    return AnnotateOptions(selection=selection, target=target, output=output, **{"port": 0, "quiet": True, **overrides})


def simulate(selection, target, output, **overrides) -> None:
    """`labor label` on the same selection: the answers of an annotator who never errs."""
    run_label(LabelOptions(selection=selection, target=target, output=output, quiet=True, **overrides))


@pytest.fixture(scope="module")
def truth(toy_target):
    """image id -> ground truth (H, W) class indices of the tiny toy target's train split."""
    dataset = open_dataset(toy_target, "train", "cityscapes19")
    return {image_id: dataset.read_label(i) for i, image_id in enumerate(dataset.image_ids)}


def write_selection(path, image_ids, sizes, ys, xs, mode="ppl", predicted=None, kind="selection", labels=None):
    counts = [len(y) for y in ys]
    pixels = artifacts.PixelSet(
        image_ids=list(image_ids),
        sizes=np.asarray(sizes, np.int32).reshape(-1, 2),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=np.concatenate(ys).astype(np.int32),
        x=np.concatenate(xs).astype(np.int32),
        label=None if labels is None else np.concatenate(labels).astype(np.uint8),
        class_set="cityscapes19",
        class_names=NAMES,
        predicted=None if predicted is None else np.concatenate(predicted).astype(np.uint8),
    )
    with artifacts.create_artifact(path, kind, {"mode": mode}) as f:
        artifacts.write_pixel_set(f, pixels)
    return pixels


def point_selection(path, truth, image_ids, count=10, ignored=2, seed=0):
    """``count`` distinct points per image, ``ignored`` of them where the ground truth is 255; predicted = truth."""
    ys, xs, predicted = [], [], []
    for k, image_id in enumerate(image_ids):
        rng = np.random.default_rng(seed + k)
        flat = truth[image_id].reshape(-1)
        chosen = np.concatenate(
            [
                rng.choice(np.flatnonzero(flat != 255), count - ignored, replace=False),
                rng.choice(np.flatnonzero(flat == 255), ignored, replace=False),
            ]
        )
        rng.shuffle(chosen)
        y, x = np.divmod(chosen, truth[image_id].shape[1])
        ys.append(y), xs.append(x), predicted.append(np.where(flat[chosen] == 255, 0, flat[chosen]))
    return write_selection(path, image_ids, [truth[i].shape for i in image_ids], ys, xs, predicted=predicted)


class Client:
    """Raw HTTP to the server (http.client sends paths exactly as given, '..' included)."""

    def __init__(self, server: AnnotateServer):
        self.host, self.port = server.server_address[:2]

    def request(self, method, path, body=None, content_type="application/json", host=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {} if body is None else {"Content-Type": content_type}
        if host is not None:
            headers["Host"] = host
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        if response.getheader("Content-Type") == "application/json":
            payload = json.loads(payload)
        return response.status, payload

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None):
        return self.request("POST", path, {} if body is None else body)


@contextlib.contextmanager
def serving(annotation):
    server = AnnotateServer(annotation, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(server), server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def answer_all(client, truth, seconds=1.5, order=None, skip=()):
    """Answer every item of the session with the ground truth (255 -> unsure), as the page would."""
    session = client.get("/api/session")[1]
    requests = []
    for i, image in enumerate(session["images"]):
        items = client.get(f"/api/image/{i}")[1]
        for x, y in items["anchors"]:
            value = int(truth[image["image_id"]][y, x])
            requests.append(
                {
                    "image_id": image["image_id"],
                    "x": x,
                    "y": y,
                    "seconds": seconds,
                    "class": "unsure" if value == 255 else NAMES[value],
                }
            )
    for k in order if order is not None else range(len(requests)):
        if k not in skip:
            status, reply = client.post("/api/answer", requests[k])
            assert status == 200, reply
    return requests


def read_h5(path) -> dict:
    with h5py.File(path) as f:
        names = ("image_ids", "sizes", "offsets", "y", "x", "label", "predicted", "seconds")
        data = {name: f[name][()] for name in names if name in f}
        data.update(
            config=json.loads(f.attrs["config"]),
            lineage=json.loads(f.attrs["lineage"]),
            summary=json.loads(f.attrs["summary"]),
            kind=f.attrs["labor_kind"],
        )
    return data


def assert_same_labels(a, b):
    for name in ("image_ids", "sizes", "offsets", "y", "x", "label", "predicted"):
        assert (name in a) == (name in b), name
        if name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --- the HTTP API end to end -------------------------------------------------------------------


def test_answering_every_point_gives_labor_labels_artifact(tmp_path, toy_target, truth, capsys):
    ids = list(truth)
    point_selection(tmp_path / "sel.h5", truth, ids, count=10, ignored=2)
    simulate(tmp_path / "sel.h5", toy_target, tmp_path / "simulated.h5")
    annotation = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))
    with serving(annotation) as (client, server):
        status, page = client.get("/")
        assert status == 200 and b'<canvas id="full"' in page and b"app.js" in page
        assert client.get("/app.js")[0] == client.get("/style.css")[0] == 200
        session = client.get("/api/session")[1]
        assert session["unit"] == "point" and session["items"] == 10 * len(ids)
        assert [c["name"] for c in session["classes"]] == NAMES
        assert [c["colour"] for c in session["classes"]] == class_colours("cityscapes19").tolist()
        assert [c["key"] for c in session["classes"]] == list("1234567890qwertyuio")
        assert [image["image_id"] for image in session["images"]] == ids
        status, png = client.get("/image/1")
        dataset = open_dataset(toy_target, "train")
        assert status == 200 and png == dataset.image_path(1).read_bytes()
        order = np.random.default_rng(0).permutation(10 * len(ids))  # any order
        answer_all(client, truth, seconds=1.5, order=order)
        progress = client.get("/api/state")[1]["progress"]
        assert progress["answered"] == progress["items"] == 10 * len(ids) and progress["images_done"] == len(ids)
        status, reply = client.post("/api/finish")
        assert status == 200 and reply["summary"]["answered"] == 10 * len(ids)
        server_thread_done = server.result is not None
    assert server_thread_done
    person, simulated = read_h5(tmp_path / "person.h5"), read_h5(tmp_path / "simulated.h5")
    assert_same_labels(person, simulated)  # the same pixels, labels (255 where unsure) and A's classes
    assert person["config"]["annotator"] == "person" and person["kind"] == "labels"
    with h5py.File(tmp_path / "sel.h5") as f:
        assert person["lineage"] == [{"kind": "selection", "uuid": f.attrs["uuid"], "path": str(tmp_path / "sel.h5")}]
    np.testing.assert_array_equal(person["seconds"], np.full(10 * len(ids), 1.5, np.float32))
    summary = person["summary"]
    assert summary["labels_per_minute"] == pytest.approx(40.0)  # one answer every 1.5 s
    assert summary["unsure"] == 2 * len(ids) and summary["unanswered"] == 0
    assert summary["seconds_answering"] == pytest.approx(15.0 * len(ids))
    # labor adapt's reader takes it unchanged.
    labels = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    simulated_share = artifacts.read_pixel_set(tmp_path / "simulated.h5", "labels").labeled_share()
    assert labels.labeled_share() == pytest.approx(simulated_share)
    print_annotate(server.result)
    out = capsys.readouterr().out
    assert "40.0 points per minute" in out and f"{2 * len(ids)} points answered unsure" in out


def test_interrupted_then_the_same_command_continues(tmp_path, toy_target, truth):
    """SIGTERM (as Ctrl-C) saves what was answered; the same command continues from the journal."""
    ids = list(truth)[:2]
    point_selection(tmp_path / "sel.h5", truth, ids, count=6, ignored=1)
    simulate(tmp_path / "sel.h5", toy_target, tmp_path / "simulated.h5")
    command = annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5")

    def answer_then(stop, skip):
        def client_thread(server):
            def work():
                answer_all(Client(server), truth, seconds=2.0, skip=skip)
                stop(server)

            threading.Thread(target=work, daemon=True).start()

        return client_thread

    def sigterm(server):
        os.kill(os.getpid(), signal.SIGTERM)

    first = run_annotate(command, ready=answer_then(sigterm, skip=range(5, 12)))
    assert first.how == "stopped" and first.written and first.answered == 5 and first.unanswered == 7
    partial = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    assert len(partial.y) == 5  # only what was answered; the rest is left out, not guessed
    journal = journal_path_for(tmp_path / "person.h5")
    assert journal == tmp_path / "person.annotate.jsonl" and len(journal.read_text().splitlines()) == 1 + 5
    # A crash in the middle of writing an answer leaves an unfinished last line: it is dropped.
    with open(journal, "a") as f:
        f.write('{"image_id": "pixelheim/pix')
    # Same command, no --force: the output is this session's own, and it continues from answer 6.
    second = run_annotate(command, ready=answer_then(lambda server: Client(server).post("/api/finish"), skip=range(5)))
    assert second.how == "finished" and second.answered == 12 and second.unanswered == 0
    assert_same_labels(read_h5(tmp_path / "person.h5"), read_h5(tmp_path / "simulated.h5"))  # what adapt reads
    assert len(journal.read_text().splitlines()) == 1 + 12
    assert read_h5(tmp_path / "person.h5")["summary"]["seconds_answering"] == pytest.approx(24.0)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["person.annotate.jsonl", "person.h5", "sel.h5", "simulated.h5"]


def test_undo_and_changed_answers_replay_from_the_journal(tmp_path, toy_target, truth):
    ids = list(truth)[:1]
    selection = point_selection(tmp_path / "sel.h5", truth, ids, count=3, ignored=0)
    image, (x0, x1, x2), (y0, y1, y2) = ids[0], selection.x.tolist(), selection.y.tolist()
    annotation = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))
    with serving(annotation) as (client, _):
        assert client.post("/api/undo")[1]["item"] is None  # nothing to undo yet
        for x, y, name in ((x0, y0, "car"), (x1, y1, "road"), (x1, y1, "sky"), (x2, y2, "bus")):
            answer = {"image_id": image, "x": x, "y": y, "class": name, "seconds": 1}
            assert client.post("/api/answer", answer)[0] == 200
        _, reply = client.post("/api/undo")
        assert reply["item"] == 2 and reply["answer"] is None and reply["progress"]["answered"] == 2
        _, reply = client.post("/api/undo")  # the change road -> sky is taken back: road again
        assert reply["item"] == 1 and reply["answer"] == NAMES.index("road")
        assert client.get("/api/state")[1]["answers"] == [NAMES.index("car"), NAMES.index("road"), None]
    replayed = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))
    assert replayed.store.value_words() == [NAMES.index("car"), NAMES.index("road"), None]
    result = replayed.save("saved")
    labels = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    assert labels.label.tolist() == [NAMES.index("car"), NAMES.index("road")]
    seconds = read_h5(tmp_path / "person.h5")["seconds"]
    assert seconds.tolist() == [1.0, 2.0]  # an item's time is every answer given to it
    assert result.seconds_answering == 4.0


def test_suggestions_accepted_answers_time_and_keys(tmp_path, toy_target, truth, capsys):
    """A's class is suggested per point; an answer that takes it says so in the journal and the artifact;
    the summary gives the acceptance rate and the seconds per answer with and without it (each answer
    counted at most --idle-cap seconds), and the keypresses."""
    ids = list(truth)[:1]
    selection = point_selection(tmp_path / "sel.h5", truth, ids, count=4, ignored=0)
    image = ids[0]
    xs, ys, suggested = selection.x.tolist(), selection.y.tolist(), selection.predicted.tolist()
    options = annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5", idle_cap=20.0, annotator="ann")
    annotation = open_annotation(options)
    with serving(annotation) as (client, _):
        assert client.get("/api/session")[1]["suggestions"] is True
        assert client.get("/api/image/0")[1]["suggested"] == suggested
        own = (suggested[2] + 1) % 19
        requests = [  # (x, y, class, accepted, seconds, keys)
            (0, suggested[0], True, 2.0, 1),
            (1, suggested[1], True, 4.0, 1),
            (2, own, False, 100.0, 3),  # the person was away: 20 s counted
            (3, suggested[3], False, 6.0, 2),  # A's class, typed: not "accepted"
        ]
        for k, value, accepted, seconds, keys in requests:
            body = {"image_id": image, "x": xs[k], "y": ys[k], "class": value, "seconds": seconds}
            status, reply = client.post("/api/answer", {**body, "accepted": accepted, "keys": keys})
            assert status == 200, reply
        wrong = {"image_id": image, "x": xs[2], "y": ys[2], "class": own, "accepted": True}
        status, reply = client.post("/api/answer", wrong)
        assert status == 400 and "is not A's suggestion" in reply["error"]
        summary = client.post("/api/finish")[1]["summary"]
    assert summary["suggested"] == 4 and summary["accepted"] == 2 and summary["acceptance_rate"] == 0.5
    assert summary["seconds_per_answer_accepted"] == 3.0 and summary["seconds_per_answer_own"] == 13.0
    assert summary["seconds_answering"] == 32.0 and summary["idle_seconds_left_out"] == 80.0
    assert summary["keypresses"] == 7 and summary["keypresses_per_image"] == 7.0 and summary["idle_cap_seconds"] == 20.0
    data = read_h5(tmp_path / "person.h5")
    with h5py.File(tmp_path / "person.h5") as f:
        accepted, annotator = f["accepted"][()].tolist(), f["annotator"][()].tolist()
        annotators = json.loads(f.attrs["annotators"])
    assert accepted == [1, 1, 0, 0] and annotator == [0, 0, 0, 0] and annotators == ["ann"]
    assert data["label"].tolist() == [suggested[0], suggested[1], own, suggested[3]]
    assert data["seconds"].tolist() == [2.0, 4.0, 20.0, 6.0]
    assert data["config"]["annotator"] == "person" and data["config"]["annotator_name"] == "ann"
    assert data["config"]["idle_cap"] == 20.0
    journal = [json.loads(line) for line in journal_path_for(tmp_path / "person.h5").read_text().splitlines()]
    assert journal[0]["labor_annotate"] == 2 and "regions" not in journal[0]  # points: no grouping
    first = journal[1]
    assert first["suggested"] == NAMES[suggested[0]] and first["accepted"] is True and first["annotator"] == "ann"
    assert journal[3]["seconds"] == 100.0  # the journal keeps what the page measured; the cap is applied on reading
    print_annotate(annotation.result("finished")[0])
    out = capsys.readouterr().out
    assert "A's suggestion taken (key a) for 2 of 4 answers (50%): 3.0 s each, against 13.0 s" in out
    assert "80 s beyond 20 s per answer not counted (--idle-cap)" in out
    assert "the selection asks 4.0 points per image; 7 keypresses spent (1.8 per answer, 7.0 per image)" in out


def test_redo_gives_back_what_undo_took_and_a_new_answer_ends_it(tmp_path, toy_target, truth):
    ids = list(truth)[:1]
    selection = point_selection(tmp_path / "sel.h5", truth, ids, count=2, ignored=0)
    image, (x0, x1), (y0, y1) = ids[0], selection.x.tolist(), selection.y.tolist()
    annotation = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))
    car, road = NAMES.index("car"), NAMES.index("road")
    with serving(annotation) as (client, _):
        assert client.post("/api/redo")[1]["item"] is None  # nothing to redo yet
        client.post("/api/answer", {"image_id": image, "x": x0, "y": y0, "class": "car"})
        client.post("/api/answer", {"image_id": image, "x": x0, "y": y0, "class": "road"})
        assert client.post("/api/undo")[1]["answer"] == car
        assert client.post("/api/undo")[1]["answer"] is None
        reply = client.post("/api/redo")[1]
        assert (reply["item"], reply["answer"], reply["progress"]["can_redo"]) == (0, car, True)
        assert client.post("/api/redo")[1]["answer"] == road
        assert client.post("/api/redo")[1]["item"] is None
        client.post("/api/undo")
        client.post("/api/answer", {"image_id": image, "x": x1, "y": y1, "class": "sky"})  # ends the redo
        assert client.post("/api/redo")[1]["item"] is None
        assert client.get("/api/state")[1]["answers"] == [car, NAMES.index("sky")]
    replayed = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))
    assert replayed.store.value_words() == [car, NAMES.index("sky")] and not replayed.store.undone


def test_bad_requests_get_400_and_the_server_goes_on(tmp_path, toy_target, truth):
    ids = list(truth)[:1]
    selection = point_selection(tmp_path / "sel.h5", truth, ids, count=4, ignored=0)
    image, x, y = ids[0], int(selection.x[0]), int(selection.y[0])
    unselected = next(
        (int(a), int(b)) for a in range(128) for b in range(64) if not ((selection.x == a) & (selection.y == b)).any()
    )
    annotation = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))
    good = {"image_id": image, "x": x, "y": y, "class": "car", "seconds": 1.0}
    bad = [
        ({**good, "class": "spaceship"}, "unknown class 'spaceship'"),
        ({**good, "class": 19}, "unknown class 19"),
        ({**good, "class": "mixed"}, "'mixed' is for regions"),
        ({**good, "x": unselected[0], "y": unselected[1]}, "is not in the selection"),
        ({**good, "x": 5000}, "is not in the selection"),
        ({**good, "image_id": "nowhere/x"}, "is not in the selection"),
        ({**good, "x": "3"}, "x and y integers"),
        ({**good, "seconds": -1}, "seconds -1"),
        ({**good, "seconds": "soon"}, "seconds 'soon'"),
        ({"image_id": image, "x": x}, "missing y, class"),
        ([good], "expected a JSON object"),
    ]
    with serving(annotation) as (client, _):
        for body, message in bad:
            status, reply = client.post("/api/answer", body)
            assert status == 400 and message in reply["error"], (body, reply)
        status, reply = client.request("POST", "/api/answer", b'{"image_id": "a", "x": ')
        assert status == 400 and "malformed JSON" in reply["error"]
        status, reply = client.request("POST", "/api/answer", json.dumps(good).encode(), content_type="text/plain")
        assert status == 400 and "Content-Type: application/json" in reply["error"]
        assert not journal_path_for(tmp_path / "person.h5").exists()  # nothing refused reached the journal
        assert client.get("/api/state")[1]["progress"]["answered"] == 0
        for path in (
            "/image/../../etc/passwd",
            "/image/..%2f..%2fetc%2fpasswd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/../pyproject.toml",
            "/static/../app.js",
            "/app.js/../../../etc/passwd",
            "/etc/passwd",
            "/image/1",
            "/image/-1",
            "/image/0.png",
            "/api/image/7",
            "/api/image/x",
            "//etc/passwd",
            "/image/0/../../../../etc/passwd",
            "/favicon.ico",
            "/index.html%00",
        ):
            status, reply = client.get(path)
            assert status == 404, path
        assert client.post("/api/../api/answer", good)[0] == 404
        # A page elsewhere whose host name was rebound to 127.0.0.1 is refused.
        assert client.request("GET", "/api/state", host="evil.example:8765")[0] == 403
        assert client.request("POST", "/api/answer", json.dumps(good).encode(), host="evil.example")[0] == 403
        assert client.request("GET", "/api/state", host=f"localhost:{client.port}")[0] == 200
        assert client.post("/api/answer", good)[0] == 200  # still serving, and a good answer is taken
        assert client.get("/image/0")[0] == 200


# --- SPL: regions ------------------------------------------------------------------------------


def test_spl_regions_one_answer_each_and_mixed_left_out(tmp_path, toy_target, truth, capsys):
    ids = list(truth)[:2]
    shape = truth[ids[0]].shape
    block_y, block_x = np.mgrid[10:13, 20:24]  # region 0 of image 0: 12 pixels
    line = np.arange(5)  # region 1: a diagonal line of 5 pixels
    ys = [np.concatenate([block_y.ravel(), 30 + line, [50]]), np.array([0, 0, 1])]
    xs = [np.concatenate([block_x.ravel(), 60 + line, [100]]), np.array([0, 1, 1])]
    order = np.random.default_rng(0).permutation(len(ys[0]))  # the selection's row order does not matter
    ys[0], xs[0] = ys[0][order], xs[0][order]
    write_selection(tmp_path / "spl.h5", ids, [shape, shape], ys, xs, mode="spl")
    faithful = annotate_options(tmp_path / "spl.h5", toy_target, tmp_path / "person.h5", min_region=1)
    annotation = open_annotation(faithful)
    with serving(annotation) as (client, _):
        session = client.get("/api/session")[1]
        assert session["unit"] == "region" and session["items"] == 4
        items = client.get("/api/image/0")[1]
        regions = [sorted(zip(p[0::2], p[1::2])) for p in items["pixels"]]
        assert regions == [
            sorted(zip(block_x.ravel().tolist(), block_y.ravel().tolist())),
            [(60 + k, 30 + k) for k in range(5)],
            [(100, 50)],
        ]
        answers = [("car", 12, 6.0), ("mixed", 5, 4.0), ("unsure", 1, 1.0)]
        for (x, y), (name, _, seconds) in zip(items["anchors"], answers):
            answer = {"image_id": ids[0], "x": x, "y": y, "class": name, "seconds": seconds}
            assert client.post("/api/answer", answer)[0] == 200
        # Any pixel of a region answers the whole region.
        reply = client.post("/api/answer", {"image_id": ids[1], "x": 1, "y": 1, "class": "road", "seconds": 3.0})[1]
        assert reply["item"] == 3 and reply["progress"]["left"] == 0
        client.post("/api/finish")
    labels = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    data = read_h5(tmp_path / "person.h5")
    rows0 = labels.pixels_of(0)
    got = sorted(zip(labels.x[rows0].tolist(), labels.y[rows0].tolist(), labels.label[rows0].tolist()))
    expected = sorted(
        [(x, y, NAMES.index("car")) for x, y in zip(block_x.ravel().tolist(), block_y.ravel().tolist())]
        + [(100, 50, 255)]
    )
    assert got == expected  # the mixed line is left out
    assert labels.label[labels.pixels_of(1)].tolist() == [0, 0, 0]
    seconds0 = dict(zip(zip(labels.x[rows0].tolist(), labels.y[rows0].tolist()), data["seconds"][rows0].tolist()))
    assert seconds0[(20, 10)] == pytest.approx(0.5) and seconds0[(100, 50)] == pytest.approx(1.0)  # 6 s over 12 pixels
    assert data["summary"]["mixed"] == 1 and data["summary"]["mixed_pixels"] == 5
    assert data["summary"]["labels_per_minute"] == pytest.approx(60 * 4 / 14.0, abs=1e-3)
    assert data["config"]["unit"] == "region"
    print_annotate(run_annotate(faithful, ready=lambda server: threading.Thread(target=server.shutdown).start()))
    out = capsys.readouterr().out
    assert "1 region answered mixed (5 pixels): left out" in out and "unchanged" in out


# A band along a boundary as SPL gives it (digits: A's class at each selected pixel), placed at (10, 20):
# A predicts road (0) on the left part and car (13, drawn "c") on the right; a 2-pixel car fragment one
# pixel off the car part is merged into it; a lone road pixel far away is left out.
SPL_BAND = """
000ccc......
000ccc.cc...
............
............
...........0
"""


def band_selection(path, truth, image_id):
    ys, xs, predicted = [], [], []
    for row, line in enumerate(SPL_BAND.strip().split()):
        for column, char in enumerate(line):
            if char != ".":
                ys.append(10 + row), xs.append(20 + column), predicted.append(13 if char == "c" else int(char))
    shape = truth[image_id].shape
    write_selection(
        path, [image_id], [shape], [np.array(ys)], [np.array(xs)], mode="spl", predicted=[np.array(predicted)]
    )
    return np.array(xs), np.array(ys)


def test_spl_regions_grouped_by_class_split_and_fragments_left_out(tmp_path, toy_target, truth, capsys):
    image = list(truth)[0]
    band_selection(tmp_path / "spl.h5", truth, image)
    road, car, sky = NAMES.index("road"), NAMES.index("car"), NAMES.index("sky")
    annotation = open_annotation(annotate_options(tmp_path / "spl.h5", toy_target, tmp_path / "person.h5"))
    with serving(annotation) as (client, _):
        session = client.get("/api/session")[1]
        assert session["items"] == 2 and session["regions"]["merged_pixels"] == 2
        assert session["regions"]["dropped_pixels"] == 1
        items = client.get("/api/image/0")[1]
        assert [sorted(zip(p[0::2], p[1::2])) for p in items["pixels"]] == [
            sorted((20 + c, 10 + r) for r in (0, 1) for c in (0, 1, 2)),
            sorted([(23 + c, 10 + r) for r in (0, 1) for c in (0, 1, 2)] + [(27, 11), (28, 11)]),
        ]
        assert items["suggested"] == [road, car] and items["left_out"] == [31, 14]
        status, reply = client.post("/api/answer", {"image_id": image, "x": 31, "y": 14, "class": "road"})
        assert status == 400 and "is in no region (a fragment left out)" in reply["error"]
        client.post("/api/answer", {"image_id": image, "x": 20, "y": 10, "class": "road", "accepted": True})
        # The car part holds two pixels of sky: the person splits the region.
        split = {"image_id": image, "x": 23, "y": 10, "class": "car", "split": {"sky": [27, 11, 28, 11]}}
        bad = [
            ({**split, "split": {"sky": [20, 10]}}, "not in the answered region"),
            ({**split, "split": {"mixed": [27, 11]}}, "expected a class"),
            ({**split, "split": {"sky": [27]}}, "flat list"),
            ({**split, "class": "mixed"}, "cannot be split"),
            ({**split, "accepted": True}, "cannot be split"),
        ]
        for body, message in bad:
            status, reply = client.post("/api/answer", body)
            assert status == 400 and message in reply["error"], (body, reply)
        reply = client.post("/api/answer", split)[1]
        assert reply["split"] == {str(sky): [27, 11, 28, 11]}
        assert client.post("/api/undo")[1]["split"] is None  # undo takes the split back too
        assert client.post("/api/redo")[1]["split"] == {str(sky): [27, 11, 28, 11]}
        assert client.get("/api/image/0")[1]["splits"] == [None, {str(sky): [27, 11, 28, 11]}]
        summary = client.post("/api/finish")[1]["summary"]
    labels = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    got = {(int(a), int(b)): int(c) for a, b, c in zip(labels.x, labels.y, labels.label)}
    assert len(got) == 14 and (31, 14) not in got
    assert got[(27, 11)] == got[(28, 11)] == sky and got[(23, 10)] == car and got[(20, 11)] == road
    assert summary["split_regions"] == 1 and summary["split_pixels"] == 2
    assert summary["regions"]["regions"] == 2 and summary["items_per_image"] == 2.0
    data = read_h5(tmp_path / "person.h5")
    assert data["config"]["regions"] == {"split_by_class": True, "min_region": 4, "reach": 2}
    header = json.loads(journal_path_for(tmp_path / "person.h5").read_text().splitlines()[0])
    assert header["regions"] == data["config"]["regions"]
    # The faithful SPL: every pixel asked, nothing merged or left out.
    faithful = open_annotation(annotate_options(tmp_path / "spl.h5", toy_target, tmp_path / "all.h5", min_region=1))
    assert len(faithful.store.items) == 4 and (faithful.store.items.item_of_row >= 0).all()


def test_a_version_1_journal_continues_with_its_connected_regions(tmp_path, toy_target, truth, capsys):
    """A journal from before regions were grouped: its regions were the mask's connected regions (A's
    classes ignored), so it is continued with those, and says so."""
    image = list(truth)[0]
    band_selection(tmp_path / "spl.h5", truth, image)
    with h5py.File(tmp_path / "spl.h5") as f:
        uuid = f.attrs["uuid"]
    header = {"labor_annotate": 1, "session": "s1", "selection": str(tmp_path / "spl.h5"), "selection_uuid": uuid,
              "unit": "region", "class_set": "cityscapes19", "created": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    answer = {"image_id": image, "x": 20, "y": 10, "class": "car", "seconds": 3.0, "time": "2025-01-01T00:00:05+00:00"}
    journal = journal_path_for(tmp_path / "person.h5")
    journal.write_text(json.dumps(header) + "\n" + json.dumps(answer) + "\n")
    annotation = open_annotation(annotate_options(tmp_path / "spl.h5", toy_target, tmp_path / "person.h5"))
    assert "continuing" in capsys.readouterr().out
    items = annotation.store.items
    assert items.grouping.split_by_class is False and len(items) == 3  # the band, the fragment, the lone pixel
    labels = annotation.store.labels().pixels
    assert len(labels.y) == 12 and set(labels.label.tolist()) == {NAMES.index("car")}  # the whole band
    journal.write_text(json.dumps({**header, "labor_annotate": 3}) + "\n")
    with pytest.raises(LaborError, match=r"journal version 3, newer than this labor reads \(2\); update labor"):
        open_annotation(annotate_options(tmp_path / "spl.h5", toy_target, tmp_path / "person.h5"))


def test_stopped_with_no_answers_names_no_journal_and_counts_in_words(tmp_path, toy_target, truth, capsys):
    """Ctrl-C (here SIGTERM, which the command takes alike) before any answer: nothing written, and no
    journal named; after one answer: "1 pixel"."""
    ids = list(truth)[:1]
    point_selection(tmp_path / "sel.h5", truth, ids, count=3, ignored=0)
    options = annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "p.h5")

    def stop_after(answers: int):
        def ready(server):
            def work():
                client = Client(server)
                client.get("/api/state")  # serving (and so SIGTERM handled) by the time this is answered
                answer_all(client, truth, skip=range(answers, 3))
                os.kill(os.getpid(), signal.SIGTERM)

            threading.Thread(target=work, daemon=True).start()

        return ready

    print_annotate(run_annotate(options, ready=stop_after(0)))
    out = capsys.readouterr().out
    assert "annotate stopped: 0 of 3 points answered, 3 left; 0 pixels labeled this round" in out
    assert "(nothing written)" in out and "jsonl" not in out and "to continue" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sel.h5"]
    print_annotate(run_annotate(options, ready=stop_after(1)))
    out = capsys.readouterr().out
    assert "1 of 3 points answered, 2 left; 1 pixel labeled this round" in out
    assert "to continue, run the same command again" in out


# --- the server holds --------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes to the server and read its whole reply (the connection closes after one request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return reply


def json_reply(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, reply[:300]
    return int(head.split()[1]), json.loads(body)


def post_bytes(body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"POST /api/answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode() + body


@pytest.fixture
def one_point_session(tmp_path, toy_target, truth):
    ids = list(truth)[:1]
    point_selection(tmp_path / "sel.h5", truth, ids, count=3, ignored=0)
    return open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "person.h5"))


def test_every_malformed_body_is_a_400_with_one_line_of_json(one_point_session, capfd):
    annotation = one_point_session
    image = annotation.chosen.image_ids[0]
    x, y = int(annotation.chosen.x[0]), int(annotation.chosen.y[0])
    good = {"image_id": image, "x": x, "y": y, "class": "car"}
    with serving(annotation) as (client, _):
        port = client.port
        cases = [  # (raw request, what the error says)
            (post_bytes(b"[" * 30_000 + b"]" * 30_000), "nested too deeply"),  # under the 64 KiB cap
            (post_bytes(b'{"a":' * 10_000 + b"1" + b"}" * 10_000), "nested too deeply"),
            (post_bytes(b"\xff\xfe{}"), "malformed JSON body"),
            (post_bytes(b'{"x": 1e999999}'), "missing image_id"),
            (post_bytes(json.dumps({**good, "seconds": 10**400}).encode()), "seconds"),
            (post_bytes(json.dumps({**good, "x": 10**400}).encode()), "is not in the selection"),
            (post_bytes(json.dumps({**good, "keys": -1}).encode()), "keys -1"),
            (post_bytes(json.dumps({**good, "accepted": "yes"}).encode()), "accepted 'yes'"),
            (post_bytes(json.dumps({**good, "split": {"road": [x, y]}}).encode()), "for a region"),
            (post_bytes(b"{}", length=-5), "body of -5 bytes"),
            (post_bytes(b"{}").replace(b"Content-Length: 2", b"Content-Length: two"), "missing Content-Length"),
            (b"GET / HTTP/1.x\r\n\r\n", "Bad request version"),
            (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", ""),  # a request line past http.server's limit
            (b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20_000 + b"\r\n\r\n", ""),  # a head past MAX_HEAD
        ]
        for request, message in cases:
            status, reply = json_reply(raw_exchange(port, request))
            assert 400 <= status < 500 and message in reply["error"] and "\n" not in reply["error"], (
                request[:60],
                reply,
            )
        # A 10 MB body (the cap is 64 KiB): read and thrown away, so that the 400 reaches the client.
        status, reply = json_reply(raw_exchange(port, post_bytes(b" " * 10_000_000)))
        assert status == 400 and reply["error"] == "body of 10000000 bytes (at most 65536)"
        assert client.post("/api/answer", good)[0] == 200  # and the server goes on
    assert "Traceback" not in capfd.readouterr().err


def test_clients_that_hang_up_are_forgotten_quietly(one_point_session, capfd):
    """200 clients declare a 1000-byte body, send one byte of it and hang up: no traceback, no thread
    spent on them, and the server answers the next request."""
    with serving(one_point_session) as (client, _):
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", client.port), timeout=5) as connection:
                connection.sendall(post_bytes(b"{", length=1000))
        # And clients that hang up before reading a reply (here: a whole request, then gone at once).
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", client.port), timeout=5) as connection:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
                connection.sendall(b"GET /image/0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert client.get("/api/state")[0] == 200
    assert capfd.readouterr().err == ""


def test_stalled_connections_time_out_and_leave_the_server_answering(one_point_session):
    """Slowloris: 200 connections that never finish their request hold no thread, the server keeps
    answering others at once, and each stalled connection is closed when its time is up."""
    server = AnnotateServer(one_point_session, "127.0.0.1", 0, request_timeout=1.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    threads_before = threading.active_count()
    stalled = []
    try:
        port = server.server_address[1]
        for k in range(200):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n" if k % 2 else post_bytes(b"{", 500))
            stalled.append(connection)
        started = time.monotonic()
        status, reply = Client(server).get("/api/state")
        assert status == 200 and reply["progress"]["items"] == 3
        assert time.monotonic() - started < 1.0  # answered at once, not after the stalled ones
        assert threading.active_count() <= threads_before + WORKERS
        for connection in stalled:  # each is closed by the server once its 1.5 s are up
            assert connection.recv(1) == b""
        assert time.monotonic() - started < 10
    finally:
        for connection in stalled:
            connection.close()
        server.shutdown()
        server.server_close()
        thread.join(10)


# --- merging and refusals ----------------------------------------------------------------------


def test_merge_gives_labor_label_merge(tmp_path, toy_target, truth):
    ids = list(truth)
    point_selection(tmp_path / "sel1.h5", truth, ids[:2], count=5, ignored=0, seed=1)
    simulate(tmp_path / "sel1.h5", toy_target, tmp_path / "round1.h5")
    first = artifacts.read_pixel_set(tmp_path / "sel1.h5", "selection")
    # Round 2 asks about images 1..3, again about two pixels of round 1 on image 1.
    second = point_selection(tmp_path / "fresh.h5", truth, ids[1:], count=4, ignored=1, seed=7)
    rows = first.pixels_of(1)
    ys = [np.concatenate([first.y[rows][:2], second.y[second.pixels_of(0)]])]
    ys += [second.y[second.pixels_of(i)] for i in (1, 2)]
    xs = [np.concatenate([first.x[rows][:2], second.x[second.pixels_of(0)]])]
    xs += [second.x[second.pixels_of(i)] for i in (1, 2)]
    write_selection(tmp_path / "sel2.h5", ids[1:], [truth[i].shape for i in ids[1:]], ys, xs)
    simulate(tmp_path / "sel2.h5", toy_target, tmp_path / "simulated.h5", merge=tmp_path / "round1.h5")
    annotation = open_annotation(
        annotate_options(tmp_path / "sel2.h5", toy_target, tmp_path / "person.h5", merge=tmp_path / "round1.h5")
    )
    with serving(annotation) as (client, _):
        answer_all(client, truth, seconds=2.0)
        summary = client.post("/api/finish")[1]["summary"]
    assert summary["already_labeled"] == 2 and summary["merged_from"] == str(tmp_path / "round1.h5")
    person = read_h5(tmp_path / "person.h5")
    assert_same_labels(person, read_h5(tmp_path / "simulated.h5"))
    assert [p["kind"] for p in person["lineage"]] == ["selection", "labels"]
    labels = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    rows = labels.pixels_of(0)  # image 0: round 1 only, simulated: no seconds
    assert np.isnan(person["seconds"][rows]).all()
    assert np.isfinite(person["seconds"]).sum() == len(labels.y) - 10  # every pixel of round 2 not already labeled


def test_two_annotators_merged_agreement_and_who_answered(tmp_path, toy_target, truth, capsys):
    """Alice answers a selection; Bob answers it with --merge alice's labels: the summary says how often
    they agree on the pixels both answered, and the artifact keeps who gave each kept answer."""
    image = list(truth)[0]
    selection = point_selection(tmp_path / "sel.h5", truth, [image], count=6, ignored=0)
    xs, ys = selection.x.tolist(), selection.y.tolist()
    alice = open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "alice.h5", annotator="alice"))
    with serving(alice) as (client, _):
        for k in range(4):  # Alice answers the first four points with the ground truth
            value = int(truth[image][ys[k], xs[k]])
            client.post("/api/answer", {"image_id": image, "x": xs[k], "y": ys[k], "class": value, "accepted": False})
        client.post("/api/finish")
    bob = open_annotation(
        annotate_options(
            tmp_path / "sel.h5", toy_target, tmp_path / "bob.h5", annotator="bob", merge=tmp_path / "alice.h5"
        )
    )
    with serving(bob) as (client, _):
        for k in range(6):  # Bob answers all six; on point 0 he says otherwise, on point 1 he is unsure
            value = int(truth[image][ys[k], xs[k]])
            answer = (value + 1) % 19 if k == 0 else "unsure" if k == 1 else value
            client.post("/api/answer", {"image_id": image, "x": xs[k], "y": ys[k], "class": answer})
        summary = client.post("/api/finish")[1]["summary"]
    agreement = summary["agreement_with_merged"]
    assert (agreement["shared_pixels"], agreement["compared_pixels"], agreement["agreed_pixels"]) == (4, 3, 2)
    with h5py.File(tmp_path / "bob.h5") as f:
        names = json.loads(f.attrs["annotators"])
        who = [names[k] for k in f["annotator"][()]]
        accepted = f["accepted"][()].tolist()
    assert who == ["alice"] * 4 + ["bob"] * 2  # the earlier answer is kept where both answered
    assert accepted == [0] * 6
    print_annotate(bob.result("finished")[0])
    out = capsys.readouterr().out
    assert "the earlier labels and this session agree on 2 of the 3 pixels both give a class (66.7%" in out
    # Labels from before `accepted` and `annotator` (a simulated round here) merge with 255: unknown.
    simulate(tmp_path / "sel.h5", toy_target, tmp_path / "simulated.h5")
    carol = open_annotation(
        annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "carol.h5", merge=tmp_path / "simulated.h5")
    )
    carol.save("saved")
    with h5py.File(tmp_path / "carol.h5") as f:
        assert f["accepted"][()].tolist() == [255] * 6 and f["annotator"][()].tolist() == [255] * 6


def test_refusals_are_one_line_and_write_nothing(tmp_path, toy_target, truth):
    ids = list(truth)
    shape = truth[ids[0]].shape
    write_selection(
        tmp_path / "missing.h5",
        [ids[0], "nowhere/nowhere_000000_000019"],
        [shape, shape],
        [np.array([1]), np.array([2])],
        [np.array([1]), np.array([2])],
    )
    with pytest.raises(LaborError, match=r"missing\.h5: image 'nowhere/nowhere_000000_000019' is not in cityscapes:"):
        open_annotation(annotate_options(tmp_path / "missing.h5", toy_target, tmp_path / "out.h5"))
    write_selection(tmp_path / "size.h5", [ids[0]], [(32, 64)], [np.array([1])], [np.array([1])])
    with pytest.raises(LaborError, match=r"size\.h5.*64x32 there but 128x64"):
        open_annotation(annotate_options(tmp_path / "size.h5", toy_target, tmp_path / "out.h5"))
    write_selection(
        tmp_path / "labels.h5",
        [ids[0]],
        [shape],
        [np.array([1])],
        [np.array([1])],
        kind="labels",
        labels=[np.array([0])],
    )
    with pytest.raises(LaborError, match=r"labels\.h5: is a labels artifact, expected a selection"):
        open_annotation(annotate_options(tmp_path / "labels.h5", toy_target, tmp_path / "out.h5"))
    assert not (tmp_path / "out.h5").exists() and not journal_path_for(tmp_path / "out.h5").exists()

    point_selection(tmp_path / "sel.h5", truth, ids[:1], count=3, ignored=0)
    (tmp_path / "out.h5").write_bytes(b"someone else's")
    with pytest.raises(LaborError, match=r"out\.h5: already exists; pass --force"):
        open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "out.h5"))
    assert (tmp_path / "out.h5").read_bytes() == b"someone else's"
    # A journal of another selection is never taken over, not even with --force.
    point_selection(tmp_path / "other.h5", truth, ids[:1], count=3, ignored=0, seed=5)
    annotation = open_annotation(annotate_options(tmp_path / "other.h5", toy_target, tmp_path / "b.h5"))
    with serving(annotation) as (client, _):
        answer_all(client, truth)
    with pytest.raises(LaborError, match=r"b\.annotate\.jsonl: holds answers to another selection .*other\.h5"):
        open_annotation(annotate_options(tmp_path / "sel.h5", toy_target, tmp_path / "b.h5", force=True))
    with pytest.raises(LaborError, match=r"cannot serve on 127\.0\.0\.1:"), serving(annotation) as (client, server):
        AnnotateServer(annotation, "127.0.0.1", server.server_address[1])


# --- through the command line ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def start_labor(*args) -> tuple[subprocess.Popen, str, str]:
    """`labor ARGS` in a process of its own (so that a real SIGINT reaches it), the URL it prints, and
    what it printed up to there."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        executable_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A shell without job control starts background jobs with SIGINT ignored; Ctrl-C is what is tested.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("open http://"):
            return process, line.split()[1], "".join(lines)
    process.kill()
    raise AssertionError(f"no URL printed: {''.join(lines)}{process.stderr.read()}")


class UrlClient(Client):
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port


def finish(process: subprocess.Popen, printed: str) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, printed + out, err


def test_cli_ctrl_c_saves_and_the_same_command_continues(tmp_path, toy_target, truth):
    ids = list(truth)[:2]
    point_selection(tmp_path / "sel.h5", truth, ids, count=3, ignored=1)
    simulate(tmp_path / "sel.h5", toy_target, tmp_path / "simulated.h5")
    command = ["annotate", "--selection", tmp_path / "sel.h5", "--target", toy_target, "-o", tmp_path / "person.h5"]
    process, url, printed = start_labor(*command, "--port", "0")
    try:
        assert "annotate: 6 points in 2 images" in printed
        answer_all(UrlClient(url), truth, seconds=2.0, skip=range(2, 6))
        process.send_signal(signal.SIGINT)  # Ctrl-C
        code, out, err = finish(process, printed)
    finally:
        process.kill()
    journal = tmp_path / "person.annotate.jsonl"
    assert code == 130 and err == "", (out, err)
    assert "annotate stopped: 2 of 6 points answered, 4 left" in out and f"-> {tmp_path / 'person.h5'}" in out
    assert f"to continue, run the same command again: it resumes from the answers kept in {journal}" in out
    assert len(artifacts.read_pixel_set(tmp_path / "person.h5", "labels").y) == 2

    process, url, printed = start_labor(*command, "--port", "0", "--quiet")  # --quiet still prints the URL
    try:
        assert f"2 answered earlier (from {journal})" in printed
        client = UrlClient(url)
        answer_all(client, truth, seconds=2.0, skip=range(2))
        assert client.post("/api/finish")[0] == 200
        code, out, err = finish(process, printed)
    finally:
        process.kill()
    assert code == 0 and err == "" and "annotate finished: 6 of 6 points answered, 0 left" in out, (out, err)
    assert "30.0 points per minute" in out and "to continue" not in out
    assert_same_labels(read_h5(tmp_path / "person.h5"), read_h5(tmp_path / "simulated.h5"))  # what adapt reads


def labor_error(capsys, *args) -> tuple[int, str]:
    """`labor ARGS` in this process, which must fail: its exit code and its one line of stderr."""
    code, _, err = run_main(args, capsys)
    assert code != 0
    return code, one_line(err)


def test_cli_bad_input_is_one_error_line_and_writes_nothing(tmp_path, toy_target, truth, capsys):
    ids = list(truth)
    point_selection(tmp_path / "sel.h5", truth, ids[:1], count=3, ignored=0)
    point_selection(tmp_path / "other.h5", truth, ids[:1], count=3, ignored=0, seed=5)
    write_selection(tmp_path / "empty.h5", ids[:1], [truth[ids[0]].shape], [np.zeros(0)], [np.zeros(0)])
    (tmp_path / "taken.h5").write_bytes(b"someone else's")
    out = tmp_path / "out" / "person.h5"
    base = ["annotate", "--target", toy_target, "-o", out, "--port", "0"]
    cases = [  # (extra arguments, exit code, the error line after "labor: error: ")
        (["--selection", tmp_path / "nothing.h5"], 1, f"{tmp_path / 'nothing.h5'}: no such file"),
        (["--selection", tmp_path / "sel.h5", "--port", "70000"], 2, "--port 70000: must be from 0 to 65535"),
        (["--selection", tmp_path / "empty.h5"], 1, f"{tmp_path / 'empty.h5'}: selects no pixels: nothing to annotate"),
        (["--selection", tmp_path / "sel.h5", "--target", "cityscapes:" + str(tmp_path / "nowhere")], 1,
         str(tmp_path / "nowhere")),
        (["--selection", tmp_path / "sel.h5", "--merge", tmp_path / "other.h5"], 1,
         f"{tmp_path / 'other.h5'}: is a selection artifact, expected a labels artifact"),
        (["--selection", tmp_path / "sel.h5", "-o", tmp_path / "taken.h5"], 1,
         f"{tmp_path / 'taken.h5'}: already exists; pass --force to replace it"),
        (["--selection", tmp_path / "sel.h5", "--min-region", "0"], 2, "--min-region 0: must be at least 1"),
        (["--selection", tmp_path / "sel.h5", "--idle-cap", "0"], 2, "--idle-cap 0.0: must be more than 0"),
        (["--selection", tmp_path / "sel.h5", "--idle-cap", "nan"], 2, "--idle-cap nan: must be more than 0"),
        (["--selection", tmp_path / "sel.h5", "--idle-cap", "-5"], 2, "--idle-cap -5.0: must be more than 0"),
        (["--selection", tmp_path / "sel.h5", "--annotator", " "], 2, "--annotator ' ': expected a name of 1 to 100"),
        (["--selection", tmp_path / "sel.h5", "--annotator", "x" * 101], 2, "expected a name of 1 to 100"),
    ]  # fmt: skip
    for extra, code, message in cases:
        got_code, err = labor_error(capsys, *base, *extra)
        assert got_code == code and err.startswith("labor: error: ") and message in err, (extra, err)
    assert not out.parent.exists()  # nothing written, not even the folder

    # The answers file (journal) of another selection is never taken over, not even with --force.
    out.parent.mkdir()
    header = {"labor_annotate": 1, "session": "s", "selection": str(tmp_path / "other.h5"), "selection_uuid": "u"}
    journal = tmp_path / "out" / "person.annotate.jsonl"
    journal.write_text(json.dumps(header) + "\n")
    code, err = labor_error(capsys, *base, "--selection", tmp_path / "sel.h5", "--force")
    assert code == 1 and err.startswith(f"labor: error: {journal}: holds answers to another selection")
    assert "move it away to start afresh" in err
    journal.write_text("not json\n")
    assert labor_error(capsys, *base, "--selection", tmp_path / "sel.h5") == (
        1, f"labor: error: {journal}: line 1: not a JSON record (damaged journal)")  # fmt: skip
    journal.unlink()

    # A port in use: one line that says what to do.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = labor_error(capsys, *base, "--selection", tmp_path / "sel.h5", "--port", port)
    assert code == 1 and err.startswith(f"labor: error: cannot serve on 127.0.0.1:{port} (")
    assert err.endswith("choose another --port (0: any free one) or --host")
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_cli_help_lists_annotate_with_its_options():
    runner = CliRunner()
    assert "annotate" in runner.invoke(app, ["--help"]).output
    help_text = runner.invoke(app, ["annotate", "--help"]).output
    not_a_number = runner.invoke(app, ["annotate", "--selection", "s", "--target", "t", "-o", "o", "--min-region", "x"])
    assert not_a_number.exit_code == 2 and "--min-region" in not_a_number.output
    flags = ("--selection", "--target", "--output", "--split", "--merge", "--host", "--port", "--min-region")
    for flag in flags + ("--idle-cap", "--annotator", "--force"):
        assert flag in help_text
