import numpy as np
import pytest
import torch
from helpers import run_executable

from labor_cli import artifacts
from labor_cli.artifacts import unpack_mask
from labor_cli.errors import LaborError
from labor_cli.extraction.scores import extract_image, most_uncertain, pack_bits, prototype_candidates
from labor_cli.options import EvaluateOptions, ExtractOptions
from labor_cli.stages.extract import run_extract


def _heads_disagreeing_on(region, shape=(3, 12, 16)):
    head1 = torch.zeros(shape)
    head2 = torch.zeros(shape)
    head1[0] = 5.0  # head 1 says class 0 everywhere
    head2[0] = 5.0
    head2[2][region] = 10.0  # head 2 says class 2 inside the region
    return head1, head2


def test_two_heads_that_disagree_exactly_on_a_drawn_region_give_exactly_that_mask():
    region = (slice(3, 7), slice(5, 12))
    head1, head2 = _heads_disagreeing_on(region)
    logits = torch.randn(3, 12, 16)
    rows = extract_image(logits, head1, head2, (12, 16), None, per_class=100, uncertain=10)
    expected = np.zeros((12, 16), dtype=bool)
    expected[region] = True
    np.testing.assert_array_equal(unpack_mask(rows.mask_packed, (12, 16)), expected)
    assert rows.prediction.dtype == np.uint8
    np.testing.assert_array_equal(rows.prediction, logits.argmax(0).numpy())
    # the runner-up: the second of A's classes by logit, never the prediction itself
    np.testing.assert_array_equal(rows.runner_up, logits.argsort(0, descending=True)[1].numpy())
    assert rows.runner_up.dtype == np.uint8
    # the mask's pixels counted by A's class
    np.testing.assert_array_equal(rows.mask_by_class, np.bincount(logits.argmax(0).numpy()[expected], minlength=3))


def test_excluded_pixels_leave_the_mask_and_the_uncertain_list():
    region = (slice(0, 4), slice(0, 4))
    head1, head2 = _heads_disagreeing_on(region)
    excluded = np.array([[0, 0], [1, 2], [3, 3]])
    rows = extract_image(torch.randn(3, 12, 16), head1, head2, (12, 16), excluded, per_class=100, uncertain=12 * 16)
    mask = unpack_mask(rows.mask_packed, (12, 16))
    assert mask.sum() == rows.mask_by_class.sum() == 16 - 3
    assert not mask[0, 0] and not mask[1, 2]
    uncertain = set(zip(rows.groups["uncertain"]["y"].tolist(), rows.groups["uncertain"]["x"].tolist()))
    assert len(uncertain) == 12 * 16 - 3 and (0, 0) not in uncertain
    candidates = set(zip(rows.groups["candidates"]["y"].tolist(), rows.groups["candidates"]["x"].tolist()))
    assert candidates.isdisjoint({(0, 0), (1, 2), (3, 3)})


def test_prototype_picks_the_pixel_closest_to_the_class_mean():
    # 1 x 4 image, all in the mask, all predicted class 0; probability vectors over 2 classes:
    probabilities = torch.tensor([[[0.9, 0.6, 0.8, 0.7]], [[0.1, 0.4, 0.2, 0.3]]])
    prediction = torch.zeros(1, 4, dtype=torch.long)
    mask = torch.ones(1, 4, dtype=torch.bool)
    rows = prototype_candidates(probabilities, prediction, mask, per_class=4)
    # mean = (0.75, 0.25), at 18.43 degrees; the pixels lie at 6.34 (x=0), 33.69 (x=1), 14.04 (x=2)
    # and 23.20 degrees (x=3): by angle to the mean, x=2 (4.39), x=3 (4.77), x=0 (12.09), x=1 (15.26)
    assert rows["x"].tolist() == [2, 3, 0, 1]
    assert rows["class"].tolist() == [0, 0, 0, 0]
    assert rows["similarity"][0] > rows["similarity"][-1]
    assert prototype_candidates(probabilities, prediction, mask, per_class=2)["x"].tolist() == [2, 3]


