"""Converting the field's DeepLab-v2 weights: the converted network gives the original's outputs.

The originals are re-implemented here from their descriptions (AdaptSegNet model/deeplab.py and
model/deeplab_multi.py, ADVENT advent/model/deeplabv2.py, RIPU core/models/): random weights,
random batch-norm statistics, no download. Most tests use a reduced depth (1, 2, 2, 1) that
has every key pattern (stem, downsample, first and later blocks of each stage, classifiers);
one runs the full ResNet-101 at a tiny input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import invoke
from torch import nn

from labor_cli.data.transforms import ImageNormalizer
from labor_cli.errors import LaborError
from labor_cli.models import convert
from labor_cli.models.deeplab import ASPPv2, ResNetBackbone, SegmentationModel
from labor_cli.models.deeplab_caffe import CAFFE_BGR_MEAN, CaffeResNetBackbone

SMALL = (1, 2, 2, 1)


# --- the originals, written from their descriptions -------------------------------------------


class CaffeBottleneck(nn.Module):
    """DeepLab-v2's bottleneck: the stride on the 1x1 conv1, every 3x3 at the stage's dilation."""

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, norm=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CaffeASPP(nn.Module):
    def __init__(self, inplanes, num_classes, branches_used):
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(inplanes, num_classes, 3, padding=d, dilation=d) for d in (6, 12, 18, 24)
        )
        self.branches_used = branches_used  # AdaptSegNet: 2 (returns inside its loop); ADVENT: 4

    def forward(self, x):
        return sum(conv(x) for conv in self.conv2d_list[: self.branches_used])


class DeepLabV2(nn.Module):
    """AdaptSegNet's Res_Deeplab (multi_level False) / DeeplabMulti and ADVENT's get_deeplab_v2
    (multi_level True: layer5 on layer3, layer6 on layer4; the prediction is layer6's)."""

    def __init__(self, blocks, num_classes, multi_level, branches_used):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        inplanes = 64
        stages = zip((64, 128, 256, 512), blocks, (1, 2, 1, 1), (1, 1, 2, 4))
        for index, (planes, count, stride, dilation) in enumerate(stages):
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
            layers = [CaffeBottleneck(inplanes, planes, stride, dilation, downsample)]
            layers += [CaffeBottleneck(planes * 4, planes, 1, dilation) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
            inplanes = planes * 4
        self.multi_level = multi_level
        if multi_level:
            self.layer5 = CaffeASPP(1024, num_classes, branches_used)
            self.layer6 = CaffeASPP(2048, num_classes, branches_used)
        else:
            self.layer5 = CaffeASPP(2048, num_classes, branches_used)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.layer4(x)
        return self.layer6(x) if self.multi_level else self.layer5(x)


class EpsFreeFrozenBN(nn.Module):
    """RIPU's FrozenBatchNorm2d: weight / sqrt(running_var), no eps."""

    def __init__(self, n):
        super().__init__()
        for name, value in (
            ("weight", torch.ones(n)),
            ("bias", torch.zeros(n)),
            ("running_mean", torch.zeros(n)),
            ("running_var", torch.ones(n)),
        ):
            self.register_buffer(name, value)

    def forward(self, x):
        scale = self.weight * self.running_var.rsqrt()
        return x * scale.view(1, -1, 1, 1) + (self.bias - self.running_mean * scale).view(1, -1, 1, 1)


class RIPUDeepLab(nn.Module):
    """RIPU's feature extractor (torchvision's dilated ResNet under ``backbone.``) and classifier."""

    def __init__(self, depth, num_classes):
        super().__init__()
        from torchvision.models import resnet50, resnet101

        net = {50: resnet50, 101: resnet101}[depth](
            replace_stride_with_dilation=[False, True, True], norm_layer=EpsFreeFrozenBN
        )
        del net.fc, net.avgpool
        self.backbone = net
        self.classifier = CaffeASPP(2048, num_classes, 4)

    def forward(self, x):
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return self.classifier(b.layer4(b.layer3(b.layer2(b.layer1(x)))))


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and batch-norm statistics, scaled so that activations stay finite."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif name.endswith(("running_mean", "bias")):
                tensor.normal_(0, 0.1, generator=generator)
            elif tensor.ndim == 1:  # batch-norm weight
                tensor.uniform_(0.5, 1.0, generator=generator)
            else:
                tensor.normal_(0, tensor[0].numel() ** -0.5, generator=generator)
    return module.eval()


def as_initialised(classifier: CaffeASPP, branches=(2, 3), seed: int = 0) -> None:
    """Branches as AdaptSegNet's and ADVENT's code draws them (Classifier_Module: weights N(0, 0.01);
    bias PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in))), and as AdaptSegNet's SGD leaves
    its branches 2 and 3: they never get a gradient, so SGD skips them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k in branches:
            conv = classifier.conv2d_list[k]
            bound = conv.weight[0].numel() ** -0.5
            conv.weight.normal_(0, 0.01, generator=generator)
            conv.bias.uniform_(-bound, bound, generator=generator)


def adaptsegnet_like(model: DeepLabV2) -> DeepLabV2:
    """A randomised model whose classifiers' branches 2 and 3 are as AdaptSegNet's code leaves them."""
    for seed, head in enumerate(module for module in model.modules() if isinstance(module, CaffeASPP)):
        as_initialised(head, seed=seed)
        head.branches_used = 2
    return model


def image(height=36, width=44, seed=0) -> torch.Tensor:
    """A uint8 RGB image (1 x 3 x H x W); at 36 x 44 a ceil-mode max-pool gives a row and a column
    more (10 x 12) than a floor one."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (1, 3, height, width), dtype=np.uint8))


def caffe_input(rgb: torch.Tensor) -> torch.Tensor:
    """What AdaptSegNet's and ADVENT's datasets hand the network: BGR, 0..255, minus the mean."""
    return rgb.float().flip(1) - torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)


def labor_input(rgb: torch.Tensor) -> torch.Tensor:
    return ImageNormalizer()(rgb)


def assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    scale = float(theirs.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, atol=2e-5 * scale, rtol=1e-4)


def converted_model(model: convert.FieldModel) -> SegmentationModel:
    net = SegmentationModel(
        "deeplabv2-r101", model.num_classes, backbone=convert.new_backbone(model), dilations=model.dilations
    )
    convert.load_backbone(net.backbone, model)
    convert.load_classifier(net.classifier, model)
    return net.eval()


def save(state, path, prefix=""):
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return path


# --- the Caffe layout: AdaptSegNet, ADVENT, the Scale.-prefixed initialisations ---------------


@pytest.fixture(scope="module")
def multi_level(tmp_path_factory):
    """One multi-level DeepLab-v2 of reduced depth as ADVENT's code leaves it (every branch
    trained: here random), and its state dict on disk."""
    theirs = randomise(DeepLabV2(SMALL, 19, True, branches_used=4), seed=1)
    return theirs, save(theirs.state_dict(), tmp_path_factory.mktemp("field") / "gta2cityscapes_advent.pth")


@pytest.fixture(scope="module")
def adaptsegnet_multi(tmp_path_factory):
    """The same as AdaptSegNet's code leaves it: branches 2 and 3 of both classifiers as drawn."""
    theirs = adaptsegnet_like(randomise(DeepLabV2(SMALL, 19, True, branches_used=2), seed=1))
    return theirs, save(theirs.state_dict(), tmp_path_factory.mktemp("field") / "GTA2Cityscapes_multi.pth")


def test_adaptsegnet_converts_to_the_same_outputs_with_two_branches(adaptsegnet_multi):
    theirs, path = adaptsegnet_multi
    model = convert.read_field_model(f"adaptsegnet:{path}")
    assert (model.layout, model.blocks, model.num_classes, model.dilations) == ("caffe", SMALL, 19, (6, 12))
    assert any("dropped layer5" in note for note in model.notes) and not model.warnings
    rgb = image()
    with torch.no_grad():
        expected = theirs(caffe_input(rgb))
        net = converted_model(model)
        got = net(labor_input(rgb))
        four = SegmentationModel("deeplabv2-r101", 19, backbone=net.backbone)  # the four-branch sum of --init
        convert.load_classifier(four.classifier, model)
        assert_same(four.eval()(labor_input(rgb)), expected)
    assert expected.shape[-2:] == (5, 6) and len(net.classifier.conv2d_list) == 2
    assert_same(got, expected)


def test_advent_sums_four_branches(multi_level):
    theirs, path = multi_level
    rgb = image(seed=1)
    model = convert.read_field_model(f"advent:{path}")
    assert model.dilations == (6, 12, 18, 24) and not model.warnings
    with torch.no_grad():
        expected = theirs(caffe_input(rgb))
        as_advent = converted_model(model)(labor_input(rgb))
        theirs.layer6.branches_used = 2
        two_branches = theirs(caffe_input(rgb))
        theirs.layer6.branches_used = 4
    assert_same(as_advent, expected)
    assert (two_branches - expected).abs().max() > 0.05 * expected.abs().max()


def test_the_caffe_layout_matters(multi_level):
    """The same weights in labor's torchvision-layout ResNet compute another function (and the
    max-pool rounds the other way): what the caffe layout exists for."""
    model = convert.read_field_model(f"advent:{multi_level[1]}")
    from torchvision.models.resnet import Bottleneck, ResNet

    from labor_cli.models.deeplab import FrozenBN

    plain = ResNet(Bottleneck, list(SMALL), replace_stride_with_dilation=[False, True, True], norm_layer=FrozenBN)
    del plain.fc
    plain.load_state_dict(model.backbone)
    caffe = CaffeResNetBackbone(SMALL).eval()
    caffe.load_state_dict(model.backbone)
    tv = plain.eval()

    def torchvision_layout(x):
        return tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))

    with torch.no_grad():
        # the max-pool rounds up: 40 x 48 -> 20 x 24 -> 11 x 13 (10 x 12 rounding down) -> 6 x 7
        assert caffe(labor_input(image(40, 48))).shape[-2:] == (6, 7)
        assert torchvision_layout(caffe_input(image(40, 48))).shape[-2:] == (5, 6)
        rgb = image(34, 42)  # sizes at which both max-pools round alike
        ours, theirs_layout = caffe(labor_input(rgb)), torchvision_layout(caffe_input(rgb))
    assert ours.shape == theirs_layout.shape
    assert (ours - theirs_layout).abs().max() > 0.05 * ours.abs().max()


