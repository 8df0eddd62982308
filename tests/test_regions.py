"""The regions a person answers for an SPL selection (labor_cli/regions.py), on hand-drawn masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from labor_cli.artifacts import PixelSet
from labor_cli.regions import CONNECTED, Grouping, connected_regions, count_regions, group_regions


def drawn(picture: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A mask drawn as text: '.' unselected, a digit: a selected pixel and A's class there.
    Returns y, x, classes (in a shuffled order: the row order must not matter) and the width."""
    rows = picture.strip().split()
    y, x, classes = [], [], []
    for row, line in enumerate(rows):
        for column, char in enumerate(line):
            if char != ".":
                y.append(row), x.append(column), classes.append(int(char))
    order = np.random.default_rng(len(y)).permutation(len(y))
    return np.array(y)[order], np.array(x)[order], np.array(classes)[order], len(rows[0])


def as_picture(y, x, region, width, height) -> str:
    """Each pixel's region as a letter (a, b, ...; '-' dropped), for readable comparisons."""
    canvas = [["."] * width for _ in range(height)]
    for row, column, r in zip(y, x, region):
        canvas[row][column] = "-" if r < 0 else "abcdefghijklmnopqrstuvwxyz"[r]
    return "\n".join("".join(line) for line in canvas)


def regions_of(picture: str, grouping: Grouping):
    y, x, classes, width = drawn(picture)
    found = group_regions(y, x, classes, width, grouping)
    return as_picture(y, x, found.region, width, int(y.max()) + 1), found


def test_connected_regions_numbered_in_raster_order():
    y, x, _, width = drawn(
        """
        ......
        .11.1.
        .11..1
        ......
        1.....
        """
    )
    assert as_picture(y, x, connected_regions(y, x, width), width, 5) == "\n".join(
        ["......", ".aa.b.", ".aa..b", "......", "c....."]
    )  # the diagonal line is one region (8-connected)
    assert connected_regions(np.zeros(0), np.zeros(0), 6).tolist() == []


def test_regions_split_where_a_predicted_class_changes():
    # A band along a boundary: A predicts car (3) on its left part, road (0) on its right part.
    picture, found = regions_of(
        """
        333000
        333000
        """,
        Grouping(min_region=1),
    )
    assert picture == "aaabbb\naaabbb"
    assert (found.count, found.merged_pixels, found.dropped_pixels) == (2, 0, 0)
    # The same pixels with A's classes ignored: one region (what labor annotate asked before grouping).
    picture, found = regions_of("333000\n333000", CONNECTED)
    assert picture == "aaaaaa\naaaaaa" and found.count == 1


def test_a_fragment_joins_the_nearest_region_of_its_class_within_reach():
    # A: 8 pixels of class 1; B: 8 pixels of class 1 further right; f: a 1-pixel fragment of class 1,
    # 2 pixels from A and 4 from B; g: a fragment of class 2 touching A (another class: not merged).
    picture, found = regions_of(
        """
        1111..1....1111
        1111.2.....1111
        """,
        Grouping(min_region=4, reach=3),
    )
    assert picture == "aaaa..a....bbbb\naaaa.-.....bbbb"
    assert (found.count, found.merged_pixels, found.dropped_pixels) == (2, 1, 1)
    # Out of reach: dropped.
    picture, found = regions_of("1111..1....1111\n1111.2.....1111", Grouping(min_region=4, reach=1))
    assert picture == "aaaa..-....bbbb\naaaa.-.....bbbb"
    assert (found.merged_pixels, found.dropped_pixels) == (0, 2)


def test_equally_near_neighbours_the_first_in_raster_order_wins():
    picture, _ = regions_of(
        """
        11.1.11
        11...11
        """,
        Grouping(min_region=3, reach=2),
    )
    assert picture == "aa.a.bb\naa...bb"


def test_fragments_near_each_other_form_a_region_when_together_large_enough():
    # Three 2-pixel fragments of class 5, one pixel apart, far from anything else: 6 pixels together.
    picture, found = regions_of(
        """
        55.55.55.........9
        """,
        Grouping(min_region=5, reach=2),
    )
    assert picture == "aa.aa.aa.........-"
    assert (found.count, found.merged_pixels, found.dropped_pixels) == (1, 6, 1)
    # Too few together: all dropped, no region left.
    picture, found = regions_of("55.55.55.........9", Grouping(min_region=7, reach=2))
    assert picture == "--.--.--.........-" and found.count == 0 and found.dropped_pixels == 7


def test_a_cluster_of_fragments_joins_a_large_neighbour_whole():
    # Two 1-pixel fragments chained at distance 2 from each other; only the first is within reach of
    # the large region: both join it (the cluster moves together).
    picture, found = regions_of(
        """
        7777.7.7
        7777....
        """,
        Grouping(min_region=4, reach=2),
    )
    assert picture == "aaaa.a.a\naaaa...."
    assert found.merged_pixels == 2


