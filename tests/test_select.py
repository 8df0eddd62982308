"""labor select: known answers on hand-made masks artifacts, budgets, spacing, errors, round trips."""

import json

import h5py
import numpy as np
import pytest

from labor_cli import artifacts, selection
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import SelectOptions
from labor_cli.stages.select import run_select

CLASSES = ["road", "sidewalk", "building", "wall"]


def _rows(**columns):
    return {name: np.asarray(values) for name, values in columns.items()}


def _image(h, w, prediction=None, mask=None, candidates=None, uncertain=None, excluded=None, runner_up=None):
    """One image of a hand-made masks artifact; missing groups are empty, the runner-up is the
    next class."""
    prediction = np.zeros((h, w), np.uint8) if prediction is None else np.asarray(prediction, np.uint8)
    return {
        "size": (h, w),
        "prediction": prediction,
        "runner_up": (prediction + 1) % len(CLASSES) if runner_up is None else np.asarray(runner_up, np.uint8),
        "mask": np.zeros((h, w), bool) if mask is None else np.asarray(mask, bool),
        "candidates": candidates or _rows(y=[], x=[], **{"class": []}, similarity=[]),
        "uncertain": uncertain or _rows(y=[], x=[], entropy=[]),
        "excluded": excluded or _rows(y=[], x=[]),
    }


def write_masks(path, images):
    ids = [f"city/city_{i:06d}" for i in range(len(images))]
    with artifacts.create_artifact(path, "masks", {}, []) as f:
        writer = artifacts.MasksWriter(f, ids, np.array([im["size"] for im in images]), "test4", CLASSES)
        for i, im in enumerate(images):
            groups = {k: im[k] for k in ("candidates", "uncertain", "excluded")}
            writer.add(i, im["prediction"], im["runner_up"], im["mask"], groups)
        writer.close()
    return path


def pairs(pixels, i=0):
    s = pixels.pixels_of(i)
    return list(zip(pixels.y[s].tolist(), pixels.x[s].tolist()))


def select(tmp_path, masks, mode, name="sel.h5", **kwargs):
    output = tmp_path / name
    result = run_select(SelectOptions(masks=masks, mode=mode, output=output, quiet=True, **kwargs))
    return result, artifacts.read_pixel_set(output, "selection")


def test_spl_returns_exactly_the_mask_pixels_minus_excluded(tmp_path):
    mask = np.zeros((5, 6), bool)
    mask[1, 2] = mask[1, 3] = mask[3, 0] = mask[4, 5] = True
    prediction = np.arange(30).reshape(5, 6) % 4
    masks = write_masks(
        tmp_path / "m.h5",
        [
            _image(5, 6, prediction, mask),
            _image(
                4, 4, mask=np.eye(4, dtype=bool), excluded=_rows(y=[2], x=[2])
            ),  # a damaged mask: excluded pixel inside
        ],
    )
    result, pixels = select(tmp_path, masks, "spl")
    assert pairs(pixels, 0) == [(1, 2), (1, 3), (3, 0), (4, 5)]
    assert pairs(pixels, 1) == [(0, 0), (1, 1), (3, 3)]
    np.testing.assert_array_equal(pixels.predicted[:4], prediction[[1, 1, 3, 4], [2, 3, 0, 5]])
    assert result.pixels_per_image.tolist() == [4, 3]
    assert result.labeled_share == pytest.approx(100 * 7 / (30 + 16))
    assert result.shortfall_images == 0


def _ppl_image():
    # Grouped by class, most similar first (as extract stores them); values exact in float16.
    cands = [  # (y, x, class, similarity)
        (0, 0, 0, 0.875),
        (0, 4, 0, 0.75),
        (0, 8, 0, 0.625),
        (4, 0, 1, 0.9375),
        (4, 4, 1, 0.5),
        (8, 0, 2, 0.625),
        (8, 8, 3, 0.625),  # ties with class 2 in round 0: class index breaks the tie
    ]
    y, x, c, s = zip(*cands)
    prediction = np.zeros((10, 10), np.uint8)
    prediction[list(y), list(x)] = c  # A predicts each candidate's class there, as extract guarantees
    return _image(10, 10, prediction, candidates=_rows(y=y, x=x, **{"class": c}, similarity=s))