def test_single_level_models_prefixes_and_batch_norm_counters(tmp_path):
    """Res_Deeplab (layer5 on layer4), under the prefixes of the init files and of DataParallel."""
    theirs = randomise(DeepLabV2(SMALL, 21, False, branches_used=4), seed=4)
    state = theirs.state_dict()
    assert any(k.endswith("num_batches_tracked") for k in state)
    rgb = image(seed=2)
    with torch.no_grad():
        expected = theirs(caffe_input(rgb))
    for prefix in ("Scale.", "module.Scale.", "module."):
        path = save(state, tmp_path / f"{prefix}pth", prefix)
        model = convert.read_field_model(str(path) if "Scale" in prefix else f"advent:{path}")
        assert (model.format, model.num_classes) == ("deeplab" if "Scale" in prefix else "advent", 21)
        with torch.no_grad():
            assert_same(converted_model(model)(labor_input(rgb)), expected)


def test_full_resnet101_multi_level_adaptsegnet(tmp_path):
    theirs = adaptsegnet_like(randomise(DeepLabV2((3, 4, 23, 3), 19, True, branches_used=2), seed=5))
    path = save(theirs.state_dict(), tmp_path / "GTA2Cityscapes_multi.pth")
    model = convert.read_field_model(f"adaptsegnet:{path}")
    assert model.arch == "deeplabv2-r101"
    rgb = image(33, 41, seed=3)
    with torch.no_grad():
        assert_same(converted_model(model)(labor_input(rgb)), theirs(caffe_input(rgb)))


