"""DeepLab-v2 weights as the field publishes them, read into labor's networks.

A file is named ``FORMAT:PATH`` (like datasets), or by PATH alone where its keys say which it is:

- ``adaptsegnet``: AdaptSegNet's ``Res_Deeplab`` / ``DeeplabMulti`` state dicts (its
  model/deeplab.py and model/deeplab_multi.py; ``torch.save(model.state_dict())``). DeepLab-v2's
  Caffe-layout ResNet (labor_cli.models.deeplab_caffe) and the classifier ``layer5`` (single
  level) or ``layer6`` on layer4 with an auxiliary ``layer5`` on layer3 (multi level, which is
  dropped: AdaptSegNet predicts with layer6 alone). Its ``Classifier_Module.forward`` returns
  inside its loop, after adding the second branch: branches 2 and 3 are never used nor trained.
  The converted classifier keeps the first two (``FieldModel.dilations`` 6, 12), so that later
  training never updates branches AdaptSegNet never used; in the classifier read here 2 and 3 are
  zero, so that a four-branch sum (``--init``) gives AdaptSegNet's output too.
- ``advent``: ADVENT's ``get_deeplab_v2`` (advent/model/deeplabv2.py): the same keys and
  layout, and a classifier that sums all four branches.

The keys cannot tell ``adaptsegnet`` from ``advent``; the classifier's branches can. Both codes draw
every branch's weights from N(0, 0.01) and its bias from PyTorch's default U(-1/sqrt(fan_in),
1/sqrt(fan_in)); AdaptSegNet's SGD skips branches 2 and 3 (they never get a gradient), so they stay
exactly there, while ADVENT trains all four. A named format that the statistics contradict is
refused, and weak evidence is a warning (:func:`check_named_format`).
- ``deeplab``: the DeepLab-v2 initialisations those codes start from
  (``DeepLab_resnet_pretrained_init-f81d91e8.pth``, ``DeepLab_resnet_pretrained_imagenet.pth``):
  the same network under a ``Scale.`` prefix (the multi-scale wrapper of the PyTorch port they
  come from), whose classifier sums four branches; usually not of labor's classes, so a
  backbone for ``--init``.
- ``ripu``: RIPU's checkpoints (train.py / train_source.py: a dict with ``feature_extractor``,
  ``classifier`` and optimiser states). torchvision's dilated ResNet under ``backbone.``, so
  labor's own layout, and an ASPP classifier of four summed branches. Its frozen batch norms
  (core/models/layers.py) divide by sqrt(var) without eps; the scales are adjusted so that
  labor's sqrt(var + eps) gives the same function.

A ``module.`` prefix (DataParallel) is removed everywhere. Everything is read with
``torch.load(weights_only=True)``: tensors and plain containers, never code.
"""

from __future__ import annotations

import codecs
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import torch
from torch import Tensor

from labor_cli.errors import LaborError, LaborUsageError

FORMATS = {
    "adaptsegnet": "AdaptSegNet's Res_Deeplab / DeeplabMulti (classifier sums its first two branches)",
    "advent": "ADVENT's get_deeplab_v2 (classifier sums four branches)",
    "deeplab": "a DeepLab-v2 initialisation with Scale.-prefixed keys (DeepLab_resnet_pretrained_*.pth)",
    "ripu": "a RIPU checkpoint (feature_extractor + classifier)",
}
DEEPLAB_DILATIONS = (6, 12, 18, 24)  # the four ASPP branches of DeepLab-v2's classifier, in all three codes
DILATIONS_OF_FORMAT = {"adaptsegnet": (6, 12)}  # the branches a format's classifier sums, where not all four
ARCH_OF_BLOCKS = {(3, 4, 23, 3): "deeplabv2-r101", (3, 4, 6, 3): "deeplabv2-r50"}
CLASS_SET_OF_COUNT = {19: "cityscapes19", 16: "synthia16"}
BN_EPS = 1e-5  # torchvision's FrozenBatchNorm2d, and nn.BatchNorm2d's default

