"""labor convert: a DeepLab-v2 from AdaptSegNet, ADVENT or RIPU as a labor checkpoint.

A holds the converted model (the same outputs as the network it was trained in, on the same
image); B's backbone is a copy of A's (or A's own, ``--selector-backbone shared``) and B's two
heads are A's classifier split over two random halves of the feature channels
(labor_cli.models.convert.split_heads); D is fresh unless ``--discriminator`` gives one. The
checkpoint starts `labor extract` (a first round straight from the field's model) or `labor
adapt`, and its config records the source file and its sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labor_cli import artifacts
from labor_cli.artifacts import TrainingState
from labor_cli.console import stderr, stdout
from labor_cli.data.labels import class_names
from labor_cli.models.convert import (
    DEEPLAB_DILATIONS,
    class_set_for,
    file_digest,
    networks_from_field,
    parse_weights_spec,
    read_discriminator,
    read_field_model,
)
from labor_cli.options import ConvertOptions


@dataclass
class ConvertResult:
    output: Path
    format: str
    arch: str
    backbone_layout: str
    class_set: str
    notes: list[str]
    warnings: list[str]


def run_convert(options: ConvertOptions) -> ConvertResult:
    output, discriminator = Path(options.output), options.discriminator
    field_files = [options.weights] + ([discriminator] if discriminator is not None else [])
    artifacts.check_output_path(output, options.force, inputs=tuple(parse_weights_spec(f)[1] for f in field_files))
    model = read_field_model(options.weights)
    class_set = class_set_for(model, options.classes)
    networks = networks_from_field(model, selector_backbone=options.selector_backbone, seed=options.seed)
    notes = list(model.notes)
    if model.dilations != DEEPLAB_DILATIONS:
        notes.append(
            f"A's classifier and B's heads keep the {len(model.dilations)} branches {model.format}'s classifier sums "
            f"(dilations {', '.join(map(str, model.dilations))}): training never updates the ones it never used"
        )
    if discriminator is not None:
        networks.discriminator.load_state_dict(read_discriminator(discriminator, model.num_classes))
    else:
        notes.append("D is fresh (pass --discriminator to start from the field's)")
    config = {
        "stage": "convert",
        "weights": str(options.weights),
        "format": model.format,
        "sha256": file_digest(model.path),
        "discriminator": str(discriminator) if discriminator else None,
        "arch": model.arch,
        "backbone_layout": model.layout,
        "selector_backbone": options.selector_backbone,
        "selector_heads": "split from A's classifier",
        "class_set": class_set,
        "classifier_dilations": list(model.dilations),
        "seed": options.seed,
        "notes": notes,
        "warnings": model.warnings,
    }
    with artifacts.create_artifact(output, "checkpoint", config, [], options.force) as f:
        artifacts.write_checkpoint(
            f, networks, class_set, list(class_names(class_set)), TrainingState("convert", 0, 0, {}, {})
        )
    return ConvertResult(output, model.format, model.arch, model.layout, class_set, notes, model.warnings)


def print_convert(result: ConvertResult) -> None:
    stdout.print(
        f"{result.output}: {result.arch} ({result.backbone_layout} layout) from {result.format}, "
        f"classes {result.class_set}",
        soft_wrap=True,
    )
    for note in result.notes:
        stdout.print(f"  {note}", soft_wrap=True)
    for warning in result.warnings:
        stderr.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)
