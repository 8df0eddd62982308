"""labor plot: the data behind each figure equals what the artifacts hold; PNGs of the asked size."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import invoke
from PIL import Image

from labor_cli import artifacts
from labor_cli.cli import main
from labor_cli.errors import LaborError
from labor_cli.history import LOSS_COLUMNS, LossHistoryCSV
from labor_cli.options import PlotOptions
from labor_cli.stages import plot


def make(path, kind, config, parents=(), **attrs):
    """A hand-made artifact of ``kind`` with only what plot reads; returns its Parent record."""
    with artifacts.create_artifact(path, kind, config, list(parents)) as f:
        for name, value in attrs.items():
            if isinstance(value, np.ndarray):
                f.create_dataset(name, data=value)
            else:
                f.attrs[name] = json.dumps(value)
    with h5py.File(path) as f:
        return artifacts.Parent(kind, str(f.attrs["uuid"]), str(path))


CLASSES = ["road", "sidewalk", "building"]


def evaluation(path, model, iou):
    iou = np.asarray(iou, dtype=np.float64)
    return make(
        path,
        "evaluation",
        {"model": model.path},
        [model],
        scores={"mIoU3": float(np.nanmean(iou) * 100)},
        class_names=CLASSES,
        iou=iou,
    )


@pytest.fixture
def chain(tmp_path):
    """Two seeds of: a warmup, one PPL round (0.1% labeled), a second round (0.2%); and their evaluations."""
    for seed, offset in ((0, 0.0), (1, 0.02)):
        d = tmp_path / f"seed{seed}"
        warm = make(d / "warmup.h5", "checkpoint", {"stage": "warmup", "train": {"lambda_adv": 0.001, "seed": seed}})
        selection = make(d / "sel1.h5", "selection", {"mode": "ppl", "points": 40, "ratio": None, "min_spacing": 8.0})
        labels = make(d / "lab1.h5", "labels", {}, [selection], summary={"labeled_share_percent": 0.1 + offset})
        model = make(d / "model1.h5", "checkpoint", {"stage": "adapt"}, [warm, labels])
        selection2 = make(d / "sel2.h5", "selection", {"mode": "ppl", "points": 40, "ratio": None, "min_spacing": 8.0})
        labels2 = make(
            d / "lab2.h5", "labels", {}, [selection2, labels], summary={"labeled_share_percent": 0.2 + offset}
        )
        model2 = make(d / "model2.h5", "checkpoint", {"stage": "adapt"}, [model, labels2])
        evaluation(d / "eval-warmup.h5", warm, [0.5, 0.2, np.nan])
        evaluation(d / "eval-round1.h5", model, [0.8, 0.4 + seed / 10, 0.6])
        evaluation(d / "eval-round2.h5", model2, [0.9, 0.5, 0.7 + seed / 10])
    return tmp_path


def png_size(path):
    with Image.open(path) as im:
        return im.format, im.size


def test_without_matplotlib_one_line_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    message = r"^labor plot needs matplotlib, which is not installed: pip install 'labor\[plot\]'$"
    with pytest.raises(LaborError, match=message):
        plot.run_plot(PlotOptions(kind="curves", inputs=["x.h5"], output=tmp_path / "curves.png"))
    assert not (tmp_path / "curves.png").exists()


def test_curves_of_a_checkpoint_are_its_history(tmp_path, warm_checkpoint, capsys):
    data = plot.curve_data(warm_checkpoint)
    with h5py.File(warm_checkpoint) as f:
        stored = {name: ds[()] for name, ds in f["training/history"].items()}
    assert set(data) == {name for name, values in stored.items() if np.abs(values).max() > 0}
    assert "seg_tgt" not in data  # warmup has no target labels: a zero line is left out
    for name, (iterations, values) in data.items():
        assert iterations.tolist() == list(range(1, len(stored[name]) + 1))
        assert np.array_equal(values, stored[name].astype(np.float64))
    result = invoke(
        "plot", "curves", warm_checkpoint, "-o", tmp_path / "curves.png", "--size", "900x600", "--smooth", 3
    )
    assert f"{tmp_path / 'curves.png'}: curves, 900x600 px, 1 series (warmup.h5)" in " ".join(result.output.split())
    assert png_size(tmp_path / "curves.png") == ("PNG", (900, 600))
    before = (tmp_path / "curves.png").read_bytes()
    with pytest.raises(SystemExit) as stop:
        main(["plot", "curves", str(warm_checkpoint), "-o", str(tmp_path / "curves.png")])
    err = capsys.readouterr().err
    assert stop.value.code == 1 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "curves.png").read_bytes() == before


def test_curves_of_a_csv_in_progress(tmp_path):
    writer = LossHistoryCSV(tmp_path / "warmup.losses.csv")
    values = {name: np.linspace(1, 2, 20, dtype=np.float32) * (k + 1) for k, name in enumerate(LOSS_COLUMNS)}
    values["seg_tgt"][:] = 0
    writer.append(values, lr=[1e-3 * (1 - i / 20) for i in range(20)])
    writer.close()
    data = plot.curve_data(tmp_path / "warmup.losses.csv")
    assert "seg_tgt" not in data and "lr" in data
    assert np.array_equal(data["dis"][1].astype(np.float32), values["dis"])
    assert data["lr"][0].tolist() == list(range(1, 21))
    invoke("plot", "curves", tmp_path / "warmup.losses.csv", "-o", tmp_path / "c.png")
    assert png_size(tmp_path / "c.png") == ("PNG", plot.DEFAULT_SIZE)


def test_moving_average_known_answer():
    values = np.array([1.0, 3.0, np.nan, 5.0, 7.0])
    assert plot.moving_average(values, 2).tolist() == [1.0, 2.0, 3.0, 5.0, 6.0]


def test_budget_points_come_from_the_lineage(chain):
    root = chain
    paths = sorted(root.glob("seed*/eval-*.h5"))
    points = {(p.path.parent.name, p.path.stem): p for p in plot.gather_eval_points(paths)}
    round2 = points[("seed1", "eval-round2")]
    assert (round2.method, round2.rounds) == ("ppl, 40 points, 8 px apart", 2)
    assert math.isclose(round2.share, 0.22)
    assert points[("seed0", "eval-warmup")].method == "adversarial warmup"
    series = plot.budget_series(plot.group_points(list(points.values())))
    assert sorted(series) == ["adversarial warmup", "ppl, 40 points, 8 px apart"]
    first, second = series["ppl, 40 points, 8 px apart"]
    assert (first.count, second.count) == (2, 2)
    assert math.isclose(first.share, 0.11) and math.isclose(first.share_sd, np.std([0.1, 0.12], ddof=1))
    seed_mious = [np.mean([0.8, 0.4, 0.6]) * 100, np.mean([0.8, 0.5, 0.6]) * 100]
    assert math.isclose(first.miou, np.mean(seed_mious)) and math.isclose(first.miou_sd, np.std(seed_mious, ddof=1))
    warm = series["adversarial warmup"][0]
    assert warm.share == 0 and math.isclose(warm.miou, 35.0)  # nan class left out of the mean


def test_one_round_at_two_budgets_gives_two_points():
    def point(share, miou, rounds=1):
        return plot.EvalPoint(Path(f"e{share}-{miou}.h5"), miou, share, "random", rounds)

    # 40 points per image on three seeds (shares a little apart), a 2% ratio on two, 2 rounds on one
    points = [point(0.12, 60.0), point(0.13, 62.0), point(0.125, 61.0), point(2.1, 65.0), point(2.2, 64.0)]
    points.append(point(0.24, 63.0, rounds=2))
    forty, two_rounds, ratio = plot.budget_series({"random": points})["random"]
    assert (forty.count, two_rounds.count, ratio.count) == (3, 1, 2)
    assert math.isclose(forty.share, 0.125) and math.isclose(forty.miou, 61.0) and math.isclose(forty.miou_sd, 1.0)
    assert math.isclose(ratio.share, 2.15) and math.isclose(ratio.miou, 64.5)
    assert math.isclose(two_rounds.share, 0.24)


def test_labels_name_and_order_the_methods(chain, tmp_path):
    root = chain
    labels = [f"LabOR-PPL={root}/seed*/eval-round*.h5", f"warmup={root}/seed*/eval-warmup.h5"]
    result = invoke(
        "plot",
        "budget",
        "--label",
        labels[0],
        "--label",
        labels[1],
        "-o",
        tmp_path / "budget.png",
        "--size",
        "1000x700",
    )
    assert "2 series (LabOR-PPL, warmup)" in " ".join(result.output.split())
    assert png_size(tmp_path / "budget.png") == ("PNG", (1000, 700))
    points = plot.gather_eval_points(sorted(root.glob("seed*/eval-*.h5")))
    groups = plot.group_points(points, plot.parse_labels(labels))
    assert [len(g) for g in groups.values()] == [4, 2]


def test_class_bars_are_means_over_the_artifacts(chain, tmp_path):
    root = chain
    labels = [f"round 1={root}/seed*/eval-round1.h5", f"round 2={root}/seed*/eval-round2.h5"]
    groups = plot.group_points(
        plot.gather_eval_points(sorted(root.glob("seed*/eval-round*.h5")), lineage=False), plot.parse_labels(labels)
    )
    names, table = plot.class_iou_table(groups)
    assert names == CLASSES
    mean, sd = table["round 1"]
    assert np.allclose(mean, [80, 45, 60]) and np.allclose(sd, [0, np.std([40, 50], ddof=1), 0])
    invoke("plot", "classes", "--label", labels[0], "--label", labels[1], "-o", tmp_path / "classes.png")
    assert png_size(tmp_path / "classes.png") == ("PNG", plot.DEFAULT_SIZE)


def test_a_missing_link_of_the_chain_is_named(chain, tmp_path):
    root = chain
    (root / "seed0" / "lab1.h5").unlink()
    with pytest.raises(LaborError, match=r"model1\.h5: its labels .*lab1\.h5 \(uuid \w+\) is not there"):
        plot.gather_eval_points([root / "seed0" / "eval-round1.h5"])
