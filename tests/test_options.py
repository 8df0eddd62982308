"""Options declared once (labor_cli/options.py): every one reaches its stage, --help shows each
command its own options with their choices, --config files are checked, artifacts record them."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labor_cli import options as declarations
from labor_cli.cli import app, main
from labor_cli.errors import LaborError
from labor_cli.options import COMMAND_OPTIONS, AdaptOptions, TrainConfig, WarmupOptions, declared, stored_config
from labor_cli.resume import check_same_run

# The function each command hands its options to (module, name).
RECEIVERS = {
    "warmup": ("labor_cli.stages.train", "run_training_stage"),
    "adapt": ("labor_cli.stages.train", "run_training_stage"),
    "extract": ("labor_cli.stages.extract", "run_extract"),
    "select": ("labor_cli.stages.select", "run_select"),
    "label": ("labor_cli.stages.label", "run_label"),
    "export": ("labor_cli.stages.exchange", "run_export"),
    "import": ("labor_cli.stages.exchange", "run_import"),
    "annotate": ("labor_cli.stages.annotate", "run_annotate"),
    "show": ("labor_cli.stages.show", "run_show"),
    "evaluate": ("labor_cli.stages.evaluate", "run_evaluate"),
    "demo": ("labor_cli.stages.demo", "run_demo"),
    "convert": ("labor_cli.stages.convert", "run_convert"),
    "predict": ("labor_cli.stages.predict", "run_predict"),
    "plot": ("labor_cli.stages.plot", "run_plot"),
    "data check": ("labor_cli.data.check", "run_data_check"),
}
# The keys of each artifact's config as labor wrote them before the options were declared
# (an old resume file must still compare equal); the stage adds the keys that are no option.
STORED_KEYS = {
    "warmup": {
        "stage",
        "source",
        "source_split",
        "target",
        "target_split",
        "start_from",
        "labels",
        "arch",
        "init",
        "selector_backbone",
        "class_set",
        "precision",
        "device",
        "compile",
        "workers",
        "train",
    },
    "extract": {
        "model",
        "target",
        "split",
        "exclude",
        "candidates_per_class",
        "uncertain_per_image",
        "mask_share",
        "input_size",
        "batch_size",
        "device",
        "precision",
        "compile",
    },
    "select": {
        "masks",
        "mode",
        "points",
        "ratio",
        "min_spacing",
        "seed",
        "spacing_pool_factor",
        "balance_power",
        "strata",
    },
    "label": {"selection", "target", "split", "merge", "masks", "annotator"},
    "import": {"answers", "selection", "format", "annotator"},
    "annotate": {
        "selection",
        "target",
        "split",
        "merge",
        "min_region",
        "idle_cap",
        "annotator_name",
        "annotator",
        "unit",
        "regions",
        "journal",
        "session",
        "journal_records",
    },
    "evaluate": {
        "model",
        "target",
        "split",
        "input_size",
        "device",
        "precision",
        "compile",
        "batch_size",
        "protocol",
        "ensemble",
    },
}
STORED_KEYS["adapt"] = STORED_KEYS["warmup"]
FACTS = {  # keys the stage adds to the declared options' (facts, not options)
    "warmup": {"stage", "start_from", "labels", "workers"},
    "adapt": {"stage", "arch", "init", "selector_backbone", "class_set", "workers"},
    "select": {"spacing_pool_factor"},
    "label": {"annotator"},
    "import": {"format", "annotator"},
    "annotate": {"annotator", "unit", "regions", "journal", "session", "journal_records"},
}
TRAIN_KEYS = {
    "iterations",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "power",
    "lr_discriminator",
    "betas",
    "lambda_adv",
    "lambda_target",
    "lambda_pseudo",
    "lambda_dis",
    "pseudo_alpha",
    "pseudo_from",
    "mask_share",
    "source_batch",
    "target_batch",
    "hflip",
    "source_size",
    "target_size",
    "seed",
    "save_every",
    "log_every",
}
BY_COMMAND = {cls.COMMAND: cls for cls in COMMAND_OPTIONS}


class Received(Exception):
    """Raised by a stand-in stage: what the command handed it."""


def non_default(option: declarations.Declared, folder: Path) -> tuple[str | None, object]:
    """Command-line text that sets ``option`` to a value other than its default, and that value
    (text None: a flag)."""
    kind, default = option.value_type, option.default
    if kind is bool:
        assert default is False, option.name
        return None, True
    if option.spec.choices:
        choice = next(c for c in option.spec.choices if c != default)
        return choice, choice
    if option.spec.parse is not None:
        return "33x22", (33, 22)
    if typing.get_origin(kind) is list:  # given once here (plot's files, --label)
        return f"value-of-{option.name}", [f"value-of-{option.name}"]
    if kind is Path:
        path = folder / f"{option.name}.toml"
        path.write_text("")  # --config reads it: an empty file sets nothing
        return str(path), path
    if kind is int:
        value = 7 if default in (None, declarations.REQUIRED) else default + 3
        return str(value), value
    if kind is float:
        value = 0.125 if default in (None, declarations.REQUIRED, 0.125) else default + 0.5
        return repr(value), value
    assert kind is str, (option.name, kind)
    return f"value-of-{option.name}", f"value-of-{option.name}"


def command_line(options_class: type, folder: Path) -> tuple[list[str], dict]:
    argv, expected = options_class.COMMAND.split(), {}
    for option in declared(options_class):
        text, expected[option.name] = non_default(option, folder)
        if option.spec.argument:
            argv.append(text)
        else:
            argv += [option.flag] if text is None else [option.flag, text]
    return argv, expected


def value_of(options, name: str):
    """A field of an options object or of its nested group."""
    for f in dataclasses.fields(options):
        if f.name == name:
            return getattr(options, name)
        if f.metadata.get("group"):
            inner = getattr(options, f.name)
            if name in {g.name for g in dataclasses.fields(inner)}:
                return getattr(inner, name)
    raise AssertionError(f"{type(options).__name__} has no {name}")


def invoke(argv: list[str]):
    return CliRunner().invoke(app, argv)


@pytest.mark.parametrize("command", list(RECEIVERS))
def test_every_option_set_on_the_command_line_reaches_the_stage(tmp_path, monkeypatch, command):
    import importlib

    module, function = RECEIVERS[command]

    def stage(options, **kwargs):
        raise Received(options)

    monkeypatch.setattr(importlib.import_module(module), function, stage)
    argv, expected = command_line(BY_COMMAND[command], tmp_path)
    result = invoke(argv)
    assert isinstance(result.exception, Received), (argv, result.output, result.exception)
    options = result.exception.args[0]
    assert isinstance(options, BY_COMMAND[command])
    for name, value in expected.items():
        assert value_of(options, name) == value, name
    if command in STORED_KEYS:  # what the artifact records: every stored option, under its old key
        stored = stored_config(options)
        assert set(stored) | FACTS.get(command, set()) == STORED_KEYS[command]
        for option in declared(BY_COMMAND[command]):
            key = option.spec.stored_as or option.name
            if option.spec.stored and option.name not in TRAIN_KEYS:
                assert stored[key] == json.loads(json.dumps(declarations._plain(expected[option.name]))), key
            elif not option.spec.stored:
                assert key not in stored, key
        if "train" in stored:
            assert set(stored["train"]) == TRAIN_KEYS
            for name in TRAIN_KEYS & set(expected):
                assert stored["train"][name] == declarations._plain(expected[name]), name


def test_data_toy_inspect_and_bench_hand_on_every_option(tmp_path, monkeypatch):
    import labor_cli.data.toy as toy
    import labor_cli.runtime as runtime
    import labor_cli.stages.bench as bench
    import labor_cli.stages.inspect as inspect

    calls = {}

    def recorder(name, result):
        def record(*args, **kwargs):
            calls[name] = (args, kwargs)
            return result

        return record

    monkeypatch.setattr(toy, "make_toy_pair", recorder("toy", {}))
    argv, expected = command_line(declarations.ToyOptions, tmp_path)
    invoke(argv)
    assert calls["toy"] == (
        (expected["directory"],),
        {
            "seed": 3,
            "size": "tiny",
            "force": True,
            "shift": "night",
            "source_layout": "synthia",
        },
    )

    monkeypatch.setattr(inspect, "describe", lambda path: {"described": str(path)})
    argv, expected = command_line(declarations.InspectOptions, tmp_path)
    assert json.loads(invoke(argv).output) == {"described": str(expected["artifact"])}

    monkeypatch.setattr(bench, "run_bench", recorder("bench", []))
    monkeypatch.setattr(bench, "bench_extract_end_to_end", recorder("e2e", {"images": 7}))
    monkeypatch.setattr(bench, "profile_bench", recorder("profile", None))
    monkeypatch.setattr(runtime, "resolve_device", lambda spec: "cpu")
    argv, o = command_line(declarations.BenchOptions, tmp_path)
    o["profile"].unlink()  # --profile names a folder to write into; a file there is refused
    pipeline = ["--pipeline", "--pipeline-images", str(o["pipeline_images"]), "--pipeline-size", "33x22"]
    argv = [a for a in argv if a not in pipeline]  # --pipeline runs alone (below)
    printed = json.loads(invoke(argv).output)  # --json
    assert printed["device"] == "cpu" and printed["results"] == [] and printed["extract_end_to_end"] == {"images": 7}
    bench_args = (o["arch"], o["device"], o["repeats"], o["warmup"], o["compile"], o["selector_backbone"])
    assert calls["bench"] == (bench_args, {})
    assert calls["e2e"] == (
        (o["arch"], o["device"], o["e2e_images"], o["workers"], o["batch_size"], o["selector_backbone"]),
        {"compile": o["compile"], "profile_dir": o["profile"]},
    )
    assert calls["profile"] == (([], o["profile"], o["arch"], o["device"], o["compile"], o["selector_backbone"]), {})
    monkeypatch.setattr(bench, "bench_pipeline", recorder("pipeline", None))
    monkeypatch.setattr(bench, "print_pipeline", recorder("print_pipeline", None))
    invoke(["bench", *pipeline, "--batch-size", str(o["batch_size"]), "--device", o["device"], "--json"])
    assert calls["pipeline"] == ((o["pipeline_images"], o["pipeline_size"], o["batch_size"], o["device"]), {})
    assert calls["print_pipeline"] == ((None, True), {})


@pytest.mark.parametrize("options_class", [WarmupOptions, AdaptOptions])
def test_every_option_a_config_file_may_set_reaches_the_stage_and_the_command_line_wins(
    tmp_path, monkeypatch, options_class
):
    import labor_cli.stages.train as train

    def stage(options, **kwargs):
        raise Received(options)

    monkeypatch.setattr(train, "run_training_stage", stage)
    required, _ = command_line(options_class, tmp_path)
    in_file = [o for o in declared(options_class) if o.spec.in_file]
    expected = {o.name: non_default(o, tmp_path) for o in in_file}
    lines = []
    for name, (text, value) in expected.items():
        toml = json.dumps(text) if isinstance(value, (str, tuple)) else json.dumps(value)  # a size as its text
        key = "lr-discriminator" if name == "lr_discriminator" else name  # keys may be spelt with hyphens too
        lines.append(f"{key} = {toml}")
    (tmp_path / "all.toml").write_text("\n".join(lines) + "\n")
    # the command line: the required options, --config, and one option that overrides the file
    argv = [options_class.COMMAND]
    for option in declared(options_class):
        if option.required:
            argv += [option.flag, str(non_default(option, tmp_path)[0])]
    argv += ["--config", str(tmp_path / "all.toml"), "--lr", "0.75"]
    result = invoke(argv)
    assert isinstance(result.exception, Received), result.output
    options = result.exception.args[0]
    for name, (_, value) in expected.items():
        assert value_of(options, name) == (0.75 if name == "lr" else value), name
    assert len(in_file) > 25


@pytest.mark.parametrize(
    "content, needles",
    [
        ("iterations = 5\nlr_typo = 0.1\n", ["lr_typo", "not an option of labor warmup"]),
        ("lambda_target = 0.5\n", ["lambda_target", "not an option of labor warmup"]),  # adapt only
        ("quiet = true\n", ["quiet", "not settable from a file", "--quiet"]),
        ("force = true\nresume = true\n", ["force, resume", "not settable"]),
        ("output = 'x.h5'\n", ["output", "not settable"]),
        ("iterations = 'many'\n", ["iterations", "'many'", "expected int"]),
        ("hflip = 1\n", ["hflip", "expected bool"]),
        ("optimizer = 'adam'\n", ["optimizer", "'adam'", "sgd, adamw"]),
        ("source_size = '12 by 4'\n", ["--source-size", "WIDTHxHEIGHT"]),
        ("iterations = \n", ["not valid TOML"]),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_key_and_the_file(tmp_path, capsys, content, needles):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "warmup",
                "--source",
                "gta5:x",
                "--target",
                "cityscapes:y",
                "-o",
                str(tmp_path / "w.h5"),
                "--config",
                str(config),
            ]
        )
    err = capsys.readouterr().err
    assert stop.value.code in (1, 2) and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and str(config) in err
    for needle in needles:
        assert needle in err
    assert not (tmp_path / "w.h5").exists()


def test_the_presets_give_the_demo_protocol():
    warmup = declarations.values_from_file(Path("toy-warmup"), WarmupOptions)
    adapt = declarations.values_from_file(Path("toy-adapt"), AdaptOptions)
    assert warmup["arch"] == "small" and warmup["selector_backbone"] == "shared" and warmup["iterations"] == 750
    assert adapt["iterations"] == 300 and adapt["lambda_pseudo"] == 1.0
    built = declarations.build(WarmupOptions, {**warmup, "source": "s", "target": "t", "output": Path("o")})
    assert built.train.optimizer == "adamw" and built.train.lr == 0.002 and built.train.hflip is True


def test_each_command_offers_only_its_own_options_with_their_choices():
    warmup, adapt = invoke(["warmup", "--help"]).output, invoke(["adapt", "--help"]).output
    assert "--lambda-target" not in warmup and "--lambda-target" in adapt
    assert "--pseudo-from" in warmup and "--pseudo-from" not in adapt
    for both in ("--lambda-pseudo", "--pseudo-alpha", "--mask-share", "--lambda-dis"):
        assert both in warmup and both in adapt
    for warmup_only in ("--arch", "--init", "--selector-backbone", "--classes"):
        assert warmup_only in warmup and warmup_only not in adapt
    assert "[sgd|adamw]" in warmup and "[auto|fp32|bf16]" in warmup and "[auto|on|off]" in warmup
    assert "[deeplabv2-r101|deeplabv2-r50|small]" in warmup and "[separate|shared]" in warmup
    assert "[cityscapes19|synthia16]" in warmup
    assert "[ppl|spl|balanced|random|entropy]" in invoke(["select", "--help"]).output
    assert "[csv|json]" in invoke(["export", "--help"]).output
    assert "[default|tiny|full]" in invoke(["data", "toy", "--help"]).output
    assert "[gta5|synthia]" in invoke(["data", "toy", "--help"]).output
    assert "[curves|budget|classes]" in invoke(["plot", "--help"]).output
    assert "[cityscapes19|synthia16]" in invoke(["convert", "--help"]).output
    assert "[photo|night]" in invoke(["data", "toy", "--help"]).output
    assert "[deeplabv2-r101|deeplabv2-r50|small]" in invoke(["bench", "--help"]).output


@pytest.mark.parametrize(
    "argv",
    [
        ["warmup", "--source", "s", "--target", "t", "-o", "w.h5", "--optimizer", "adam"],
        ["select", "--masks", "m.h5", "--mode", "greedy", "-o", "s.h5"],
        ["extract", "-m", "m.h5", "--target", "t", "-o", "x.h5", "--precision", "fp8"],
        ["evaluate", "-m", "m.h5", "--target", "t", "-o", "x.h5", "--compile", "yes"],
        ["warmup", "--source", "s", "--target", "t", "-o", "w.h5", "--lambda-target", "0.5"],  # adapt only
        [
            "adapt",
            "-m",
            "w.h5",
            "--labels",
            "l.h5",
            "--source",
            "s",
            "--target",
            "t",
            "-o",
            "a.h5",
            "--pseudo-from",
            "5",
        ],
    ],
)
def test_a_wrong_choice_or_another_commands_option_is_a_usage_error(argv):
    result = invoke(argv)
    assert result.exit_code == 2, result.output


def test_export_format_ignores_case(monkeypatch):
    import labor_cli.stages.exchange as exchange

    def stage(options):
        raise Received(options)

    monkeypatch.setattr(exchange, "run_export", stage)
    result = invoke(["export", "sel.h5", "-o", "out", "--format", "JSON"])
    assert result.exception.args[0].fmt == "json"


def test_the_choices_are_those_the_modules_accept():
    from labor_cli import models, runtime
    from labor_cli.data import labels, toy

    assert declarations.ARCHS == models.ARCHS
    assert declarations.SELECTOR_BACKBONES == models.SELECTOR_BACKBONES
    assert declarations.CLASS_SETS == tuple(labels.CLASS_SETS)
    assert declarations.PRECISIONS == runtime.PRECISIONS and declarations.COMPILE_CHOICES == runtime.COMPILE_CHOICES
    assert declarations.TOY_SIZES == tuple(toy.PRESETS)
    assert declarations.TOY_SHIFTS == toy.SHIFTS
    assert declarations.TOY_SOURCE_LAYOUTS == toy.SOURCE_LAYOUTS


def test_train_config_keeps_its_fields_and_defaults():
    """TrainConfig is the stored "train" config of every checkpoint: its names stay readable."""
    config = TrainConfig()
    assert set(config.as_dict()) == TRAIN_KEYS
    assert config.iterations == 40000 and config.optimizer == "sgd" and config.lr == 2.5e-4
    assert config.betas == (0.9, 0.99) and config.pseudo_alpha == 0.2 and config.source_size is None
    assert typing.get_type_hints(TrainConfig)["source_size"] == typing.Optional[tuple[int, int]]  # noqa: UP045 - the form options.py declares


def test_the_warm_checkpoint_records_the_config_the_earlier_code_did(warm_checkpoint, toy_source, toy_target):
    """The conftest warmup's config, key for key and value for value, as labor wrote it before the
    options were declared: an older run's resume file still passes the same-run check."""
    from conftest import tiny_train_config

    from labor_cli import artifacts

    before = {
        "stage": "warmup",
        "source": toy_source,
        "source_split": "train",
        "target": toy_target,
        "target_split": "train",
        "start_from": None,
        "labels": None,
        "arch": "small",
        "init": "none",
        "selector_backbone": "separate",
        "class_set": "cityscapes19",
        "precision": "fp32",
        "device": "cpu",
        "compile": False,
        "workers": 0,
        "train": json.loads(json.dumps(dataclasses.asdict(tiny_train_config()))),
    }
    config = artifacts.load_checkpoint(warm_checkpoint).config
    assert config == before
    check_same_run(warm_checkpoint, before, config)