def test_ppl_deals_points_round_robin_in_the_expected_order(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_ppl_image()])
    result, pixels = select(tmp_path, masks, "ppl", points=6)
    # round 0: class 1 (.9375), class 0 (.875), class 2 (.625), class 3 (.625); round 1: class 0 (.75), class 1 (.5)
    assert pairs(pixels) == [(4, 0), (0, 0), (8, 0), (8, 8), (0, 4), (4, 4)]
    assert result.class_counts == {"road": 2, "sidewalk": 2, "building": 1, "wall": 1}
    assert pixels.predicted.tolist() == [1, 0, 2, 3, 0, 1]


def test_round_robin_order_does_not_trust_the_stored_order_within_a_class():
    classes = np.array([1, 0, 1, 0, 0])
    similarity = np.array([0.2, 0.1, 0.9, 0.8, 0.8])  # class 0 ties: stored order breaks it
    assert selection.round_robin_order(classes, similarity).tolist() == [2, 3, 4, 0, 1]


def test_ppl_budget_is_exact_and_shortfall_is_reported(tmp_path):
    rich = _ppl_image()
    poor = _image(6, 6, candidates=_rows(y=[1, 2], x=[1, 2], **{"class": [0, 1]}, similarity=[0.5, 0.5]))
    masks = write_masks(tmp_path / "m.h5", [rich, poor, rich])
    result, pixels = select(tmp_path, masks, "ppl", points=4)
    assert pixels.counts().tolist() == [4, 2, 4]
    assert result.shortfall_images == 1 and result.shortfall_pixels == 2
    result, pixels = select(tmp_path, masks, "ppl", name="all.h5", points=7)
    assert pixels.counts().tolist() == [7, 2, 7]
    assert (result.shortfall_images, result.shortfall_pixels) == (1, 5)


def test_ppl_never_returns_an_excluded_or_repeated_pixel(tmp_path):
    candidates = _rows(
        y=[0, 0, 3, 5, 5], x=[0, 0, 3, 5, 6], **{"class": [0, 0, 0, 1, 1]}, similarity=[0.9, 0.8, 0.7, 0.9, 0.8]
    )
    prediction = np.zeros((8, 8), np.uint8)
    prediction[5, 5:7] = 1
    masks = write_masks(
        tmp_path / "m.h5", [_image(8, 8, prediction, candidates=candidates, excluded=_rows(y=[5], x=[5]))]
    )
    _, pixels = select(tmp_path, masks, "ppl", points=5)
    assert pairs(pixels) == [(0, 0), (5, 6), (3, 3)]
    assert pixels.predicted.tolist() == [0, 1, 0]


def test_ppl_refuses_candidates_that_disagree_with_the_prediction_map(tmp_path):
    candidates = _rows(y=[1, 2], x=[1, 2], **{"class": [0, 3]}, similarity=[0.5, 0.5])
    masks = write_masks(tmp_path / "m.h5", [_image(4, 4, candidates=candidates)])  # A predicts 0 everywhere
    with pytest.raises(LaborError, match="damaged masks artifact.*disagree"):
        run_select(SelectOptions(masks=masks, mode="ppl", output=tmp_path / "sel.h5", points=2, quiet=True))