_BLOCK_KEY = re.compile(r"layer([1-4])\.(\d+)\.")
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class FieldModel:
    """A DeepLab-v2 read from a file: backbone and classifier under labor's key names."""

    path: Path
    format: str
    layout: str  # "caffe" (labor_cli.models.deeplab_caffe) or "torchvision" (labor's ResNetBackbone)
    blocks: tuple[int, ...]  # bottlenecks per stage
    backbone: dict[str, Tensor]  # conv1.weight, bn1.*, layerL.B.{convK,bnK,downsample.N}.*
    classifier: dict[str, Tensor] | None  # conv2d_list.{0..3}.{weight,bias}, as labor's ASPPv2 sums them
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # weak evidence against the named format
    dilations: tuple[int, ...] = DEEPLAB_DILATIONS  # the branches the model's code sums (the first ones)

    @property
    def num_classes(self) -> int | None:
        return None if self.classifier is None else int(self.classifier["conv2d_list.0.weight"].shape[0])

    @property
    def arch(self) -> str:
        if self.blocks not in ARCH_OF_BLOCKS:
            raise LaborError(
                f"{self.path}: a ResNet with {self.blocks} blocks per stage; labor has ResNet-101 "
                f"(3, 4, 23, 3) and ResNet-50 (3, 4, 6, 3)"
            )
        return ARCH_OF_BLOCKS[self.blocks]


_FORMAT_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]+")  # what a format prefix looks like (not a drive letter)


def parse_weights_spec(text: str) -> tuple[str | None, Path]:
    """``"FORMAT:PATH"`` -> (format, path); a PATH without a format prefix -> (None, path). A
    prefix that looks like a format but is none (``advnt:FILE``) is refused, unless the whole
    text is an existing file's name."""
    prefix, sep, rest = str(text).partition(":")
    if sep and prefix.lower() in FORMATS:
        if not rest:
            raise LaborUsageError(f"bad weights {text!r}: expected FORMAT:PATH")
        return prefix.lower(), Path(rest).expanduser()
    if sep and rest and _FORMAT_WORD.fullmatch(prefix) and not Path(text).expanduser().exists():
        raise LaborUsageError(f"{text}: unknown format {prefix!r}, expected one of {', '.join(FORMATS)}")
    return None, Path(text).expanduser()


def _not_weights(path: Path) -> str | None:
    """What a file that is plainly no torch.save file is, from its first bytes (None: it may be one)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array (.npy)"
    if h5py.is_hdf5(path):
        return "an HDF5 file (a labor artifact?), not a .pth"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged zip archive (cut off?)"
        if not any(name.endswith("/data.pkl") for name in names):
            kind = "a NumPy archive (.npz)" if names and all(n.endswith(".npy") for n in names) else "a zip archive"
            return f"{kind} without torch.save's data.pkl (holds {_describe_keys(names)})"
        return None
    if head.startswith(b"\x80"):  # a pickle: torch.save's legacy format is one
        return None
    try:  # incremental: a character cut at the end of the head is no error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return "a text file" if all(c.isprintable() or c.isspace() for c in text) else None


def _load_failure(exc: Exception) -> str:
    """torch.load's refusal in a few words: never its advice to load with weights_only=False."""
    text = str(exc)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return f"it holds Python objects, not only tensors ({unsafe.group(1)}), and labor never unpickles those"
    if "Unsupported operand" in text or "WeightsUnpickler" in text:
        return "a Python pickle, but not what torch.save writes"
    if isinstance(exc, EOFError):
        return "it ends early (cut off?)"
    first = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0][:160] or type(exc).__name__
    return f"torch.load: {type(exc).__name__}: {first}"


def load_weights_file(path: Path) -> Mapping[str, Any]:
    """torch.load with weights_only, every failure one line naming the file."""
    if not path.is_file():
        raise LaborError(f"{path}: no such file" if not path.exists() else f"{path}: is not a file")
    what = _not_weights(path)  # torch's own messages would suggest weights_only=False, which cannot help
    if what is not None:
        raise LaborError(f"{path}: not a readable PyTorch weights file: {what}")
    try:
        with warnings.catch_warnings():  # torch's warning about a pickle protocol is not the file's problem
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, a pickle with code in it, not a torch file...
        raise LaborError(f"{path}: not a readable PyTorch weights file: {_load_failure(exc)}") from exc
    if not isinstance(loaded, Mapping) or not loaded:
        raise LaborError(
            f"{path}: expected a state dict (a mapping of names to tensors), found {type(loaded).__name__}"
        )
    return loaded