# --- RIPU: torchvision's layout, batch norms without eps -------------------------------------


def test_ripu_converts_to_the_same_outputs(tmp_path):
    theirs = randomise(RIPUDeepLab(50, 16), seed=6)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # variances near eps, so that leaving eps out changes the scales by up to 40%
        for module in theirs.modules():
            if isinstance(module, EpsFreeFrozenBN):
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) * 9e-5 + 1e-5)
                module.weight.mul_(module.running_var.sqrt())
    checkpoint = {
        "iteration": 40000,
        "feature_extractor": {"module.backbone." + k: v for k, v in theirs.backbone.state_dict().items()},
        "classifier": theirs.classifier.state_dict(),
        "optimizer_fea": {"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0, 1]}]},
    }
    path = tmp_path / "model_iter040000.pth"
    torch.save(checkpoint, path)
    model = convert.read_field_model(path)  # a RIPU checkpoint says what it is
    assert (model.format, model.layout, model.arch, model.num_classes) == ("ripu", "torchvision", "deeplabv2-r50", 16)
    assert convert.class_set_for(model) == "synthia16"
    net = SegmentationModel("deeplabv2-r50", 16, backbone=convert.new_backbone(model))
    assert isinstance(net.backbone, ResNetBackbone)
    convert.load_backbone(net.backbone, model)
    convert.load_classifier(net.classifier, model)
    rgb = image(33, 41, seed=4)
    with torch.no_grad():
        expected = theirs(labor_input(rgb))
        assert_same(net.eval()(labor_input(rgb)), expected)
        unadjusted = {k[len("module.backbone.") :]: v for k, v in checkpoint["feature_extractor"].items()}
        net.backbone.load_state_dict(unadjusted)
        assert (net(labor_input(rgb)) - expected).abs().max() > 0.05 * expected.abs().max()  # unadjusted: wrong


# --- into a labor checkpoint -----------------------------------------------------------------


@pytest.fixture
def small_caffe_arch(monkeypatch):
    """Let the reduced depth stand for deeplabv2-r50, so that checkpoints stay small."""
    from labor_cli.models import deeplab_caffe

    monkeypatch.setitem(deeplab_caffe.BLOCKS, "deeplabv2-r50", SMALL)
    monkeypatch.setattr(convert, "ARCH_OF_BLOCKS", {SMALL: "deeplabv2-r50"})


@pytest.mark.parametrize("selector_backbone", ["separate", "shared"])
def test_convert_writes_a_checkpoint_that_loads_and_predicts_the_same(
    tmp_path, adaptsegnet_multi, small_caffe_arch, selector_backbone
):
    from labor_cli.artifacts import load_checkpoint

    theirs, path = adaptsegnet_multi
    result = invoke(
        "convert",
        f"adaptsegnet:{path}",
        "-o",
        tmp_path / "model.h5",
        "--selector-backbone",
        selector_backbone,
        "--seed",
        3,
    )
    assert "deeplabv2-r50 (caffe layout) from adaptsegnet, classes cityscapes19" in result.output
    assert "A's classifier and B's heads keep the 2 branches adaptsegnet's classifier sums (dilations 6, 12)" in (
        " ".join(result.output.split())
    )
    checkpoint = load_checkpoint(tmp_path / "model.h5")
    assert checkpoint.config["classifier_dilations"] == [6, 12]
    assert checkpoint.networks.config()["classifier_dilations"] == [6, 12]
    for classifier in (checkpoint.networks.segmenter.classifier, checkpoint.networks.selector.head1):
        assert classifier.dilations == (6, 12) and len(classifier.conv2d_list) == 2
    assert (checkpoint.networks.arch, checkpoint.class_set, checkpoint.config["seed"]) == (
        "deeplabv2-r50",
        "cityscapes19",
        3,
    )
    assert checkpoint.config["format"] == "adaptsegnet"
    assert checkpoint.config["sha256"] == convert.file_digest(path)
    assert checkpoint.networks.config()["backbone_layout"] == "caffe"
    assert checkpoint.state.stage == "convert" and checkpoint.state.iteration == 0
    rgb = image(seed=5)
    nets = checkpoint.networks
    with torch.no_grad():
        expected = theirs(caffe_input(rgb))
        assert_same(nets.segmenter(labor_input(rgb)), expected)
        features = nets.segmenter.features(labor_input(rgb))
        one, two = nets.selector(features=features) if nets.selector.shared else nets.selector(labor_input(rgb))
    # B's heads: halves of A's classifier, averaging to it, and not equal to each other
    assert_same((one + two) / 2, expected)
    assert (one.argmax(1) != two.argmax(1)).any()
    if selector_backbone == "separate":
        for key, value in nets.segmenter.backbone.state_dict().items():
            assert torch.equal(value, nets.selector.backbone.state_dict()[key])


def test_convert_refuses_to_overwrite_and_reads_a_discriminator(tmp_path, multi_level, small_caffe_arch, capsys):
    from labor_cli.artifacts import load_checkpoint
    from labor_cli.cli import main

    path = multi_level[1]
    names = ("conv1", "conv2", "conv3", "conv4", "classifier")
    widths = (19, 64, 128, 256, 512, 1)
    layers = [layer for i in range(5) for layer in (nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), nn.LeakyReLU(0.2))]
    advent_d = nn.Sequential(*layers[:-1])
    torch.save(advent_d.state_dict(), tmp_path / "model_D_main.pth")
    invoke(
        "convert",
        f"advent:{path}",
        "-o",
        tmp_path / "model.h5",
        "--selector-backbone",
        "shared",
        "--discriminator",
        tmp_path / "model_D_main.pth",
    )
    loaded = load_checkpoint(tmp_path / "model.h5").networks.discriminator.state_dict()
    for i, name in enumerate(names):
        assert torch.equal(loaded[f"{name}.weight"], advent_d[2 * i].weight)
    before = (tmp_path / "model.h5").read_bytes()
    with pytest.raises(SystemExit) as stop:
        main(["convert", f"advent:{path}", "-o", str(tmp_path / "model.h5")])
    err = capsys.readouterr().err
    assert stop.value.code == 1 and err.startswith("labor: error: ") and "already exists" in err
    assert len(err.strip().splitlines()) == 1 and (tmp_path / "model.h5").read_bytes() == before