def _clustered_candidates(rng, count, h, w):
    """A cluster of top candidates (as similar pixels tend to be), then scattered ones."""
    cluster = [(10 + i // 4, 10 + i % 4) for i in range(12)]
    others = set()
    while len(others) < count - len(cluster):
        others.add((int(rng.integers(h)), int(rng.integers(w))))
    points = cluster + sorted(others - set(cluster))[: count - len(cluster)]
    y, x = np.array(points).T
    sims = np.linspace(1.0, 0.1, len(points))
    return _rows(y=y, x=x, **{"class": np.zeros(len(points), int)}, similarity=sims)


def test_min_spacing_keeps_points_apart_and_the_budget_exact(tmp_path):
    rng = np.random.default_rng(0)
    masks = write_masks(tmp_path / "m.h5", [_image(40, 60, candidates=_clustered_candidates(rng, 60, 40, 60))])
    _, plain = select(tmp_path, masks, "ppl", name="plain.h5", points=8)
    result, spaced = select(tmp_path, masks, "ppl", points=8, min_spacing=5)
    assert len(spaced.y) == 8 and result.spacing_relaxed_images == 0
    yx = np.stack([spaced.y, spaced.x], 1).astype(float)
    distances = np.linalg.norm(yx[:, None] - yx[None], axis=-1)[np.triu_indices(8, 1)]
    assert distances.min() >= 5
    plain_yx = np.stack([plain.y, plain.x], 1).astype(float)
    assert np.linalg.norm(plain_yx[:, None] - plain_yx[None], axis=-1)[np.triu_indices(8, 1)].min() < 5
    assert (spaced.y[0], spaced.x[0]) == (plain.y[0], plain.x[0])  # the best point always stays


def test_min_spacing_gives_way_to_the_budget(tmp_path):
    candidates = _rows(y=[0, 0, 1, 1, 2], x=[0, 1, 0, 1, 2], **{"class": [0] * 5}, similarity=[0.9, 0.8, 0.7, 0.6, 0.5])
    masks = write_masks(tmp_path / "m.h5", [_image(20, 20, candidates=candidates)])
    result, pixels = select(tmp_path, masks, "ppl", points=3, min_spacing=10)
    # Only the first survives suppression; the budget is met by adding back the dropped ones in order.
    assert pairs(pixels) == [(0, 0), (0, 1), (1, 0)]
    assert result.spacing_relaxed_images == 1 and result.shortfall_images == 0


@pytest.mark.parametrize("spacing", [1.5, 3.0, 7.2])
def test_both_suppression_methods_agree_with_a_plain_definition(spacing):
    rng = np.random.default_rng(1)
    linear = rng.choice(50 * 70, size=300, replace=False)
    y, x = np.divmod(linear, 70)
    yx = np.stack([y, x], 1).astype(float)
    close = np.linalg.norm(yx[:, None] - yx[None], axis=-1) < spacing
    expected = np.tril(close, -1).any(axis=1)
    np.testing.assert_array_equal(selection._suppressed_pairwise(y, x, spacing), expected)
    np.testing.assert_array_equal(selection._suppressed_raster(y, x, spacing, (50, 70)), expected)


def test_random_avoids_excluded_pixels_is_exact_and_follows_the_seed(tmp_path):
    excluded_linear = np.arange(0, 30 * 40, 2)  # every other pixel labeled before
    ey, ex = np.divmod(excluded_linear, 40)
    masks = write_masks(tmp_path / "m.h5", [_image(30, 40, excluded=_rows(y=ey, x=ex)), _image(30, 40)])
    _, a = select(tmp_path, masks, "random", name="a.h5", points=50, seed=3)
    _, b = select(tmp_path, masks, "random", name="b.h5", points=50, seed=3)
    _, c = select(tmp_path, masks, "random", name="c.h5", points=50, seed=4)
    assert a.counts().tolist() == [50, 50]
    first = a.y[:50].astype(int) * 40 + a.x[:50]
    assert not np.isin(first, excluded_linear).any()
    assert len(np.unique(first)) == 50 and len(set(pairs(a, 1))) == 50
    assert pairs(a, 0) == pairs(b, 0) and pairs(a, 1) == pairs(b, 1)
    assert pairs(a, 0) != pairs(c, 0)


def test_random_takes_all_remaining_pixels_when_fewer_remain(tmp_path):
    ey, ex = np.divmod(np.arange(14), 4)  # 14 of 16 pixels labeled before
    masks = write_masks(tmp_path / "m.h5", [_image(4, 4, excluded=_rows(y=ey, x=ex))])
    result, pixels = select(tmp_path, masks, "random", points=5)
    assert sorted(pairs(pixels)) == [(3, 2), (3, 3)]
    assert (result.shortfall_images, result.shortfall_pixels) == (1, 3)


def test_random_with_min_spacing(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_image(64, 64)])
    _, pixels = select(tmp_path, masks, "random", points=20, min_spacing=6, seed=1)
    yx = np.stack([pixels.y, pixels.x], 1).astype(float)
    assert len(yx) == 20
    assert np.linalg.norm(yx[:, None] - yx[None], axis=-1)[np.triu_indices(20, 1)].min() >= 6


def _uncertain_image():
    entropy = [2.0, 1.75, 1.5, 1.25, 1.0, 0.75, 0.5, 0.25]
    y = [0, 0, 1, 5, 5, 2, 3, 4]
    x = [0, 1, 0, 5, 6, 2, 4, 4]
    return _image(6, 8, prediction=np.full((6, 8), 2), uncertain=_rows(y=y, x=x, entropy=entropy))


def test_entropy_picks_the_most_uncertain_pixels_in_order(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_uncertain_image()])
    result, pixels = select(tmp_path, masks, "entropy", points=4)
    assert pairs(pixels) == [(0, 0), (0, 1), (1, 0), (5, 5)]
    assert result.class_counts["building"] == 4
    _, spaced = select(tmp_path, masks, "entropy", name="spaced.h5", points=4, min_spacing=2)
    assert pairs(spaced) == [(0, 0), (5, 5), (2, 2), (3, 4)]