def test_min_region_one_is_the_faithful_spl_every_pixel_asked():
    y, x, classes, width = drawn(
        """
        1.2.3
        .1.2.
        3...1
        """
    )
    found = group_regions(y, x, classes, width, Grouping(min_region=1))
    assert (found.region >= 0).all() and found.merged_pixels == found.dropped_pixels == 0
    # Without A's classes the grouping cannot split by class: plain connected regions.
    unknown = group_regions(y, x, None, width, Grouping(min_region=1))
    np.testing.assert_array_equal(unknown.region, connected_regions(y, x, width))


def test_regions_are_whole_image_vectorised_and_deterministic():
    """A large random mask: every pixel is in a region or dropped, regions hold one class and at least
    min_region pixels, and the counts add up; the same input gives the same regions."""
    rng = np.random.default_rng(0)
    height, width = 120, 200
    mask = rng.random((height, width)) < 0.08
    classes_map = (np.arange(width)[None, :] // 50 + np.arange(height)[:, None] // 60).astype(np.int64)
    y, x = np.nonzero(mask)
    classes = classes_map[y, x]
    grouping = Grouping(min_region=6, reach=2)
    found = group_regions(y, x, classes, width, grouping)
    kept = found.region >= 0
    sizes = np.bincount(found.region[kept], minlength=found.count)
    assert (sizes >= grouping.min_region).all() and len(sizes) == found.count
    for r in range(found.count):
        assert len(set(classes[found.region == r].tolist())) == 1
    assert (~kept).sum() == found.dropped_pixels
    faithful = group_regions(y, x, classes, width, Grouping(min_region=1))
    small = np.bincount(faithful.region)[faithful.region] < grouping.min_region
    assert small.sum() == found.merged_pixels + found.dropped_pixels
    again = group_regions(y[::-1], x[::-1], classes[::-1], width, grouping)
    np.testing.assert_array_equal(again.region[::-1], found.region)


def test_count_regions_over_a_selection():
    y, x, classes, width = drawn("1111..1....2\n1111........")
    pixels = PixelSet(
        image_ids=["a", "b"],
        sizes=np.array([[2, width], [2, width]], np.int32),
        offsets=np.array([0, len(y), 2 * len(y)]),
        y=np.concatenate([y, y]).astype(np.int32),
        x=np.concatenate([x, x]).astype(np.int32),
        label=None,
        class_set="cityscapes19",
        class_names=[str(k) for k in range(19)],
        predicted=np.concatenate([classes, classes]).astype(np.uint8),
    )
    counts = count_regions(pixels, Grouping(min_region=4, reach=3))
    assert counts.summary() == {
        "grouping": {"split_by_class": True, "min_region": 4, "reach": 3},
        "images": 2,
        "pixels": 20,
        "regions": 2,
        "regions_per_image": 1.0,
        "single_pixel_regions": 0,
        "merged_pixels": 2,
        "dropped_pixels": 2,
    }
    faithful = count_regions(pixels, Grouping(min_region=1))
    assert (faithful.regions, faithful.single_pixel) == (6, 4)


@pytest.mark.parametrize("record", [CONNECTED.record(), Grouping().record(), Grouping(True, 1, 0).record()])
def test_grouping_records_round_trip(record):
    assert Grouping.from_record(record).record() == record


def test_count_regions_with_the_ground_truth_says_how_mixed_the_regions_are():
    # One image: region a = 4 road pixels whose truth is road, road, car, 255 (ignored);
    # region b = 4 pixels, all truth sky. Region a spans two true classes; 1 pixel is off its commonest.
    y, x, classes, width = drawn("00..55\n00..55")
    pixels = PixelSet(
        image_ids=["a"],
        sizes=np.array([[2, width]], np.int32),
        offsets=np.array([0, len(y)]),
        y=y.astype(np.int32),
        x=x.astype(np.int32),
        label=None,
        class_set="cityscapes19",
        class_names=[str(k) for k in range(19)],
        predicted=classes.astype(np.uint8),
    )
    truth_map = np.array([[0, 0, 9, 9, 10, 10], [13, 255, 9, 9, 10, 10]])
    counts = count_regions(pixels, Grouping(min_region=4), truth_map[y, x])
    summary = counts.summary()
    assert (summary["regions"], summary["regions_spanning_classes"], summary["pixels_in_such_regions"]) == (2, 1, 4)
    assert summary["pixels_off_the_commonest_class"] == 1
    assert "1 region (50.0%) spans more than one true class, 12.5% of the asked pixels" in counts.describe()