def test_a_resume_file_from_before_an_option_existed_counts_as_its_default(tmp_path):
    """A stored config that lacks options added since (here a training one and a stage one) equals
    a run that uses their defaults, and differs from one that does not."""
    defaults = declarations.stored_defaults(AdaptOptions)
    now = {**defaults, "stage": "adapt", "start_from": "warmup.h5", "device": "cpu", "compile": False}
    older = json.loads(json.dumps(now))
    del older["train"]["pseudo_alpha"], older["target_split"]
    check_same_run(tmp_path / "r.h5", older, now, defaults=defaults)
    with pytest.raises(LaborError, match=r"r\.h5: was saved by a different run \(target_split"):
        check_same_run(tmp_path / "r.h5", older, {**now, "target_split": "val"}, defaults=defaults)
    changed = {**now, "train": {**now["train"], "pseudo_alpha": 0.5}}
    with pytest.raises(LaborError, match=r"different run \(train.pseudo_alpha: 0.2 there, 0.5 now\)"):
        check_same_run(tmp_path / "r.h5", older, changed, defaults=defaults)
    with pytest.raises(LaborError, match="different run"):  # without defaults a missing key differs
        check_same_run(tmp_path / "r.h5", older, now)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"momentum": 1.0}, r"--momentum 1.0: must be in \[0, 1\)"),
        ({"momentum": -0.1}, "--momentum"),
        ({"power": -1.0}, r"--power -1.0: must be >= 0"),
        ({"lr_discriminator": -1e-4}, "--lr-d"),
        ({"pseudo_from": -5}, "--pseudo-from"),
        ({"iterations": 0}, "--iterations 0: must be positive"),
    ],
)
def test_training_values_out_of_range_are_usage_errors(values, message):
    TrainConfig().check()  # the defaults pass
    with pytest.raises(declarations.LaborUsageError, match=message):
        TrainConfig(**values).check()