def test_entropy_asking_for_more_than_stored_names_the_fix(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_uncertain_image()])
    with pytest.raises(LaborError, match=r"m\.h5.*--uncertain-per-image") as error:
        run_select(SelectOptions(masks=masks, mode="entropy", output=tmp_path / "sel.h5", points=9, quiet=True))
    assert error.value.exit_code == 1
    with pytest.raises(LaborError, match="--uncertain-per-image"):
        run_select(SelectOptions(masks=masks, mode="entropy", output=tmp_path / "sel.h5", ratio=0.5, quiet=True))
    assert not (tmp_path / "sel.h5").exists()


def test_ratio_gives_the_rounded_share_of_each_image(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_image(6, 8), _image(5, 7)])
    result, pixels = select(tmp_path, masks, "random", ratio=0.25)
    assert pixels.counts().tolist() == [round(0.25 * 48), round(0.25 * 35)] == [12, 9]
    assert result.labeled_share == pytest.approx(100 * 21 / 83)
    masks = write_masks(tmp_path / "u.h5", [_uncertain_image()])
    _, pixels = select(tmp_path, masks, "entropy", name="e.h5", ratio=0.1)
    assert pairs(pixels) == [(0, 0), (0, 1), (1, 0), (5, 5), (5, 6)]  # round(4.8) = 5


def test_selection_round_trips_with_lineage_summary_and_config(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_ppl_image(), _ppl_image()])
    result, pixels = select(tmp_path, masks, "ppl", points=3, min_spacing=2.5, seed=7)
    with artifacts.open_artifact(masks, "masks") as artifact:
        masks_uuid = artifact.uuid
    assert pixels.parent.kind == "selection"
    assert pixels.image_ids == ["city/city_000000", "city/city_000001"]
    assert pixels.sizes.tolist() == [[10, 10], [10, 10]]
    assert pixels.class_set == "test4" and pixels.class_names == CLASSES
    assert len(pixels.predicted) == 6 and pixels.label is None
    with h5py.File(tmp_path / "sel.h5") as f:
        assert json.loads(f.attrs["lineage"]) == [{"kind": "masks", "uuid": masks_uuid, "path": str(masks)}]
        config = json.loads(f.attrs["config"])
        assert (config["mode"], config["points"], config["ratio"], config["min_spacing"], config["seed"]) == (
            "ppl",
            3,
            None,
            2.5,
            7,
        )
        summary = json.loads(f.attrs["summary"])
    assert summary["pixels"] == 6 == result.total and summary["mode"] == "ppl"


def test_existing_output_is_refused_without_force(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_ppl_image()])
    select(tmp_path, masks, "ppl", points=2)
    before = (tmp_path / "sel.h5").read_bytes()
    with pytest.raises(LaborError, match="already exists"):
        run_select(SelectOptions(masks=masks, mode="ppl", output=tmp_path / "sel.h5", points=5, quiet=True))
    with pytest.raises(LaborError, match="already exists"):  # checked before the input is even opened
        run_select(
            SelectOptions(masks=tmp_path / "missing.h5", mode="ppl", output=tmp_path / "sel.h5", points=5, quiet=True)
        )
    assert (tmp_path / "sel.h5").read_bytes() == before
    run_select(SelectOptions(masks=masks, mode="ppl", output=tmp_path / "sel.h5", points=5, force=True, quiet=True))
    assert artifacts.read_pixel_set(tmp_path / "sel.h5", "selection").counts().tolist() == [5]