def test_prototypes_are_per_class_and_only_over_the_mask():
    probabilities = torch.tensor([[[0.9, 0.8, 0.2, 0.3, 0.99]], [[0.1, 0.2, 0.8, 0.7, 0.01]]])
    prediction = probabilities.argmax(0)
    mask = torch.tensor([[True, True, True, True, False]])
    rows = prototype_candidates(probabilities, prediction, mask, per_class=10)
    assert sorted(zip(rows["class"].tolist(), rows["x"].tolist())) == [(0, 0), (0, 1), (1, 2), (1, 3)]
    assert 4 not in rows["x"].tolist()


@pytest.mark.parametrize("size", [(1, 8), (3, 5), (7, 9), (1, 1)])
def test_pack_bits_equals_numpy_packbits(size):
    mask = torch.rand(size, generator=torch.Generator().manual_seed(sum(size))) < 0.4
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8
    np.testing.assert_array_equal(packed.numpy(), np.packbits(mask.numpy().reshape(-1)))
    np.testing.assert_array_equal(unpack_mask(packed.numpy(), size), mask.numpy())


def test_most_uncertain_never_returns_excluded_pixels_even_when_asked_for_more():
    probabilities = torch.tensor([[[0.5, 0.9, 0.6, 0.99]], [[0.5, 0.1, 0.4, 0.01]]])
    excluded = torch.tensor([[True, False, True, True]])
    rows = most_uncertain(probabilities, excluded, 3)
    assert rows["x"].tolist() == [1] and len(rows["entropy"]) == 1


def test_most_uncertain_orders_by_entropy():
    probabilities = torch.tensor([[[0.5, 0.9, 0.6, 0.99]], [[0.5, 0.1, 0.4, 0.01]]])
    rows = most_uncertain(probabilities, torch.zeros(1, 4, dtype=torch.bool), 3)
    assert rows["x"].tolist() == [0, 2, 1]


def test_extract_on_the_toy_pair_writes_a_masks_artifact(tmp_path, warm_checkpoint, toy_target):
    output = tmp_path / "masks.h5"
    result = run_extract(
        ExtractOptions(model=warm_checkpoint, target=toy_target, output=output, device="cpu", workers=0, quiet=True)
    )
    with artifacts.Masks(output) as masks:
        assert len(masks) == result.images > 0
        shares = [masks.mask(i).mean() for i in range(len(masks))]
        assert result.mask_share == pytest.approx(100 * np.mean(shares), rel=1e-6)
        height, width = masks.sizes[0]
        assert masks.prediction(0).shape == (height, width)
        rows = masks.rows("candidates", 0)
        mask = masks.mask(0)
        assert mask[rows["y"], rows["x"]].all()  # candidates lie in the mask
        assert (masks.prediction(0)[rows["y"], rows["x"]] == rows["class"]).all()
        assert masks.artifact.file.attrs["lineage"].count(str(warm_checkpoint)) == 1
    with pytest.raises(LaborError, match="already exists"):
        run_extract(
            ExtractOptions(model=warm_checkpoint, target=toy_target, output=output, device="cpu", workers=0, quiet=True)
        )


def test_in_order_thread_runs_calls_in_order_and_raises_the_first_error():
    import threading
    import time

    from labor_cli.extraction.writer import InOrderThread

    seen, threads = [], set()

    def record(i):
        time.sleep(0.001 * (i % 3))  # uneven durations: the order must not depend on them
        threads.add(threading.current_thread().name)
        seen.append(i)

    with InOrderThread(limit=2) as background:
        for i in range(20):
            background.submit(record, i)
        background.wait()
        assert seen == list(range(20)) and threads == {next(iter(threads))} != {threading.current_thread().name}

    release = threading.Event()

    def fail(i):
        release.wait(5)
        raise OSError(f"disk full at {i}")

    with pytest.raises(OSError, match="disk full at 0"):
        with InOrderThread() as background:
            background.submit(fail, 0)
            background.submit(record, 99)
            release.set()
    assert seen[-1] == 99  # what was submitted has run by the time the block is left