# --- adaptsegnet or advent: the classifier's branches tell --------------------------------------


def trained_as(code: str, steps: int, lr: float, seed: int = 0) -> DeepLabV2:
    """A multi-level DeepLab-v2 initialised and trained the way ``code``'s repository does, in
    miniature. ResNetMulti.__init__ draws every convolution's weights from N(0, 0.01) (the biases
    keep PyTorch's default draw); SGD with momentum 0.9 and weight decay 5e-4 over the classifiers
    (optim_parameters' 10x group) on random post-ReLU features and labels. AdaptSegNet's classifiers
    sum two branches (Classifier_Module.forward returns inside its loop), so 2 and 3 get no gradient
    and SGD skips them; ADVENT's sum four. A learning rate far above the codes' 2.5e-3 stands in,
    in a few steps, for their 120,000-odd iterations."""
    torch.manual_seed(seed)
    model = DeepLabV2(SMALL, 19, True, branches_used=2 if code == "adaptsegnet" else 4)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data.normal_(0, 0.01)
    heads = list(model.layer5.parameters()) + list(model.layer6.parameters())
    optimizer = torch.optim.SGD(heads, lr=lr, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        layer3 = torch.randn(1, 1024, 4, 4, generator=generator).relu()
        layer4 = torch.randn(1, 2048, 4, 4, generator=generator).relu()
        labels = torch.randint(0, 19, (1, 4, 4), generator=generator)
        loss = F.cross_entropy(model.layer6(layer4), labels) + 0.1 * F.cross_entropy(model.layer5(layer3), labels)
        loss.backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def field_files(tmp_path_factory):
    """AdaptSegNet's and ADVENT's files, saved as their code saves them (torch.save(state_dict()));
    well trained (8 steps at lr 0.1), lightly trained (10 steps at the codes' 2.5e-3) and untrained."""
    folder = tmp_path_factory.mktemp("trained")
    files = {}
    for code in ("adaptsegnet", "advent"):
        for level, (steps, lr) in {"trained": (8, 0.1), "light": (10, 2.5e-3), "untrained": (0, 0.0)}.items():
            files[code, level] = save(trained_as(code, steps, lr).state_dict(), folder / f"{code}-{level}.pth")
    return files


def test_the_branch_statistics_of_each_code(field_files):
    """What the rule reads: AdaptSegNet's branches 2 and 3 exactly as drawn (std 0.01, biases within
    1/sqrt(fan_in)), its 0 and 1 and all four of ADVENT's moved away."""
    adaptsegnet = convert.classifier_evidence(torch.load(field_files["adaptsegnet", "trained"]))
    advent = convert.classifier_evidence(torch.load(field_files["advent", "trained"]))
    assert adaptsegnet.name == advent.name == "layer6"
    assert [b.state for b in adaptsegnet.branches] == ["trained", "trained", "initial", "initial"]
    assert [b.state for b in advent.branches] == ["trained"] * 4
    assert all(abs(b.std - 0.01) < 1e-4 and b.bias_ratio <= 1 for b in adaptsegnet.branches[2:])
    assert all(b.std > 0.0105 for b in advent.branches)
    assert (adaptsegnet.likely, advent.likely) == ("adaptsegnet", "advent")


def test_a_file_named_as_the_other_code_is_refused_both_ways(tmp_path, field_files, small_caffe_arch, capsys):
    from labor_cli.cli import main

    for code, level, other in (("adaptsegnet", "trained", "advent"), ("advent", "trained", "adaptsegnet")):
        path = field_files[code, level]
        with pytest.raises(SystemExit) as stop:
            main(["convert", f"{other}:{path}", "-o", str(tmp_path / "out.h5")])
        err = capsys.readouterr().err
        assert stop.value.code == 1 and len(err.strip().splitlines()) == 1, err
        assert err.strip().endswith(f"; convert it as {code}:{path}") and "layer6 branches 0-3: weight std" in err
        assert not (tmp_path / "out.h5").exists()
        with pytest.raises(SystemExit) as stop:  # named right: converted, without a warning
            main(["convert", f"{code}:{path}", "-o", str(tmp_path / f"{code}-{level}.h5")])
        assert stop.value.code == 0 and "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "code, level, named, warning",
    [
        ("advent", "light", "adaptsegnet", "branches 2 and 3 of the classifier are not all as initialised"),
        ("advent", "light", "advent", "branches 0, 1, 2, 3 do not look trained"),
        ("adaptsegnet", "light", "advent", "branches 0, 1, 2, 3 do not look trained"),
        ("adaptsegnet", "untrained", "adaptsegnet", "every branch of layer6 is as initialised (untrained?)"),
        ("advent", "untrained", "advent", "every branch of layer6 is as initialised (untrained?)"),
    ],
)
def test_weak_evidence_is_a_warning(tmp_path, field_files, small_caffe_arch, capsys, code, level, named, warning):
    """A lightly trained file (biases just past their initial bound, weights' std within 1%) or an
    untrained one: converted as named, with one warning line on stderr, which the checkpoint's
    config keeps."""
    from labor_cli.artifacts import load_checkpoint
    from labor_cli.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["convert", f"{named}:{field_files[code, level]}", "-o", str(tmp_path / "out.h5")])
    err = capsys.readouterr().err
    assert stop.value.code == 0 and err.startswith(f"warning: {warning}") and len(err.strip().splitlines()) == 1
    assert load_checkpoint(tmp_path / "out.h5").config["warnings"] == [err.strip()[len("warning: ") :]]