@pytest.mark.parametrize(
    "mode, kwargs, message",
    [
        ("greedy", {"points": 4}, "unknown mode"),
        ("ppl", {"points": 0}, "positive"),
        ("random", {"points": -3}, "positive"),
        ("ppl", {}, "needs --points"),
        ("ppl", {"ratio": 0.1}, "not --ratio"),
        ("random", {}, "--points N .* or --ratio"),
        ("entropy", {"points": 3, "ratio": 0.1}, "not both"),
        ("random", {"ratio": 0.0}, r"\(0, 1\]"),
        ("entropy", {"ratio": 1.5}, r"\(0, 1\]"),
        ("spl", {"points": 3}, "not allowed"),
        ("spl", {"min_spacing": 2.0}, "not allowed"),
        ("ppl", {"points": 3, "min_spacing": -1.0}, "min-spacing"),
        ("random", {"points": 49}, "more than the 48 pixels"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, mode, kwargs, message):
    masks = write_masks(tmp_path / "m.h5", [_image(6, 8), _image(7, 9)])
    with pytest.raises(LaborUsageError, match=message) as error:
        run_select(SelectOptions(masks=masks, mode=mode, output=tmp_path / "sel.h5", quiet=True, **kwargs))
    assert error.value.exit_code == 2 and "\n" not in str(error.value)
    assert not (tmp_path / "sel.h5").exists()


def test_missing_or_wrong_kind_of_masks_file(tmp_path):
    with pytest.raises(LaborError, match="no such file") as error:
        run_select(SelectOptions(masks=tmp_path / "nope.h5", mode="spl", output=tmp_path / "sel.h5", quiet=True))
    assert error.value.exit_code == 1
    masks = write_masks(tmp_path / "m.h5", [_ppl_image()])
    select(tmp_path, masks, "ppl", points=2)
    with pytest.raises(LaborError, match="is a selection artifact, expected a masks artifact"):
        run_select(
            SelectOptions(masks=tmp_path / "sel.h5", mode="ppl", output=tmp_path / "again.h5", points=2, quiet=True)
        )


def test_output_may_not_replace_its_input(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_ppl_image()])
    with pytest.raises(LaborUsageError, match="own input"):
        run_select(SelectOptions(masks=masks, mode="ppl", output=masks, points=2, force=True, quiet=True))


def test_ppl_pick_matches_a_plain_reference_on_random_candidates():
    rng = np.random.default_rng(5)
    count, shape = 400, (20, 30)
    y, x = rng.integers(0, 20, count), rng.integers(0, 30, count)  # many repeated pixels
    classes = rng.integers(0, 6, count)
    similarity = rng.choice([0.25, 0.5, 0.75, 1.0], count)  # many ties
    excluded = rng.choice(600, 50, replace=False)
    full = selection.round_robin_order(classes, similarity)
    for limit in (1, 7, 50, 1000):
        np.testing.assert_array_equal(selection.round_robin_order(classes, similarity, limit), full[:limit])
    linear = y[full] * 30 + x[full]
    _, first = np.unique(linear, return_index=True)
    reference = [i for i in sorted(first) if linear[i] not in set(excluded.tolist())]
    for n in (1, 10, 40, 500):
        candidates = selection.PrototypeCandidates(y, x, classes, similarity)
        chosen = selection.ppl_pick(candidates, n, shape, excluded=excluded)
        expected = full[reference[:n]]
        assert list(zip(chosen.y, chosen.x)) == list(zip(y[expected], x[expected]))
        assert chosen.predicted.tolist() == classes[expected].tolist()


def test_print_select_summary_shows_classes_and_shortfall(tmp_path, capsys):
    from labor_cli.stages.select import print_select_summary

    poor = _image(6, 6, candidates=_rows(y=[1], x=[1], **{"class": [0]}, similarity=[0.5]))
    masks = write_masks(tmp_path / "m.h5", [_ppl_image(), poor])
    result, _ = select(tmp_path, masks, "ppl", points=3)
    print_select_summary(result)
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert "sidewalk" in out and "wall" not in out  # only classes that were chosen
    assert "ppl: 4 pixels" in out and "1 image(s) short by 2" in out and "sel.h5" in out


# --- balanced: our mode -------------------------------------------------------------------------


def test_class_budgets_follow_the_power_and_cap_at_each_class_area():
    areas = np.array([900, 100, 4, 0])
    assert selection.class_budgets(areas, 40, 1.0).tolist() == [36, 4, 0, 0]  # area-proportional
    assert selection.class_budgets(areas, 40, 0.5).tolist() == [29, 9, 2, 0]  # 28.6 : 9.5 : 1.9, largest remainders
    assert selection.class_budgets(areas, 40, 0.0).tolist() == [19, 17, 4, 0]  # 14:13:13, class 2 full at 4 passes 9 on
    assert selection.class_budgets(areas, 2000, 0.5).tolist() == [900, 100, 4, 0]  # more than there is


def test_sampled_budgets_round_the_same_shares_at_random():
    """Inside a class: the shares class_budgets rounds, each rounded down or up at random, exactly
    n in all, their share on average; a budget below the number of groups is not always the largest's."""
    areas = np.array([900, 100, 4, 0])
    shares = selection.group_shares(areas, 40, 0.0)
    np.testing.assert_allclose(shares, [18.0, 18.0, 4.0, 0.0])  # class 2 full at 4, its surplus shared
    shares = selection.group_shares(areas, 40, 0.5)
    np.testing.assert_allclose(shares, 40 * np.sqrt([900, 100, 4, 0]) / 42)
    rng = np.random.default_rng(0)
    draws = np.array([selection.sampled_budgets(areas, 40, 0.5, rng) for _ in range(4000)])
    assert (draws.sum(1) == 40).all() and (draws <= areas).all()
    assert ((draws == np.floor(shares)) | (draws == np.ceil(shares))).all()
    np.testing.assert_allclose(draws.mean(0), shares, atol=0.03)
    assert selection.sampled_budgets(areas, 2000, 0.5, rng).tolist() == [900, 100, 4, 0]  # more than there is
    one = np.array([selection.sampled_budgets(np.array([400, 100]), 1, 0.5, rng) for _ in range(3000)])
    assert abs(one[:, 1].mean() - 1 / 3) < 0.03  # the small group's chance is its share, 10 / (20 + 10)


def test_balanced_draws_each_class_budget_inside_the_class_and_follows_the_seed(tmp_path):
    prediction = np.zeros((40, 50), np.uint8)
    prediction[:, 45:] = 1  # 200 pixels of class 1
    prediction[:2, :2] = 2  # 4 pixels of class 2
    excluded = _rows(y=[0, 5], x=[0, 5])  # one pixel of class 2, one of class 0
    masks = write_masks(tmp_path / "m.h5", [_image(40, 50, prediction=prediction, excluded=excluded)])
    result, a = select(tmp_path, masks, "balanced", name="a.h5", points=20, seed=1)
    _, b = select(tmp_path, masks, "balanced", name="b.h5", points=20, seed=1)
    _, c = select(tmp_path, masks, "balanced", name="c.h5", points=20, seed=2)
    areas = np.array([1795, 200, 3])
    expected = selection.class_budgets(areas, 20, 0.5)
    got = prediction[a.y, a.x]
    assert np.bincount(got, minlength=3).tolist() == expected.tolist() == [14, 5, 1]
    np.testing.assert_array_equal(a.predicted, got)
    assert (0, 0) not in pairs(a) and (5, 5) not in pairs(a) and len(set(pairs(a))) == 20
    assert pairs(a) == pairs(b) and pairs(a) != pairs(c)
    assert result.class_counts["road"] == 14 and result.summary["mode"] == "balanced"


def test_balanced_over_class_pairs_splits_a_class_by_its_runner_up(tmp_path):
    """The default strata: class budgets first, then each class's budget over its runner-up classes,
    rounded at random."""
    prediction = np.zeros((40, 50), np.uint8)
    prediction[:, 45:] = 1  # 200 pixels of class 1
    runner_up = np.full((40, 50), 2, np.uint8)
    runner_up[:, :2] = 3  # 80 of class 0's pixels would otherwise be class 3
    runner_up[:, 45:] = 0
    masks = write_masks(tmp_path / "m.h5", [_image(40, 50, prediction=prediction, runner_up=runner_up)])
    _, pair = select(tmp_path, masks, "balanced", name="pair.h5", points=20, seed=1)  # the default strata
    groups = prediction[pair.y, pair.x].astype(int) * 4 + runner_up[pair.y, pair.x]
    assert selection.class_budgets(np.array([1800, 200]), 20, 0.5).tolist() == [15, 5]  # classes 0, 1
    counts = np.bincount(groups, minlength=5)[[2, 3, 4]].tolist()
    assert counts[2] == 5 and counts[:2] in ([12, 3], [13, 2])  # class 0's 15 split 12.35 : 2.65
    np.testing.assert_array_equal(pair.predicted, prediction[pair.y, pair.x])
    assert len(set(pairs(pair))) == 20

    # one runner-up per class: the pairs are the classes, and the budgets are class strata's
    plain = write_masks(tmp_path / "plain.h5", [_image(40, 50, prediction=prediction)])
    _, by_pair = select(tmp_path, plain, "balanced", name="a.h5", points=20, seed=1)
    _, by_class = select(tmp_path, plain, "balanced", name="b.h5", points=20, seed=1, strata="class")
    assert np.bincount(by_pair.predicted).tolist() == np.bincount(by_class.predicted).tolist() == [15, 5]


def test_class_pairs_keep_the_class_budgets_at_small_budgets(tmp_path):
    """A class split over many runner-up classes gets its class budget, not a point per group: at
    4 points, the large class 0 (four runner-ups) and the small class 1 keep --strata class's 3 and 1."""
    prediction = np.zeros((40, 40), np.uint8)
    prediction[:, 36:] = 1  # 160 pixels of class 1, 1440 of class 0
    runner_up = np.full((40, 40), 0, np.uint8)
    for k, columns in enumerate((slice(0, 9), slice(9, 18), slice(18, 27), slice(27, 36))):
        runner_up[:, columns] = 2 + k  # class 0's pixels in four runner-up groups of 360
    masks = write_masks(tmp_path / "m.h5", [_image(40, 40, prediction=prediction, runner_up=runner_up)])
    _, by_pair = select(tmp_path, masks, "balanced", name="pair.h5", points=4, seed=2)
    _, by_class = select(tmp_path, masks, "balanced", name="class.h5", points=4, seed=2, strata="class")
    assert np.bincount(prediction[by_pair.y, by_pair.x], minlength=2).tolist() == [3, 1]
    assert np.bincount(prediction[by_class.y, by_class.x], minlength=2).tolist() == [3, 1]
    # one budget over all five (class, runner-up) groups would have left class 1 without a point
    assert selection.class_budgets(np.array([360, 360, 360, 360, 160]), 4, 0.5).tolist() == [1, 1, 1, 1, 0]
    groups = runner_up[by_pair.y, by_pair.x][prediction[by_pair.y, by_pair.x] == 0]
    assert len(set(groups.tolist())) == 3  # class 0's three points in three of its four groups


def test_class_pairs_need_a_stored_runner_up(tmp_path):
    masks = write_masks(tmp_path / "m.h5", [_image(10, 10)])
    with h5py.File(masks, "a") as f:
        del f["runner_up"]
        f["runner_up"] = np.zeros(99, np.uint8)  # one byte short of the 10x10 image
    with pytest.raises(LaborError, match=r"m\.h5: damaged masks artifact: 'runner_up' does not hold the 100 bytes"):
        select(tmp_path, masks, "balanced", points=5)
    with h5py.File(masks, "a") as f:
        del f["runner_up"]  # as an older labor extract wrote it
    with pytest.raises(
        LaborError,
        match=r"m\.h5: --mode balanced --strata class-pair \(the default\) needs A's runner-up class.*"
        r"re-run `labor extract`, or select with --strata class",
    ):
        select(tmp_path, masks, "balanced", name="pair.h5", points=5)
    assert not (tmp_path / "pair.h5").exists()
    # class strata and the other modes do not read it
    for mode, extra in (("balanced", {"strata": "class"}), ("random", {}), ("spl", {})):
        _, chosen = select(
            tmp_path, masks, mode, name=f"{mode}.h5", **({"points": 5} if mode != "spl" else {}), **extra
        )
        assert len(chosen.y) == (5 if mode != "spl" else 0)


def test_balanced_at_a_ratio_and_power_one_spreads_like_area(tmp_path):
    prediction = np.zeros((50, 50), np.uint8)
    prediction[:, 40:] = 3  # a fifth of the image
    masks = write_masks(tmp_path / "m.h5", [_image(50, 50, prediction=prediction)])
    _, chosen = select(tmp_path, masks, "balanced", ratio=0.1, balance_power=1.0)
    assert np.bincount(prediction[chosen.y, chosen.x], minlength=4).tolist() == [200, 0, 0, 50]
    with pytest.raises(LaborUsageError, match="--balance-power"):
        select(tmp_path, masks, "balanced", name="bad.h5", points=5, balance_power=-1.0)
