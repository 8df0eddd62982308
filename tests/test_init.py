"""--init: ImageNet weights from torchvision's cache or a one-line offline error, local files,
and the field's DeepLab-v2 files. Offline: the download function is replaced by one that fails."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.models import convert, deeplab_caffe
from labor_cli.models import init as init_module
from labor_cli.models.deeplab_caffe import CaffeResNetBackbone

SMALL = (1, 1, 1, 1)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torchvision cache under tmp_path and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def no_network(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return calls


def test_default_init_per_arch():
    assert init_module.default_init("deeplabv2-r101") == "imagenet"
    assert init_module.default_init("deeplabv2-r50") == "imagenet"
    assert init_module.default_init("small") == "none"


def test_offline_imagenet_is_one_line_naming_the_file_the_folder_and_the_way_out(offline, tmp_path):
    with pytest.raises(LaborError) as info:
        init_module.imagenet_state_dict("deeplabv2-r101")
    message = str(info.value)
    assert "\n" not in message
    assert "resnet101-63fe2227.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "--init PATH" in message and "URLError" in message
    assert offline == ["https://download.pytorch.org/models/resnet101-63fe2227.pth"]


def test_imagenet_from_the_cache_needs_no_network(offline):
    from labor_cli.models.deeplab import ResNetBackbone

    torch.manual_seed(0)
    state = ResNetBackbone(50).state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    cached = init_module.imagenet_cache_file("deeplabv2-r50")
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    networks, start = init_module.build_initialised_networks("deeplabv2-r50", 19, "imagenet")
    assert offline == [] and start.source.endswith("resnet50-0676ba61.pth")
    for backbone in (networks.segmenter.backbone, networks.selector.backbone):
        for key, value in backbone.state_dict().items():
            assert torch.equal(value, state[key]), key


def test_a_damaged_cache_file_is_named(offline):
    cached = init_module.imagenet_cache_file("deeplabv2-r50")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    with pytest.raises(LaborError, match=rf"^{cached}: cannot read torchvision's cached ImageNet weights .*--init"):
        init_module.imagenet_state_dict("deeplabv2-r50")


def test_small_arch_has_no_imagenet_weights():
    with pytest.raises(LaborUsageError, match="no ImageNet weights for arch small"):
        init_module.resolve_init("small", "imagenet", 19)
    with pytest.raises(LaborUsageError, match="arch small has no ResNet"):
        init_module.resolve_init("small", "weights.pth", 19)


# --- the field's files as --init ------------------------------------------------------------


@pytest.fixture
def small_caffe_arch(monkeypatch):
    monkeypatch.setitem(deeplab_caffe.BLOCKS, "deeplabv2-r50", SMALL)
    monkeypatch.setattr(convert, "ARCH_OF_BLOCKS", {SMALL: "deeplabv2-r50"})


def deeplab_file(path, classes, prefix="", seed=0):
    """A DeepLab-v2 state dict with AdaptSegNet's keys: caffe-layout backbone and layer5."""
    torch.manual_seed(seed)
    state = {k: torch.randn(v.shape) for k, v in CaffeResNetBackbone(SMALL).state_dict().items()}
    for k in range(4):
        state[f"layer5.conv2d_list.{k}.weight"] = torch.randn(classes, 2048, 3, 3)
        state[f"layer5.conv2d_list.{k}.bias"] = torch.randn(classes)
    torch.save({prefix + key: value for key, value in state.items()}, path)
    return state


def test_a_deeplab_init_file_gives_both_backbones_and_leaves_a_foreign_classifier_out(tmp_path, small_caffe_arch):
    state = deeplab_file(tmp_path / "DeepLab_resnet_pretrained_init.pth", 21, prefix="Scale.")
    path = tmp_path / "DeepLab_resnet_pretrained_init.pth"
    networks, start = init_module.build_initialised_networks("deeplabv2-r50", 19, str(path))
    assert networks.config()["backbone_layout"] == "caffe"
    assert any("classifier of 21 classes left out" in note for note in start.notes)
    for backbone in (networks.segmenter.backbone, networks.selector.backbone):
        for key, value in backbone.state_dict().items():
            assert torch.equal(value, state[key]), key
    assert not torch.equal(networks.segmenter.classifier.conv2d_list[0].bias, state["layer5.conv2d_list.0.bias"][:19])


def test_a_field_model_of_the_run_classes_brings_its_classifier(tmp_path, small_caffe_arch):
    state = deeplab_file(tmp_path / "adaptsegnet.pth", 19)
    with pytest.raises(LaborError, match="adaptsegnet:.*advent:"):  # which classifier: the keys cannot tell
        init_module.resolve_init("deeplabv2-r50", str(tmp_path / "adaptsegnet.pth"), 19)
    spec = f"adaptsegnet:{tmp_path / 'adaptsegnet.pth'}"
    networks, _ = init_module.build_initialised_networks("deeplabv2-r50", 19, spec, selector_backbone="shared")
    classifier = networks.segmenter.classifier.state_dict()
    assert torch.equal(classifier["conv2d_list.1.weight"], state["layer5.conv2d_list.1.weight"])
    assert not classifier["conv2d_list.2.weight"].any()  # AdaptSegNet never used branches 2 and 3
    # with another class count the classifier is not needed, so the file's source need not be named
    start = init_module.resolve_init("deeplabv2-r50", str(tmp_path / "adaptsegnet.pth"), 16)
    assert start.classifier is None and start.layout == "caffe"


def test_a_file_of_another_depth_names_the_arch(tmp_path, small_caffe_arch):
    deeplab_file(tmp_path / "init.pth", 21, prefix="Scale.")
    with pytest.raises(LaborUsageError, match="holds a deeplabv2-r50 backbone; pass --arch deeplabv2-r50"):
        init_module.resolve_init("deeplabv2-r101", str(tmp_path / "init.pth"), 19)


def test_a_torchvision_state_dict_is_a_backbone_in_labor_layout(tmp_path):
    state = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "layer4.0.conv1.weight": torch.zeros(512, 1024, 1, 1),
        "fc.weight": torch.zeros(1000, 2048),
        "bn1.num_batches_tracked": torch.tensor(0),
    }
    torch.save(state, tmp_path / "resnet.pth")
    start = init_module.resolve_init("deeplabv2-r101", str(tmp_path / "resnet.pth"), 19)
    assert start.layout == "torchvision" and "bn1.num_batches_tracked" not in start.backbone
    assert start.classifier is None and start.source == str(tmp_path / "resnet.pth")


def test_warmup_defaults_to_imagenet_for_a_resnet_and_says_offline_in_one_line(
    offline, tmp_path, toy_source, toy_target, capsys
):
    """`labor warmup --arch deeplabv2-r50` without --init: --init auto is imagenet; offline and not
    cached, one line naming the file, the folder and --init PATH; nothing written."""
    from labor_cli.cli import main

    with pytest.raises(SystemExit) as stop:
        main(
            [
                "warmup",
                "--source",
                toy_source,
                "--target",
                toy_target,
                "-o",
                str(tmp_path / "w.h5"),
                "--arch",
                "deeplabv2-r50",
                "--device",
                "cpu",
                "--workers",
                "0",
                "-q",
            ]
        )
    err = capsys.readouterr().err
    assert stop.value.code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("labor: error: --init imagenet: torchvision wanted resnet50-0676ba61.pth in ")
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in err and "--init PATH" in err
    assert offline == ["https://download.pytorch.org/models/resnet50-0676ba61.pth"]
    assert not (tmp_path / "w.h5").exists() and not (tmp_path / "w.losses.csv").exists()