def test_a_resnet_checkpoint_is_extracted_and_evaluated_with_folded_batchnorm(tmp_path, toy_target):
    """extract and evaluate fold A's and B's FrozenBNs into their convolutions: the predictions
    must be those of the unfolded networks (up to float rounding at near-ties)."""
    import torch.nn.functional as F
    from helpers import image_to_tensor

    from labor_cli.artifacts import TrainingState
    from labor_cli.data.datasets import open_dataset
    from labor_cli.data.labels import class_names
    from labor_cli.data.transforms import resize_image
    from labor_cli.models import FrozenBN, build_networks
    from labor_cli.stages.evaluate import run_evaluate

    torch.manual_seed(0)
    networks = build_networks("deeplabv2-r50", 19)
    for module in networks.modules():
        if isinstance(module, FrozenBN):
            module.running_var.uniform_(0.5, 2.0)
            module.running_mean.normal_(0, 0.1)
    checkpoint = tmp_path / "r50.h5"
    with artifacts.create_artifact(checkpoint, "checkpoint", {"test": True}) as f:
        artifacts.write_checkpoint(
            f, networks, "cityscapes19", list(class_names("cityscapes19")), TrainingState("warmup", 0, 1, {}, {})
        )
    run_extract(
        ExtractOptions(
            model=checkpoint, target=toy_target, output=tmp_path / "masks.h5", device="cpu", quiet=True, workers=0
        )
    )
    dataset = open_dataset(toy_target, "train", require_labels=False)
    segmenter = networks.segmenter.eval()
    with artifacts.Masks(tmp_path / "masks.h5") as masks, torch.no_grad():
        for i in range(len(dataset)):
            image = dataset.read_image(i)
            logits = segmenter(image_to_tensor(resize_image(image, dataset.train_size))[None])
            expected = (
                F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)[0].argmax(0).numpy()
            )
            assert (masks.prediction(i) == expected).mean() > 0.999
    result = run_evaluate(
        EvaluateOptions(
            model=checkpoint,
            target=toy_target,
            split="val",
            output=tmp_path / "eval.h5",
            device="cpu",
            quiet=True,
            workers=0,
        )
    )
    assert result.confusion.sum() > 0


def test_the_executable_extracts_the_runner_up_and_balanced_selects_over_class_pairs(
    tmp_path, warm_checkpoint, toy_target
):
    """Through `labor` with default loader workers: extract stores a runner-up map that is never
    the prediction, and the default balanced selection gives every class of an image the budget
    class_budgets computes from the classes' areas, and each of its runner-up classes its share of
    it, rounded down or up."""
    from labor_cli import selection

    masks_path, selection_path = tmp_path / "masks.h5", tmp_path / "sel.h5"
    run_executable("extract", "-m", warm_checkpoint, "--target", toy_target, "-o", masks_path, "--device", "cpu", "-q")
    run_executable(
        "select", "--masks", masks_path, "--mode", "balanced", "--points", "9", "--seed", "3", "-o", selection_path
    )
    chosen = artifacts.read_pixel_set(selection_path, "selection")
    with artifacts.Masks(masks_path) as masks:
        assert masks.has_runner_up and len(masks) > 1
        for i in range(len(masks)):
            prediction, runner_up = masks.prediction(i), masks.runner_up(i)
            assert not (prediction == runner_up).any()
            s = chosen.pixels_of(i)
            classes, class_areas = np.unique(prediction, return_counts=True)
            for c, budget in zip(classes, selection.class_budgets(class_areas, 9, 0.5)):
                seconds, areas = np.unique(runner_up[prediction == c], return_counts=True)
                got = runner_up[chosen.y[s], chosen.x[s]][prediction[chosen.y[s], chosen.x[s]] == c]
                shares = selection.group_shares(areas, int(budget), 0.5)
                counts = np.array([int((got == k).sum()) for k in seconds])
                assert counts.sum() == budget and ((counts == np.floor(shares)) | (counts == np.ceil(shares))).all()
            np.testing.assert_array_equal(chosen.predicted[s], prediction[chosen.y[s], chosen.x[s]])