# --- errors: one line, naming the file and what was expected ---------------------------------


def test_a_plain_deeplab_state_dict_needs_its_source_named(multi_level, adaptsegnet_multi):
    """The keys cannot tell; the message names both, and the one the branches point to."""
    for (_, path), likely in ((multi_level, "advent"), (adaptsegnet_multi, "adaptsegnet")):
        with pytest.raises(LaborError, match=r"adaptsegnet:.*advent:") as info:
            convert.read_field_model(path)
        assert str(info.value).endswith(f"its classifier's branches point to {likely}:{path}")
        assert "\n" not in str(info.value)


def test_wrong_format_and_unknown_layouts_are_one_line_errors(tmp_path, multi_level):
    caffe = multi_level[1]
    torch.save({"feature_extractor": {}, "classifier": {}}, tmp_path / "ripu.pth")
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    (tmp_path / "text.pth").write_text("not weights")
    torch.save(
        {"conv1.weight": torch.zeros(1), "layer4.0.conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)},
        tmp_path / "resnet.pth",
    )
    cases = [
        (f"ripu:{caffe}", "not a RIPU checkpoint.*try adaptsegnet:"),
        (f"adaptsegnet:{tmp_path / 'ripu.pth'}", "RIPU checkpoint; try ripu:"),
        (str(tmp_path / "other.pth"), "no known layout; expected a DeepLab-v2 state dict"),
        (str(tmp_path / "text.pth"), "text.pth: not a readable PyTorch weights file: a text file$"),
        (str(tmp_path / "missing.pth"), "no such file"),
        (f"advent:{tmp_path / 'resnet.pth'}", "an ImageNet classifier ResNet .* without a format"),
    ]
    for spec, message in cases:
        with pytest.raises(LaborError, match=message) as info:
            convert.read_field_model(spec)
        assert "\n" not in str(info.value)


def test_files_that_are_no_torch_weights_say_what_they_are(tmp_path, capsys):
    """`labor convert x.npy`, a text file, an archive...: one line saying what the file is, never
    torch's advice (cut mid-sentence) to load it with weights_only=False."""
    import pickle
    import zipfile

    from labor_cli.cli import main

    np.save(tmp_path / "x.npy", np.zeros(3))
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    (tmp_path / "notes.txt").write_text("weights: none\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    torch.save(torch.zeros(3), tmp_path / "cut.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "cut.pth").read_bytes()[:300])
    cases = {
        "x.npy": "a NumPy array (.npy)",
        "x.npz": "a NumPy archive (.npz) without torch.save's data.pkl (holds a.npy)",
        "x.zip": "a zip archive without torch.save's data.pkl (holds notes.txt)",
        "notes.txt": "a text file",
        "empty.pth": "an empty file",
        "plain.pkl": "a Python pickle, but not what torch.save writes",
        "cut.pth": "a damaged zip archive (cut off?)",
    }
    for name, what in cases.items():
        with pytest.raises(SystemExit) as stop:
            main(["convert", str(tmp_path / name), "-o", str(tmp_path / "out.h5")])
        err = capsys.readouterr().err
        assert stop.value.code == 1 and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"labor: error: {tmp_path / name}: not a readable PyTorch weights file: {what}"), err
        assert "weights_only" not in err and not (tmp_path / "out.h5").exists()


