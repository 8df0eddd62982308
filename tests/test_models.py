"""Tests of labor_cli.models: A (DeepLab-v2), B (two-head selector), D (discriminator)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.models import (
    ARCHS,
    ASPPv2,
    Discriminator,
    FrozenBN,
    Networks,
    PixelSelector,
    SegmentationModel,
    build_backbone,
    build_networks,
    deeplab,
    default_dilations,
    output_stride,
)

RESNETS = ("deeplabv2-r101", "deeplabv2-r50")
X_SHAPE = (2, 3, 65, 97)  # odd sizes: checks the ceil(H/8) rounding


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    """No test may reach the network: any attempt to fetch ImageNet weights fails loudly."""

    def refuse(weights):
        raise AssertionError(f"a test tried to download {weights.url}")

    monkeypatch.setattr(deeplab, "_fetch_imagenet", refuse)


_CACHE: dict[str, SegmentationModel] = {}


def model_a(arch: str) -> SegmentationModel:
    """One model A per arch for the whole file (building a ResNet-101 takes seconds). Tests
    that use it must not change its weights."""
    if arch not in _CACHE:
        torch.manual_seed(0)
        _CACHE[arch] = SegmentationModel(arch, 19)
    return _CACHE[arch]


def x_input(shape=X_SHAPE, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


# ------------------------------------------------------------------------------------------
# model A: shapes, output stride, backbone structure
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_output_stride(arch):
    model = model_a(arch).eval()
    x = x_input()
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    stride = output_stride(arch)
    assert stride == (2 if arch == "small" else 8)
    h, w = math.ceil(65 / stride), math.ceil(97 / stride)
    assert feats.shape == (2, model.backbone.out_channels, h, w)
    assert logits.shape == (2, 19, h, w)
    assert torch.isfinite(logits).all()
    assert torch.equal(model.classify(feats), logits)
    assert model.arch == arch and model.num_classes == 19


def test_small_other_sizes_and_channels():
    model = model_a("small").eval()
    assert model.backbone.out_channels == 32
    for hw in [(128, 256), (64, 64), (17, 31)]:
        with torch.no_grad():
            out = model(x_input((1, 3, *hw)))
        assert out.shape == (1, 19, math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))


def test_small_size_and_norms():
    backbone = model_a("small").backbone
    n = sum(p.numel() for p in backbone.parameters())
    assert 300_000 <= n <= 1_000_000
    kinds = {type(m) for m in backbone.modules()}
    assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds
    # dilations 2 and 4 in the last two stages, like the dilated ResNets
    assert backbone.layer3.conv2.dilation == (2, 2) and backbone.layer4.conv2.dilation == (4, 4)
    assert backbone.layer2.conv1.stride == (2, 2)
    # the decoder reads the deep path and both shallow levels: zeroing the stem's stride-2
    # output's path changes the result, and so does zeroing the deep path
    x = x_input((1, 3, 32, 48))
    with torch.no_grad():
        reference = backbone(x)
        for part in (backbone.layer4.conv2, backbone.skip4[0]):
            saved = part.weight.clone()
            part.weight.zero_()
            assert not torch.allclose(backbone(x), reference)
            part.weight.copy_(saved)


@pytest.mark.parametrize("arch", RESNETS)
def test_resnet_dilations(arch):
    backbone = model_a(arch).backbone
    assert backbone.out_channels == 2048
    assert not hasattr(backbone, "fc") and not hasattr(backbone, "avgpool")
    assert backbone.layer3[-1].conv2.dilation == (2, 2)
    assert backbone.layer4[-1].conv2.dilation == (4, 4)
    for layer in (backbone.layer3, backbone.layer4):
        assert all(m.stride == (1, 1) for m in layer.modules() if isinstance(m, nn.Conv2d))
    # layer3's first block keeps dilation 1 (torchvision), all later blocks are dilated
    assert all(b.conv2.dilation == (2, 2) for b in list(backbone.layer3)[1:])


@pytest.mark.parametrize("arch", RESNETS)
def test_resnet_batchnorm_frozen_everywhere(arch):
    backbone = model_a(arch).backbone
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    frozen = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    blocks = {"deeplabv2-r101": 33, "deeplabv2-r50": 16}[arch]
    assert len(frozen) == 1 + 3 * blocks + 4  # stem + 3 per bottleneck + 4 downsamples
    # no trainable BN params: every parameter is a conv weight
    params = dict(backbone.named_parameters())
    convs = {n + ".weight" for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d)}
    assert set(params) == convs
    # give the statistics non-trivial values, then a train-mode forward + backward must not
    # change any of them (the shared model is restored afterwards)
    saved = {k: v.clone() for k, v in backbone.state_dict().items()}
    try:
        with torch.no_grad():
            for m in frozen:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        before = {k: v.clone() for k, v in backbone.state_dict().items() if "conv" not in k}
        backbone.train()
        backbone(x_input((1, 3, 33, 41))).float().mean().backward()
        after = backbone.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
    finally:
        backbone.load_state_dict(saved)
        backbone.zero_grad(set_to_none=True)


def test_frozen_bn_matches_torchvision_in_fp32_and_keeps_bf16():
    ref = FrozenBatchNorm2d(8)
    ours = FrozenBN(8)
    with torch.no_grad():
        for b in ("weight", "bias", "running_mean", "running_var"):
            v = torch.rand(8) + 0.5
            getattr(ref, b).copy_(v)
            getattr(ours, b).copy_(v)
    x = x_input((2, 8, 5, 7))
    assert torch.equal(ours(x), ref(x))
    assert ours(x.bfloat16()).dtype == torch.bfloat16
    xc = x.to(memory_format=torch.channels_last)
    assert ours(xc).is_contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------
# ASPP
# ------------------------------------------------------------------------------------------


def test_default_dilations_table():
    assert default_dilations("deeplabv2-r101") == (6, 12, 18, 24)
    assert default_dilations("deeplabv2-r50") == (6, 12, 18, 24)
    small = default_dilations("small")
    assert small == (1, 3)
    assert model_a("small").classifier.dilations == small
    assert model_a("deeplabv2-r101").classifier.dilations == (6, 12, 18, 24)


def test_aspp_is_the_sum_of_all_four_branches():
    torch.manual_seed(0)
    head = ASPPv2(16, 5, (6, 12, 18, 24))
    assert len(head.conv2d_list) == 4
    for conv, d in zip(head.conv2d_list, (6, 12, 18, 24)):
        assert conv.kernel_size == (3, 3) and conv.dilation == (d, d) and conv.padding == (d, d)
        assert conv.bias is not None
    x = x_input((2, 16, 20, 30))
    expected = sum(F.conv2d(x, c.weight, c.bias, padding=c.dilation, dilation=c.dilation) for c in head.conv2d_list)
    out = head(x)
    assert out.shape == (2, 5, 20, 30)
    torch.testing.assert_close(out, expected)
    for i in range(4):  # zeroing any one branch changes the output
        zeroed = ASPPv2(16, 5, (6, 12, 18, 24))
        zeroed.load_state_dict(head.state_dict())
        with torch.no_grad():
            zeroed.conv2d_list[i].weight.zero_()
            zeroed.conv2d_list[i].bias.zero_()
        assert (zeroed(x) - out).abs().max() > 1e-3


def test_aspp_weight_init():
    torch.manual_seed(0)
    head = ASPPv2(2048, 19)
    for conv in head.conv2d_list:
        assert abs(conv.weight.std().item() - 0.01) < 0.001
        assert abs(conv.weight.mean().item()) < 0.001


# ------------------------------------------------------------------------------------------
# param groups
# ------------------------------------------------------------------------------------------


def _check_groups(module: nn.Module, groups, lr):
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter appears twice"
    assert set(ids) == {id(p) for p in module.parameters() if p.requires_grad}
    assert groups[-1]["lr"] == pytest.approx(10 * lr)
    torch.optim.SGD(groups, lr=lr, momentum=0.9)  # an optimizer accepts them


@pytest.mark.parametrize("arch", ["small", "deeplabv2-r50"])
def test_param_groups_segmenter(arch):
    model = model_a(arch)
    groups = model.param_groups(2.5e-4)
    assert [g["lr"] for g in groups] == [pytest.approx(2.5e-4), pytest.approx(2.5e-3)]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.classifier.parameters()}
    _check_groups(model, groups, 2.5e-4)


def test_param_groups_selector_and_heads():
    torch.manual_seed(0)
    sep = PixelSelector("small", 7)
    groups = sep.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(1e-2)]
    _check_groups(sep, groups, 1e-3)
    heads = {id(p) for p in sep.heads_parameters()}
    assert heads == {id(p) for m in (sep.head1, sep.head2) for p in m.parameters()}
    assert not heads & {id(p) for p in sep.backbone.parameters()}

    shared = PixelSelector("small", 7, shared=True)
    groups = shared.param_groups(1e-3)
    assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(1e-2)
    _check_groups(shared, groups, 1e-3)


# ------------------------------------------------------------------------------------------
# pixel selector B
# ------------------------------------------------------------------------------------------


def test_selector_separate_and_shared():
    torch.manual_seed(0)
    a = SegmentationModel("small", 7)
    sep = PixelSelector("small", 7)
    shared = PixelSelector("small", 7, shared=True)
    assert shared.backbone is None
    assert not any(n.startswith("backbone") for n, _ in shared.named_parameters())
    assert sum(p.numel() for p in shared.parameters()) == sum(p.numel() for p in sep.heads_parameters())
    x = x_input((2, 3, 64, 96))
    # separate: runs its own backbone on x; same as passing its own features
    l1, l2 = sep(x)
    assert l1.shape == l2.shape == (2, 7, 32, 48)  # output stride 2
    f1, f2 = sep(features=sep.backbone(x))
    assert torch.equal(l1, f1) and torch.equal(l2, f2)
    # shared: the heads act on A's features
    feats = a.features(x)
    s1, s2 = shared(features=feats)
    torch.testing.assert_close(s1, shared.head1(feats))
    torch.testing.assert_close(s2, shared.head2(feats))
    assert s1.shape == (2, 7, 32, 48)
    # gradients flow into A's backbone unless the caller detaches
    s1.sum().backward()
    assert a.backbone.layer4.conv2.weight.grad is not None
    with pytest.raises(ValueError):
        shared(x)
    with pytest.raises(ValueError):
        sep(x, features=feats)
    with pytest.raises(ValueError):
        sep()


@pytest.mark.parametrize("shared", [False, True])
def test_selector_heads_differ_at_init(shared):
    torch.manual_seed(0)
    sel = PixelSelector("small", 5, shared=shared)
    for c1, c2 in zip(sel.head1.conv2d_list, sel.head2.conv2d_list):
        assert not torch.equal(c1.weight, c2.weight)
    feats = x_input((1, 32, 8, 8))
    l1, l2 = sel(features=feats)
    assert not torch.allclose(l1, l2)


# ------------------------------------------------------------------------------------------
# discriminator D
# ------------------------------------------------------------------------------------------


def test_discriminator_structure_and_output():
    torch.manual_seed(0)
    d = Discriminator(19)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert convs[0].in_channels == 19
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    x = torch.softmax(x_input((2, 19, 64, 96)), dim=1)
    out = d(x)
    assert out.shape == (2, 1, 2, 3)
    # LeakyReLU(0.2) between the convs, nothing after the last
    h = x
    for c in convs[:-1]:
        h = F.leaky_relu(c(h), 0.2)
    torch.testing.assert_close(out, convs[-1](h))


# ------------------------------------------------------------------------------------------
# init: local state dict, errors, ImageNet (without the network)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def r50_state_file(tmp_path_factory):
    from torchvision.models import resnet50

    torch.manual_seed(3)
    sd = resnet50(weights=None).state_dict()  # includes fc.* and num_batches_tracked
    sd["layer4.2.conv3.weight"][0, 0, 0, 0] = 123.5
    sd["bn1.running_mean"][5] = 7.25
    sd["layer3.1.bn2.weight"][2] = -3.0
    path = tmp_path_factory.mktemp("weights") / "r50.pth"
    torch.save(sd, path)
    return path


def _check_loaded(backbone):
    assert backbone.layer4[2].conv3.weight[0, 0, 0, 0].item() == 123.5
    assert backbone.bn1.running_mean[5].item() == 7.25
    assert backbone.layer3[1].bn2.weight[2].item() == -3.0


def test_init_from_local_state_dict(r50_state_file):
    backbone = build_backbone("deeplabv2-r50", str(r50_state_file))
    _check_loaded(backbone)


def test_build_networks_loads_both_backbones(r50_state_file):
    nets = build_networks("deeplabv2-r50", 19, init=str(r50_state_file))
    _check_loaded(nets.segmenter.backbone)
    _check_loaded(nets.selector.backbone)
    assert nets.selector.backbone is not nets.segmenter.backbone


def _assert_error_names(exc_info, path):
    msg = str(exc_info.value)
    assert str(path) in msg and "\n" not in msg


def test_init_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(LaborError) as e:
        build_backbone("deeplabv2-r50", str(path))
    _assert_error_names(e, path)
    assert type(e.value) is LaborError


def test_init_garbage_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint\x00\x01\x02" * 10)
    with pytest.raises(LaborError) as e:
        build_backbone("deeplabv2-r50", str(path))
    _assert_error_names(e, path)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_init_refuses_pickled_objects(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Evil()}, path)
    with pytest.raises(LaborError) as e:
        build_backbone("small", str(path))
    _assert_error_names(e, path)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("content", [[1, 2, 3], {}, {"a": 1}, torch.zeros(3)])
def test_init_not_a_state_dict(tmp_path, content):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(LaborError) as e:
        build_backbone("small", str(path))
    _assert_error_names(e, path)


def test_init_mismatched_keys_and_shapes(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(LaborError) as e:
        build_backbone("deeplabv2-r50", str(path))
    _assert_error_names(e, path)
    assert "missing" in str(e.value)

    torch.manual_seed(0)
    sd = build_backbone("small").state_dict()
    sd["layer4.conv1.weight"] = torch.zeros(1, 2, 3, 3)
    path = tmp_path / "shape.pth"
    torch.save(sd, path)
    with pytest.raises(LaborError) as e:
        build_backbone("small", str(path))
    _assert_error_names(e, path)
    assert "layer4.conv1.weight" in str(e.value)


def test_init_small_from_its_own_state_dict(tmp_path):
    torch.manual_seed(0)
    src = build_backbone("small")
    path = tmp_path / "small.pth"
    torch.save(src.state_dict(), path)
    torch.manual_seed(1)
    loaded = build_backbone("small", str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_small_rejects_imagenet():
    with pytest.raises(LaborUsageError, match="no ImageNet weights for arch small"):
        build_backbone("small", "imagenet")
    with pytest.raises(LaborUsageError):
        build_networks("small", 19, init="imagenet")


def test_imagenet_failure_says_use_a_local_file(monkeypatch):
    def offline(weights):
        raise OSError("[Errno 101] Network is unreachable\nsecond line")

    monkeypatch.setattr(deeplab, "_fetch_imagenet", offline)
    with pytest.raises(LaborError) as e:
        build_backbone("deeplabv2-r50", "imagenet")
    msg = str(e.value)
    assert "--init PATH" in msg and "resnet50" in msg and "\n" not in msg
    assert type(e.value) is LaborError


def test_imagenet_uses_torchvision_weights(monkeypatch, r50_state_file):
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    asked = []

    def fake(weights):
        asked.append(weights)
        return torch.load(r50_state_file, weights_only=True)

    monkeypatch.setattr(deeplab, "_fetch_imagenet", fake)
    nets = build_networks("deeplabv2-r50", 19, init="imagenet")
    assert asked == [ResNet50_Weights.IMAGENET1K_V1]  # fetched once for both backbones
    _check_loaded(nets.segmenter.backbone)
    _check_loaded(nets.selector.backbone)
    assert deeplab._imagenet_weights("deeplabv2-r101") is ResNet101_Weights.IMAGENET1K_V1


def test_bad_options():
    with pytest.raises(LaborUsageError):
        build_networks("resnet9000", 19)
    with pytest.raises(LaborUsageError):
        build_networks("small", 19, selector_backbone="both")
    with pytest.raises(LaborUsageError):
        build_networks("small", 1)
    with pytest.raises(LaborUsageError):
        build_backbone("small", "")


# ------------------------------------------------------------------------------------------
# build_networks: config round trip, determinism
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["separate", "shared"])
def test_config_round_trip(mode):
    torch.manual_seed(0)
    nets = build_networks("small", 11, selector_backbone=mode)
    assert isinstance(nets, Networks)
    assert isinstance(nets.segmenter, SegmentationModel)
    assert isinstance(nets.selector, PixelSelector)
    assert isinstance(nets.discriminator, Discriminator)
    config = json.loads(json.dumps(nets.config()))
    assert config == {"arch": "small", "num_classes": 11, "init": "none", "selector_backbone": mode}
    again = build_networks(**config)
    assert again.config() == config
    sd = nets.state_dict()
    again.load_state_dict(sd, strict=True)
    for k, v in again.state_dict().items():
        assert torch.equal(v, sd[k])
    has_b_backbone = any(k.startswith("selector.backbone.") for k in sd)
    assert has_b_backbone == (mode == "separate")
    assert nets.selector.shared == (mode == "shared")


@pytest.mark.parametrize("arch", ["small", "deeplabv2-r50"])
def test_same_seed_same_weights(arch):
    def weights(seed):
        torch.manual_seed(seed)
        return build_networks(arch, 19, selector_backbone="shared" if arch != "small" else "separate").state_dict()

    a, b, c = weights(5), weights(5), weights(6)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_forward_is_deterministic():
    model = model_a("small").train()
    x = x_input((2, 3, 64, 64))
    assert torch.equal(model(x), model(x))


# ------------------------------------------------------------------------------------------
# channels_last and bf16 autocast
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["small", "deeplabv2-r50"])
def test_channels_last_and_autocast(arch):
    torch.manual_seed(0)
    nets = build_networks(arch, 19, selector_backbone="shared")
    with torch.no_grad():
        for m in nets.modules():  # realistic statistics so that the ResNet stays in range
            if isinstance(m, FrozenBatchNorm2d):
                m.running_var.fill_(4.0)
    nets.eval()
    a, b, d = nets.segmenter, nets.selector, nets.discriminator
    x = x_input((1, 3, 40, 48))
    with torch.no_grad():
        ref = a(x)
        ref1, _ = b(features=a.features(x))
        nets.to(memory_format=torch.channels_last)
        xc = x.to(memory_format=torch.channels_last)
        out = a(xc)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats = a.features(xc)
            low = a.classify(feats)
            l1, l2 = b(features=feats)
            prob = torch.softmax(F.interpolate(low.float(), size=(40, 48), mode="bilinear"), 1)
            dout = d(prob)
    assert low.dtype == torch.bfloat16 and low.shape == ref.shape
    assert torch.isfinite(low.float()).all() and torch.isfinite(l1.float()).all()
    assert dout.shape == (1, 1, 1, 1)
    # bf16 is close to fp32 (correlated, same argmax almost everywhere)
    err = (low.float() - ref).norm() / ref.norm()
    assert err < 0.1
    assert (l1.float() - ref1).norm() / ref1.norm() < 0.1


def test_backward_under_autocast_channels_last():
    torch.manual_seed(0)
    model = SegmentationModel("small", 5).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.param_groups(0.01), lr=0.01)
    x = x_input((2, 3, 32, 48)).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), torch.zeros(2, 16, 24, dtype=torch.long))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()


def test_folding_frozen_batchnorm_keeps_the_function_and_removes_every_bn():
    import copy

    from labor_cli.models import FrozenBN, fold_frozen_batchnorm

    torch.manual_seed(0)
    backbone = build_backbone("deeplabv2-r50").eval()
    for module in backbone.modules():  # statistics far from the identity, so a wrong fold shows
        if isinstance(module, FrozenBN):
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    folded = copy.deepcopy(backbone)
    assert fold_frozen_batchnorm(folded) == 53  # R50: the stem, 16 blocks x 3, 4 downsample branches
    assert not any(isinstance(m, FrozenBN) for m in folded.modules())
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        expected, got = backbone(x), folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert torch.equal(got, expected)  # folded once or at every call (conv_bn): the same arithmetic, the same numbers
    assert fold_frozen_batchnorm(build_backbone("small")) == 0  # GroupNorm: nothing to fold


def _off_identity(backbone: nn.Module) -> None:
    """FrozenBN statistics far from the identity, so that a wrong fold shows."""
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, FrozenBN):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)


def test_training_forward_folds_frozen_batchnorm_with_the_same_outputs_and_gradients():
    """The ResNets fold each FrozenBN into its convolution at every call (conv_bn). Against
    torchvision's own ResNet with the same weights, which applies each FrozenBN to the
    activation: the parameters, which of them train, and the state-dict keys are torchvision's;
    in float64 the output and the gradient of every trainable parameter agree to 1e-9 (the same
    function and the same gradients); in fp32 the output agrees to fp32 rounding. (fp32
    gradients are not compared elementwise: an activation within rounding of a ReLU's kink can
    fall on either side in either network, and one such pixel moves a weight's gradient by 0.1%.)"""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    ours = build_backbone("deeplabv2-r50")
    _off_identity(ours)
    reference = resnet50(weights=None, replace_stride_with_dilation=[False, True, True], norm_layer=FrozenBN)
    del reference.fc, reference.avgpool
    assert list(reference.state_dict()) == list(ours.state_dict())
    reference.load_state_dict(ours.state_dict())
    trainable = [name for name, p in ours.named_parameters() if p.requires_grad]
    assert trainable == [name for name, p in reference.named_parameters() if p.requires_grad]
    assert len(trainable) == 53
    assert all(name.rsplit(".", 2)[-2] in ("conv1", "conv2", "conv3", "0") for name in trainable)

    def unfolded(x):  # torchvision's modules in torchvision's order: conv, then the FrozenBN on its output
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        return reference.layer4(reference.layer3(reference.layer2(reference.layer1(x))))

    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        expected = unfolded(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    ours.double(), reference.double()
    x, weights = x.double(), torch.randn(2, 2048, 5, 7, dtype=torch.float64)  # a loss weighing every output differently
    got, expected = ours(x), unfolded(x)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    ours_params, reference_params = dict(ours.named_parameters()), dict(reference.named_parameters())
    for name in trainable:
        g, e = ours_params[name].grad, reference_params[name].grad
        tolerance = 1e-9 * e.abs().max().item()
        torch.testing.assert_close(g, e, rtol=1e-9, atol=tolerance, msg=lambda m, name=name: f"{name}: {m}")


def test_conv_bn_follows_every_change_of_the_frozen_statistics():
    """conv_bn reuses each FrozenBN's (scale, shift) between calls: a buffer changed in place,
    loaded from a state dict or moved to another dtype gives the new numbers at the next call;
    a call in inference mode leaves nothing behind that a later backward would refuse."""
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 3, padding=1, bias=False), FrozenBN(4)
    for name in ("weight", "bias", "running_mean"):
        getattr(norm, name).normal_()
    norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 6, 5)

    def check(x=x):
        torch.testing.assert_close(deeplab.conv_bn(conv, norm, x), norm(conv(x)), rtol=1e-5, atol=1e-5)

    check()
    norm.running_var.mul_(3)  # in place: a new version
    check()
    state = {k: v + 1 for k, v in norm.state_dict().items()}
    norm.load_state_dict(state)
    check()
    conv.double(), norm.double()  # new tensors
    check(x.double())
    conv.float(), norm.float()
    with torch.inference_mode():
        deeplab.conv_bn(conv, norm, x)
    deeplab.conv_bn(conv, norm, x).sum().backward()
    assert conv.weight.grad is not None