def _strip(state: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Remove any of ``prefixes`` from the front of every key, as often as they appear."""
    out = {}
    for key, value in state.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        out[key] = value
    return out


def tensor_state_dict(state: Mapping[str, Any], path: Path, what: str) -> dict[str, Tensor]:
    """The tensors of a state dict, without batch-norm counters; one-line error for anything else."""
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise LaborError(f"{path}: {what} is not a state dict (expected a mapping of names to tensors)")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _describe_keys(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def detect_format(loaded: Mapping[str, Any]) -> str | None:
    """What a loaded file looks like: ripu, deeplab (Scale. prefix), caffe (adaptsegnet or advent:
    the keys cannot tell), torchvision (a plain ResNet without classifier), or None."""
    if "feature_extractor" in loaded and "classifier" in loaded:
        return "ripu"
    keys = [k for k in loaded if isinstance(k, str)]
    if any(k.startswith(("Scale.", "module.Scale.")) for k in keys):
        return "deeplab"
    plain = _strip({k: None for k in keys}, ("module.",))
    if any(k.startswith(("layer5.conv2d_list.", "layer6.conv2d_list.")) for k in plain):
        return "caffe"
    if "conv1.weight" in plain and any(k.startswith("layer4.") for k in plain):
        return "torchvision"
    return None


def read_field_model(spec: str | Path, format: str | None = None, *, need_classifier: bool = True) -> FieldModel:
    """Read ``FORMAT:PATH`` (or PATH, with ``format`` or detected) into a :class:`FieldModel`.
    With ``need_classifier`` (a conversion) the classifier's branches must not contradict the
    named format (:func:`check_named_format`); a backbone read for ``--init`` is not checked."""
    named, path = parse_weights_spec(str(spec))
    format = format or named
    if format is not None and format not in FORMATS:
        raise LaborUsageError(f"unknown weights format {format!r}: choose one of {', '.join(FORMATS)}")
    loaded = load_weights_file(path)
    found = detect_format(loaded)
    if format is None:
        if found == "caffe":
            evidence = classifier_evidence(loaded)
            likely = evidence.likely if evidence is not None else None
            hint = f"; its classifier's branches point to {likely}:{path}" if likely else ""
            raise LaborError(
                f"{path}: a DeepLab-v2 state dict (layer5/layer6 classifier) as AdaptSegNet and ADVENT "
                f"save them; their classifiers differ, so name the code that trained it: "
                f"adaptsegnet:{path} (sums two ASPP branches) or advent:{path} (sums four){hint}"
            )
        if found not in FORMATS:
            what = "a plain torchvision ResNet (no DeepLab classifier)" if found == "torchvision" else "no known layout"
            raise LaborError(f"{path}: {what}; expected a DeepLab-v2 state dict: {'; '.join(FORMATS.values())}")
        format = found
    if format == "ripu":
        model = _read_ripu(loaded, path, found)
    else:
        model = _read_caffe(loaded, path, format, found)
    if need_classifier and model.classifier is None:
        raise LaborError(f"{path}: has no DeepLab-v2 classifier (layer5/layer6): only a backbone, for --init")
    if need_classifier and format in TRAINED_BRANCHES:
        model.warnings.extend(check_named_format(format, classifier_evidence(loaded), path))
    return model


def _read_caffe(loaded: Mapping[str, Any], path: Path, format: str, found: str | None) -> FieldModel:
    if found == "ripu":
        raise LaborError(f"{path}: not {FORMATS[format]}: it is a RIPU checkpoint; try ripu:{path}")
    if found == "torchvision" and any(str(k).endswith("fc.weight") for k in loaded):
        raise LaborError(
            f"{path}: not {FORMATS[format]}: an ImageNet classifier ResNet (it has fc), in torchvision's "
            f"layout; pass it as --init {path}, without a format"
        )
    state = tensor_state_dict(_strip(loaded, ("module.", "Scale.")), path, "the file")
    notes = []
    if format == "deeplab" and found != "deeplab":
        notes.append("no Scale. prefix (read as a DeepLab-v2 state dict all the same)")
    heads = {
        name: {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
        for name in ("layer5", "layer6")
    }
    backbone = {k: v for k, v in state.items() if not k.startswith(("layer5.", "layer6.", "fc."))}
    if heads["layer6"]:
        classifier, final = heads["layer6"], "layer6"
        if heads["layer5"]:
            notes.append(
                "dropped layer5, the auxiliary classifier on layer3 (the multi-level model predicts with layer6)"
            )
    else:
        classifier, final = heads["layer5"] or None, "layer5"
    if classifier is not None:
        classifier = _check_classifier(classifier, path, final)
        if format == "adaptsegnet":
            for k in (2, 3):
                classifier[f"conv2d_list.{k}.weight"] = torch.zeros_like(classifier[f"conv2d_list.{k}.weight"])
                classifier[f"conv2d_list.{k}.bias"] = torch.zeros_like(classifier[f"conv2d_list.{k}.bias"])
            notes.append(f"{final} branches 2 and 3 set to zero: AdaptSegNet's classifier returns after its first two")
    blocks = _check_backbone(backbone, path, format)
    dilations = DILATIONS_OF_FORMAT.get(format, DEEPLAB_DILATIONS)
    return FieldModel(path, format, "caffe", blocks, backbone, classifier, notes, dilations=dilations)


def _read_ripu(loaded: Mapping[str, Any], path: Path, found: str | None) -> FieldModel:
    if found != "ripu":
        hint = (
            f"; it looks like a DeepLab-v2 state dict: try adaptsegnet:{path} or advent:{path}"
            if found in ("caffe", "deeplab")
            else ""
        )
        raise LaborError(
            f"{path}: not a RIPU checkpoint (expected a dict with 'feature_extractor' and "
            f"'classifier', found {_describe_keys(map(str, loaded))}){hint}"
        )
    features = loaded["feature_extractor"]
    heads = loaded["classifier"]
    if not isinstance(features, Mapping) or not isinstance(heads, Mapping):
        raise LaborError(f"{path}: damaged RIPU checkpoint: feature_extractor and classifier must be state dicts")
    has_tracking = any(str(k).endswith("num_batches_tracked") for k in features)
    backbone = tensor_state_dict(_strip(features, ("module.", "backbone.")), path, "feature_extractor")
    heads = tensor_state_dict(_strip(heads, ("module.",)), path, "classifier")
    classifier = _check_classifier(heads, path, "classifier")
    blocks = _check_backbone(backbone, path, "ripu")
    notes = []
    if not has_tracking:  # RIPU's FrozenBatchNorm2d: weight / sqrt(var), no eps
        for key in [k for k in backbone if k.endswith("running_var")]:
            stem = key[: -len("running_var")]
            variance = backbone[key].double()
            backbone[stem + "weight"] = (
                backbone[stem + "weight"].double() * ((variance + BN_EPS) / variance).sqrt()
            ).to(backbone[stem + "weight"].dtype)
        notes.append("batch-norm scales adjusted for RIPU's FrozenBatchNorm2d (no eps)")
    return FieldModel(path, "ripu", "torchvision", blocks, backbone, classifier, notes)


def _check_classifier(state: dict[str, Tensor], path: Path, name: str) -> dict[str, Tensor]:
    expected = {f"conv2d_list.{k}.{p}" for k in range(4) for p in ("weight", "bias")}
    if set(state) != expected:
        raise LaborError(
            f"{path}: {name} is not DeepLab-v2's four-branch ASPP classifier (expected conv2d_list.0-3 "
            f"weight and bias, found {_describe_keys(state)})"
        )
    shapes = {tuple(state[f"conv2d_list.{k}.weight"].shape) for k in range(4)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4 or next(iter(shapes))[1:] != (2048, 3, 3):
        raise LaborError(
            f"{path}: {name} does not read layer4's 2048 channels with 3x3 kernels (weights of shape {sorted(shapes)})"
        )
    return dict(state)


def _check_backbone(state: dict[str, Tensor], path: Path, format: str) -> tuple[int, ...]:
    """Blocks per stage, after checking the keys are exactly a bottleneck ResNet's."""
    blocks = [0, 0, 0, 0]
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            blocks[stage - 1] = max(blocks[stage - 1], index + 1)
    if not all(blocks):
        raise LaborError(f"{path}: not {FORMATS[format]}: no ResNet layer1-layer4 keys (found {_describe_keys(state)})")
    expected = resnet_keys(tuple(blocks))
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        parts = [
            f"{len(keys)} {what}: {_describe_keys(keys)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise LaborError(f"{path}: not {FORMATS[format]}: the ResNet keys do not fit ({'; '.join(parts)})")
    return tuple(blocks)


def resnet_keys(blocks: tuple[int, ...]) -> set[str]:
    """The state-dict keys of a bottleneck ResNet backbone with frozen batch norms, torchvision's names."""
    keys = {"conv1.weight"} | {f"bn1.{f}" for f in _BN_FIELDS}
    for stage, count in enumerate(blocks, start=1):
        for index in range(count):
            block = f"layer{stage}.{index}"
            keys |= {f"{block}.conv{k}.weight" for k in (1, 2, 3)}
            keys |= {f"{block}.bn{k}.{f}" for k in (1, 2, 3) for f in _BN_FIELDS}
        keys |= {f"layer{stage}.0.downsample.0.weight"} | {f"layer{stage}.0.downsample.1.{f}" for f in _BN_FIELDS}
    return keys


# --------------------------------------------------------------------------------------------
# Which code trained a DeepLab-v2 classifier: its branches against their initial draw

INIT_STD = 0.01  # AdaptSegNet's Classifier_Module and ADVENT's ClassifierModule: weights ~ N(0, 0.01)
INITIAL_STD_CHANGE = 0.01  # at initialisation: the weights' std within 1% of INIT_STD, ...
INITIAL_MEAN_Z = 5.0  # ... their mean within 5 standard errors of 0, every bias within its draw's bound
TRAINED_STD_CHANGE = 0.05  # trained: the std 5% or more away from INIT_STD, or a bias 3 bounds out:
TRAINED_BIAS_RATIO = 3.0  # every branch's bias gets the same gradient (the classifier sums them), so a
# shift that takes one 3 bounds out takes every branch's beyond its bound: none would still look initial
TRAINED_BRANCHES = {"adaptsegnet": (0, 1), "advent": (0, 1, 2, 3)}  # what each code's SGD updates


@dataclass(frozen=True)
class BranchStatistics:
    """One ASPP branch of a classifier, against the draw that initialised it: weights from
    N(0, INIT_STD), bias from PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    std: float  # of the weights
    mean_z: float  # the weights' mean, in standard errors of the mean of as many N(0, INIT_STD) draws
    bias_ratio: float  # the largest |bias| over the bound 1/sqrt(fan_in)

    @classmethod
    def of(cls, weight: Tensor, bias: Tensor) -> BranchStatistics:
        weight = weight.double()
        mean_z = float(weight.mean()) / (INIT_STD / weight.numel() ** 0.5)
        return cls(float(weight.std()), mean_z, float(bias.double().abs().max()) * weight[0].numel() ** 0.5)

    @property
    def state(self) -> str:
        """initial (as drawn), trained (moved far from the draw) or unclear."""
        change = abs(self.std / INIT_STD - 1)
        if change < INITIAL_STD_CHANGE and abs(self.mean_z) < INITIAL_MEAN_Z and self.bias_ratio <= 1 + 1e-6:
            return "initial"
        return "trained" if change >= TRAINED_STD_CHANGE or self.bias_ratio > TRAINED_BIAS_RATIO else "unclear"


@dataclass(frozen=True)
class ClassifierEvidence:
    """The branch statistics of the classifier a conversion keeps (layer6 of a multi-level model,
    layer5 of a single-level one)."""

    name: str
    branches: list[BranchStatistics]

    def states(self, branches: tuple[int, ...]) -> set[str]:
        return {self.branches[k].state for k in branches}

    @property
    def likely(self) -> str | None:
        """The code whose training the statistics show: adaptsegnet (branches 0 and 1 trained, 2
        and 3 as drawn), advent (all four trained), or None (too weak to say)."""
        first, last = self.states((0, 1)), self.states((2, 3))
        if first == {"trained"} and last == {"initial"}:
            return "adaptsegnet"
        if first == {"trained"} and last == {"trained"}:
            return "advent"
        return None

    def describe(self) -> str:
        stds = ", ".join(f"{b.std:.4f}" for b in self.branches)
        biases = ", ".join(f"{b.bias_ratio:.2f}" for b in self.branches)
        return (
            f"{self.name} branches 0-3: weight std {stds} (as initialised: {INIT_STD}), "
            f"largest |bias| {biases} of the initial bound"
        )


def classifier_evidence(loaded: Mapping[str, Any]) -> ClassifierEvidence | None:
    """The branch statistics of a DeepLab-v2 state dict's final classifier (None: it has none)."""
    state = _strip({str(k): v for k, v in loaded.items()}, ("module.", "Scale."))
    name = "layer6" if any(k.startswith("layer6.") for k in state) else "layer5"
    tensors = [
        (state.get(f"{name}.conv2d_list.{k}.weight"), state.get(f"{name}.conv2d_list.{k}.bias")) for k in range(4)
    ]
    if not all(isinstance(w, Tensor) and isinstance(b, Tensor) and w.ndim == 4 and w.numel() for w, b in tensors):
        return None
    return ClassifierEvidence(name, [BranchStatistics.of(w, b) for w, b in tensors])


def check_named_format(format: str, evidence: ClassifierEvidence | None, path: Path) -> list[str]:
    """Refuse ``adaptsegnet`` for a file whose classifier shows ADVENT's training (all four branches
    trained) and ``advent`` for one that shows AdaptSegNet's (0 and 1 trained, 2 and 3 as drawn);
    the warnings where the evidence is weaker."""
    if evidence is None:
        return []
    likely = evidence.likely
    if likely == "adaptsegnet" and format == "advent":
        raise LaborError(
            f"{path}: not ADVENT's: branches 0 and 1 of its classifier are trained and 2 and 3 as initialised, "
            f"as AdaptSegNet's code leaves them ({evidence.describe()}); convert it as adaptsegnet:{path}"
        )
    if likely == "advent" and format == "adaptsegnet":
        raise LaborError(
            f"{path}: not AdaptSegNet's: all four branches of its classifier are trained, where AdaptSegNet's "
            f"code never updates 2 and 3 ({evidence.describe()}); convert it as advent:{path}"
        )
    if evidence.states((0, 1, 2, 3)) == {"initial"}:
        return [f"every branch of {evidence.name} is as initialised (untrained?): adaptsegnet and advent look alike"]
    last = evidence.states((2, 3))
    if format == "adaptsegnet" and last != {"initial"}:
        return [
            f"branches 2 and 3 of the classifier are not all as initialised ({evidence.describe()}), as "
            f"AdaptSegNet's code leaves them; if ADVENT's code trained it, convert advent:{path}"
        ]
    untrained = [str(k) for k, branch in enumerate(evidence.branches) if branch.state != "trained"]
    if format == "advent" and untrained:
        which = f"branch {untrained[0]} does" if len(untrained) == 1 else f"branches {', '.join(untrained)} do"
        return [
            f"{which} not look trained ({evidence.describe()}), where ADVENT's code trains all four; if "
            f"AdaptSegNet's code trained it, convert adaptsegnet:{path}"
        ]
    return []


# --------------------------------------------------------------------------------------------
# Into labor's networks


def new_backbone(model: FieldModel):
    """An empty backbone of the model's layout and depth (any depth for the caffe layout)."""
    from labor_cli.models.deeplab import ResNetBackbone
    from labor_cli.models.deeplab_caffe import CaffeResNetBackbone

    if model.layout == "caffe":
        return CaffeResNetBackbone(model.blocks)
    return ResNetBackbone(101 if model.arch == "deeplabv2-r101" else 50)


def load_backbone(backbone, model: FieldModel) -> None:
    from labor_cli.models.deeplab import load_backbone_state

    load_backbone_state(backbone, model.backbone, str(model.path))


def load_classifier(classifier, model: FieldModel) -> None:
    """Into an ASPPv2 with the branches the model's code sums (``model.dilations``), or with all four
    of DeepLab-v2 (dilations 6, 12, 18, 24 in all three codes; a two-branch model's others hold zeros)."""
    if classifier.dilations not in (model.dilations, DEEPLAB_DILATIONS):
        raise LaborError(
            f"{model.path}: the classifier has dilations {', '.join(map(str, model.dilations))}, "
            f"labor's {classifier.dilations}"
        )
    state = classifier.state_dict()
    for key, target in state.items():
        if tuple(target.shape) != tuple(model.classifier[key].shape):
            raise LaborError(
                f"{model.path}: classifier {key} has shape {tuple(model.classifier[key].shape)}, "
                f"labor's {tuple(target.shape)}"
            )
    classifier.load_state_dict({key: model.classifier[key] for key in state})


def split_heads(classifier, head1, head2, seed: int = 0) -> None:
    """B's two heads from A's classifier: each reads a random half of the feature channels, with
    twice A's weights there and zero elsewhere, and A's bias. Their mean is A's classifier
    exactly, and they disagree where the two halves of the features do (an estimate of A's
    uncertainty in the spirit of dropout), so the inconsistency mask is neither empty (two
    copies would agree everywhere, and the discrepancy loss would never pull them apart) nor
    the noise of untrained heads. Seeded: the same seed gives the same halves."""
    channels = classifier.conv2d_list[0].weight.shape[1]
    generator = torch.Generator().manual_seed(seed)
    first = torch.zeros(channels, dtype=torch.bool)
    first[torch.randperm(channels, generator=generator)[: channels // 2]] = True
    with torch.no_grad():
        for source, one, two in zip(classifier.conv2d_list, head1.conv2d_list, head2.conv2d_list):
            half = first.to(source.weight.dtype).view(1, -1, 1, 1)
            one.weight.copy_(source.weight * 2 * half)
            two.weight.copy_(source.weight * 2 * (1 - half))
            one.bias.copy_(source.bias)
            two.bias.copy_(source.bias)


def read_discriminator(spec: str | Path, num_classes: int) -> dict[str, Tensor]:
    """D's state dict from AdaptSegNet's FCDiscriminator (conv1-4, classifier: labor's names) or
    ADVENT's get_fc_discriminator (an nn.Sequential: 0, 2, 4, 6, 8), for ``num_classes`` inputs."""
    _, path = parse_weights_spec(str(spec))
    state = tensor_state_dict(_strip(load_weights_file(path), ("module.",)), path, "the file")
    names = ("conv1", "conv2", "conv3", "conv4", "classifier")
    sequential = {f"{i * 2}.{p}": f"{name}.{p}" for i, name in enumerate(names) for p in ("weight", "bias")}
    if set(state) == set(sequential):
        state = {sequential[k]: v for k, v in state.items()}
    expected = {f"{name}.{p}" for name in names for p in ("weight", "bias")}
    if set(state) != expected:
        raise LaborError(
            f"{path}: not AdaptSegNet's or ADVENT's discriminator (expected conv1-4 and classifier, or "
            f"0-8 of an nn.Sequential; found {_describe_keys(state)})"
        )
    if state["conv1.weight"].shape[1] != num_classes:
        raise LaborError(
            f"{path}: a discriminator for {state['conv1.weight'].shape[1]} classes, the model has {num_classes}"
        )
    return state


def class_set_for(model: FieldModel, class_set: str | None = None) -> str:
    """The labor class set of a model's classifier: 19 classes -> cityscapes19, 16 -> synthia16
    (the order of both is the one AdaptSegNet, ADVENT and RIPU train with)."""
    from labor_cli.data.labels import class_names

    count = model.num_classes
    if class_set is not None:
        if len(class_names(class_set)) != count:
            raise LaborError(
                f"{model.path}: the classifier has {count} classes, class set {class_set} {len(class_names(class_set))}"
            )
        return class_set
    if count not in CLASS_SET_OF_COUNT:
        raise LaborError(
            f"{model.path}: the classifier has {count} classes; labor's class sets have 19 (cityscapes19) "
            f"or 16 (synthia16) (use the file's backbone with --init instead)"
        )
    return CLASS_SET_OF_COUNT[count]


def networks_from_field(model: FieldModel, selector_backbone: str = "separate", seed: int = 0):
    """labor's Networks holding the model as A; B's backbone a copy of A's (separate mode), B's
    heads split from A's classifier (:func:`split_heads`), D fresh (seeded)."""
    from labor_cli.models import build_networks

    torch.manual_seed(seed)
    networks = build_networks(
        model.arch,
        model.num_classes,
        selector_backbone=selector_backbone,
        backbone_layout=model.layout,
        classifier_dilations=model.dilations,
    )
    load_backbone(networks.segmenter.backbone, model)
    load_classifier(networks.segmenter.classifier, model)
    if networks.selector.backbone is not None:
        load_backbone(networks.selector.backbone, model)
    split_heads(networks.segmenter.classifier, networks.selector.head1, networks.selector.head2, seed)
    return networks.eval()


def file_digest(path: Path) -> str:
    """sha256 of a file, for the record of where a converted checkpoint came from."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