def test_an_unknown_format_names_the_formats(tmp_path, capsys):
    from labor_cli.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["convert", f"advnt:{tmp_path / 'model.pth'}", "-o", str(tmp_path / "out.h5")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown format 'advnt', expected one of adaptsegnet, advent, deeplab, ripu" in err
    odd = tmp_path / "models:v1.pth"  # a colon in an existing file's name is a name, not a format
    torch.save({"encoder.weight": torch.zeros(1)}, odd)
    with pytest.raises(LaborError, match="no known layout"):
        convert.read_field_model(str(odd))


def test_missing_keys_and_foreign_class_counts(tmp_path):
    state = DeepLabV2(SMALL, 13, False, 4).state_dict()
    model = convert.read_field_model(f"advent:{save(state, tmp_path / 'synthia13.pth')}")
    with pytest.raises(LaborError, match="13 classes; labor's class sets have 19"):
        convert.class_set_for(model)
    del state["layer2.0.bn1.running_var"]
    with pytest.raises(LaborError, match=r"1 missing: layer2\.0\.bn1\.running_var"):
        convert.read_field_model(f"advent:{save(state, tmp_path / 'broken.pth')}")


def test_code_in_a_pickle_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"conv1.weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(LaborError, match="not a readable PyTorch weights file: it holds Python objects") as info:
        convert.read_field_model(f"advent:{tmp_path / 'evil.pth'}")
    assert "(print)" in str(info.value) and "weights_only" not in str(info.value)
    torch.save({"a": torch.zeros(2)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "legacy.pth").write_bytes((tmp_path / "legacy.pth").read_bytes()[:40])
    with pytest.raises(LaborError, match=r"legacy\.pth: not a readable PyTorch weights file: it ends early"):
        convert.read_field_model(f"advent:{tmp_path / 'legacy.pth'}")


def test_a_plain_pickle_is_refused_in_one_line_without_torch_warnings(tmp_path, recwarn):
    import pickle

    (tmp_path / "plain.pth").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with pytest.raises(LaborError, match=r"plain\.pth: not a readable PyTorch weights file"):
        convert.read_field_model(f"advent:{tmp_path / 'plain.pth'}")
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_split_heads_average_to_the_classifier():
    torch.manual_seed(0)
    classifier, one, two = (ASPPv2(32, 5) for _ in range(3))
    convert.split_heads(classifier, one, two, seed=1)
    x = torch.randn(1, 32, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close((one(x) + two(x)) / 2, classifier(x), atol=1e-5, rtol=1e-5)
        zero_in_one = one.conv2d_list[0].weight.abs().sum((0, 2, 3)) == 0
        zero_in_two = two.conv2d_list[0].weight.abs().sum((0, 2, 3)) == 0
    assert int(zero_in_one.sum()) == 16 and torch.equal(zero_in_one, ~zero_in_two)


def test_the_stages_start_from_a_converted_checkpoint(
    tmp_path, adaptsegnet_multi, small_caffe_arch, toy_source, toy_target
):
    """extract, select, label, adapt and evaluate all take a converted (caffe-layout) model; a
    two-branch AdaptSegNet classifier stays two-branch through training, and trains."""
    from labor_cli.artifacts import load_checkpoint, read_any

    path = adaptsegnet_multi[1]
    invoke("convert", f"adaptsegnet:{path}", "-o", tmp_path / "model.h5", "--selector-backbone", "shared")
    converted = load_checkpoint(tmp_path / "model.h5").networks
    small = "64x32"  # the reduced ResNet still has DeepLab's 2048-channel dilated classifier: keep inputs small
    invoke(
        "extract",
        "-m",
        tmp_path / "model.h5",
        "--target",
        toy_target,
        "-o",
        tmp_path / "masks.h5",
        "--input-size",
        small,
        "--device",
        "cpu",
        "--workers",
        0,
        "-q",
    )
    invoke("select", "--masks", tmp_path / "masks.h5", "--mode", "ppl", "--points", 5, "-o", tmp_path / "selection.h5")
    invoke(
        "label", "--selection", tmp_path / "selection.h5", "--target", toy_target, "-o", tmp_path / "labels.h5", "-q"
    )
    invoke(
        "adapt",
        "-m",
        tmp_path / "model.h5",
        "--labels",
        tmp_path / "labels.h5",
        "--source",
        toy_source,
        "--target",
        toy_target,
        "-o",
        tmp_path / "adapted.h5",
        "--iters",
        1,
        "--source-batch",
        1,
        "--target-batch",
        1,
        "--source-size",
        small,
        "--target-size",
        small,
        "--device",
        "cpu",
        "--workers",
        0,
        "-q",
    )
    adapted = load_checkpoint(tmp_path / "adapted.h5")
    assert adapted.networks.config()["backbone_layout"] == "caffe" and adapted.state.iteration == 1
    assert adapted.networks.config()["classifier_dilations"] == [6, 12]
    before, after = converted.segmenter.classifier.state_dict(), adapted.networks.segmenter.classifier.state_dict()
    assert sorted(after) == sorted(before) == [f"conv2d_list.{k}.{p}" for k in (0, 1) for p in ("bias", "weight")]
    assert all(not torch.equal(before[key], after[key]) for key in before)  # both branches trained
    invoke(
        "evaluate",
        "-m",
        tmp_path / "adapted.h5",
        "--target",
        toy_target,
        "-o",
        tmp_path / "eval.h5",
        "--input-size",
        small,
        "--device",
        "cpu",
        "--workers",
        0,
        "-q",
    )
    with read_any(tmp_path / "eval.h5") as f:
        assert 0 <= json.loads(f.attrs["scores"])["mIoU19"] <= 100


def test_a_crafted_classifier_dilations_is_a_damaged_checkpoint(tmp_path, adaptsegnet_multi, small_caffe_arch):
    """The networks are rebuilt from the stored config before any weight is read: dilations that
    are no list of 1 to 4 small integers are refused in one line."""
    import shutil

    import h5py

    from labor_cli.artifacts import load_checkpoint

    invoke(
        "convert", f"adaptsegnet:{adaptsegnet_multi[1]}", "-o", tmp_path / "model.h5", "--selector-backbone", "shared"
    )
    for bad in ([0], [6, 12, 18, 24, 30], "6,12", [6.0, 12.0], [100000]):
        shutil.copy(tmp_path / "model.h5", tmp_path / "bad.h5")
        with h5py.File(tmp_path / "bad.h5", "r+") as f:
            config = json.loads(f["networks"].attrs["config"])
            f["networks"].attrs["config"] = json.dumps({**config, "classifier_dilations": bad})
        with pytest.raises(LaborError, match=r"bad\.h5: damaged checkpoint: classifier_dilations") as info:
            load_checkpoint(tmp_path / "bad.h5")
        assert "\n" not in str(info.value)
