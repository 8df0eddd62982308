import torch
import torch.nn.functional as F

from labor_cli import losses


def test_sample_at_points_equals_upsampling_then_reading_the_pixel():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, 7)  # C, h, w at stride 8 of a 29x53 image (odd sizes on purpose)
    height, width = 29, 53
    full = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    yx = torch.tensor([[0, 0], [28, 52], [13, 17], [5, 40], [28, 0]])
    sampled = losses.sample_at_points(logits, yx, (height, width))
    expected = full[:, yx[:, 0], yx[:, 1]].t()
    torch.testing.assert_close(sampled, expected, atol=1e-5, rtol=1e-5)


def test_sparse_target_loss_is_cross_entropy_at_the_labeled_pixels_only():
    logits = torch.zeros(2, 3, 2, 2)
    logits[0, 1] = 10.0  # image 0 predicts class 1 everywhere
    points = [
        {"yx": torch.tensor([[0, 0], [15, 15]]), "label": torch.tensor([1, 1]), "size": (16, 16)},
        {"yx": torch.zeros(0, 2, dtype=torch.long), "label": torch.zeros(0, dtype=torch.long), "size": (16, 16)},
    ]
    assert losses.sparse_target_loss(logits, points).item() < 1e-3
    points[0]["label"] = torch.tensor([0, 0])
    assert losses.sparse_target_loss(logits, points).item() > 9.0


def test_segmentation_loss_ignores_255_and_is_zero_when_all_ignored():
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.full((1, 4, 4), 255)
    assert losses.segmentation_loss(logits, labels).item() == 0.0
    labels[0, 0, 0] = 2
    expected = F.cross_entropy(logits[:, :, 0, 0], torch.tensor([2]))
    torch.testing.assert_close(losses.segmentation_loss(logits, labels), expected)


def test_discrepancy_is_mean_absolute_softmax_difference():
    a = torch.tensor([[[[10.0]], [[-10.0]]]])  # softmax ~ (1, 0)
    b = torch.tensor([[[[-10.0]], [[10.0]]]])  # softmax ~ (0, 1)
    assert abs(losses.discrepancy(a, b).item() - 1.0) < 1e-6
    assert losses.discrepancy(a, a).item() == 0.0


def test_class_balanced_pseudo_labels_keep_the_top_fraction_of_each_class():
    # 10 pixels predicted class 0 with confidences 0.50..0.59, 4 pixels class 1 with 0.90..0.93
    probabilities = torch.zeros(1, 2, 1, 14)
    conf0 = torch.linspace(0.50, 0.59, 10)
    conf1 = torch.tensor([0.93, 0.90, 0.92, 0.91])
    probabilities[0, 0, 0, :10], probabilities[0, 1, 0, :10] = conf0, 1 - conf0
    probabilities[0, 1, 0, 10:], probabilities[0, 0, 0, 10:] = conf1, 1 - conf1
    labels = losses.class_balanced_pseudo_labels(probabilities, alpha=0.5)[0, 0]
    # class 0: the 5 most confident of 10 (the last five); class 1: 2 of 4 (0.93 and 0.92)
    assert labels[:10].tolist() == [255] * 5 + [0] * 5
    assert labels[10:].tolist() == [1, 255, 1, 255]


def test_upsample_equals_bilinear_interpolation_and_its_gradient():
    torch.manual_seed(0)
    for size_in, size_out in (((5, 7), (29, 53)), ((18, 32), (144, 256)), ((8, 8), (8, 8)), ((6, 9), (3, 4))):
        logits = torch.randn(2, 3, *size_in, requires_grad=True)
        ours = losses.upsample(logits, size_out)
        reference = F.interpolate(logits, size=size_out, mode="bilinear", align_corners=False)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
        weights = torch.randn_like(reference)
        (grad_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
        (grad_reference,) = torch.autograd.grad((reference * weights).sum(), logits)
        torch.testing.assert_close(grad_ours, grad_reference, atol=1e-4, rtol=1e-4)
