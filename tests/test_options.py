"""Options declared once (labor_cli/options.py): every one reaches its stage, --help shows each
command its own options with their choices, --config files are checked, artifacts record them."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labor_cli import options as declarations
from labor_cli.cli import app, main
from labor_cli.errors import LaborError
from labor_cli.option_machinery import (
    REQUIRED,
    Declared,
    build,
    declared,
    plain,
    stored_config,
    stored_defaults,
    values_from_file,
)
from labor_cli.options import AdaptOptions, AnnotateOptions, TrainConfig, WarmupOptions
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
    "data toy": ("labor_cli.data.toy", "make_toy_pair"),
    "bench": ("labor_cli.stages.bench", "run_bench"),
}
# The options class of every command, as labor_cli/cli.py registered them.
BY_COMMAND = {
    " ".join(name for name in (group, command.name) if name): command.callback.options_class
    for group, typer_app in (("", app), *((g.name, g.typer_instance) for g in app.registered_groups))
    for command in typer_app.registered_commands
}
# Keys the stage adds to the declared options' (facts, not options).
FACTS = {
    "warmup": {"stage", "start_from", "labels", "workers"},
    "adapt": {"stage", "arch", "init", "selector_backbone", "class_set", "workers"},
    "select": {"spacing_pool_factor", "min_spacing"},
    "label": {"annotator"},
    "import": {"format", "annotator"},
    "annotate": {"annotator", "unit", "regions", "journal", "session", "journal_records"},
}
# Values the made-up non-default ones would put out of range (the groups check themselves when made).
IN_RANGE = {"momentum": 0.5}
# Options left off the command line where they exclude another one given (select: --points).
LEFT_OFF = {"select": {"ratio"}, "bench": {"pipeline"}}


class Received(Exception):
    """Raised by a stand-in stage: what the command handed it."""


def non_default(option: Declared, folder: Path) -> tuple[str | None, object]:
    """Command-line text that sets ``option`` to a value other than its default, and that value
    (text None: a flag)."""
    kind, default = option.value_type, option.default
    if option.name in IN_RANGE:
        return repr(IN_RANGE[option.name]), IN_RANGE[option.name]
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
        value = 7 if default in (None, REQUIRED) else default + 3
        return str(value), value
    if kind is float:
        value = 0.125 if default in (None, REQUIRED, 0.125) else default + 0.5
        return repr(value), value
    assert kind is str, (option.name, kind)
    return f"value-of-{option.name}", f"value-of-{option.name}"


def command_line(options_class: type, folder: Path) -> tuple[list[str], dict]:
    argv, expected = options_class.COMMAND.split(), {}
    for option in declared(options_class):
        if option.name in LEFT_OFF.get(options_class.COMMAND, ()):
            continue
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
    expected.update({name: value_of(options, name) for name in LEFT_OFF.get(command, ())})
    # what the artifact records: every stored option under its stored key, and nothing else
    stored, own_fields = stored_config(options), {f.name for f in dataclasses.fields(options)}
    keys = set()
    for option in declared(BY_COMMAND[command]):
        key = option.spec.stored_as or option.name
        if option.name not in own_fields:  # the train group's
            keys.add("train")
            assert stored["train"][option.name] == plain(expected[option.name]), option.name
        elif option.spec.stored:
            keys.add(key)
            assert stored[key] == json.loads(json.dumps(plain(expected[option.name]))), key
        else:
            assert key not in stored, key
    assert set(stored) == keys
    if "train" in stored:  # the whole group, the fields no command line sets (betas) too
        assert set(stored["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_renamed_options_keep_the_keys_earlier_artifacts_recorded():
    """Known answers: the stored names that differ from the option's, and options never stored."""
    warmup = WarmupOptions(source="s", target="t", output=Path("w.h5"), classes="synthia16", workers=3)
    adapt = AdaptOptions(source="s", target="t", output=Path("a.h5"), model=Path("w.h5"), labels=Path("l.h5"))
    assert stored_config(warmup)["class_set"] == "synthia16" and "classes" not in stored_config(warmup)
    assert stored_config(adapt)["start_from"] == "w.h5" and stored_config(adapt)["labels"] == "l.h5"
    annotate = AnnotateOptions(selection=Path("s.h5"), target="t", output=Path("l.h5"), annotator="ana")
    assert stored_config(annotate)["annotator_name"] == "ana"
    for never in ("output", "workers", "force", "quiet", "resume", "config_file", "skip_bad"):
        assert never not in stored_config(warmup), never
    assert stored_config(warmup)["train"]["betas"] == [0.9, 0.99]


def test_inspect_hands_on_its_artifact(tmp_path, monkeypatch):
    import labor_cli.stages.inspect as inspect

    monkeypatch.setattr(inspect, "describe", lambda path: {"described": str(path)})
    argv, expected = command_line(declarations.InspectOptions, tmp_path)
    assert json.loads(invoke(argv).output) == {"described": str(expected["artifact"])}


def test_bench_hands_its_options_on_to_each_workload(tmp_path, monkeypatch, capsys):
    import labor_cli.stages.bench as bench

    calls = {}

    def recorder(name, result):
        def record(*args, **kwargs):
            calls[name] = (args, kwargs)
            return result

        return record

    monkeypatch.setattr(bench, "time_workloads", recorder("bench", []))
    monkeypatch.setattr(bench, "bench_extract_end_to_end", recorder("e2e", {"images": 7}))
    monkeypatch.setattr(bench, "profile_bench", recorder("profile", None))
    monkeypatch.setattr(bench, "resolve_device", lambda spec: "cpu")
    o = {"arch": "small", "device": "cuda:1", "repeats": 3, "warmup": 1, "compile": "on"}
    o |= {"selector_backbone": "shared", "e2e_images": 5, "workers": 2, "batch_size": 6, "profile": tmp_path / "p"}
    report = bench.run_bench(declarations.BenchOptions(**o))
    assert report.device == "cpu" and report.results == [] and report.end_to_end == {"images": 7}
    assert calls["bench"] == (("small", "cuda:1", 3, 1, "on", "shared"), {})
    assert calls["e2e"] == (("small", "cuda:1", 5, 2, 6, "shared"), {"compile": "on", "profile_dir": tmp_path / "p"})
    assert calls["profile"] == (([], tmp_path / "p", "small", "cuda:1", "on", "shared"), {})
    bench.print_bench_report(report, True)
    assert json.loads(capsys.readouterr().out)["extract_end_to_end"] == {"images": 7}

    monkeypatch.setattr(bench, "bench_pipeline", recorder("pipeline", types.SimpleNamespace(device="cpu")))
    pipeline = {"pipeline_images": 4, "pipeline_size": (64, 32), "batch_size": 2, "device": "cpu"}
    report = bench.run_bench(declarations.BenchOptions(pipeline=True, **pipeline))
    assert calls["pipeline"] == ((4, (64, 32), 2, "cpu"), {}) and report.pipeline.device == "cpu"


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
    warmup = values_from_file(Path("toy-warmup"), WarmupOptions)
    adapt = values_from_file(Path("toy-adapt"), AdaptOptions)
    assert warmup["arch"] == "small" and warmup["selector_backbone"] == "shared" and warmup["iterations"] == 750
    assert adapt["iterations"] == 300 and adapt["lambda_pseudo"] == 1.0
    built = build(WarmupOptions, {**warmup, "source": "s", "target": "t", "output": Path("o")})
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


def test_the_choices_are_the_keys_of_the_tables_that_act_on_them():
    """A choice that names a row of a data table (class sets, toy presets and looks) is spelt in
    the declarations (which --help reads without numpy) and keys the table: the two agree."""
    from labor_cli.data import labels, toy

    assert declarations.CLASS_SETS == tuple(labels.CLASS_SETS)
    assert declarations.TOY_SIZES == tuple(toy.PRESETS)
    assert declarations.TOY_SHIFTS == toy.SHIFTS


def test_train_config_keeps_its_fields_and_defaults():
    """TrainConfig is the stored "train" config of every checkpoint: its names stay readable."""
    config = TrainConfig()
    assert {"iterations", "lr", "lr_discriminator", "betas", "lambda_dis", "mask_share", "source_size"} <= set(
        config.as_dict()
    )
    assert config.iterations == 40000 and config.optimizer == "sgd" and config.lr == 2.5e-4
    assert config.betas == (0.9, 0.99) and config.pseudo_alpha == 0.2 and config.source_size is None
    assert typing.get_type_hints(TrainConfig)["source_size"] == typing.Optional[tuple[int, int]]  # noqa: UP045 - the form options.py declares


def test_the_warm_checkpoint_records_the_config_the_earlier_code_did(warm_checkpoint, toy_source, toy_target):
    """The conftest warmup's config, key for key and value for value, as labor wrote it before the
    options were declared: an older run's resume file still passes the same-run check."""
    from helpers import tiny_train_config

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
    assert {key: config.get(key) for key in before} == before  # an option added since adds a key
    check_same_run(warm_checkpoint, before, config)


def test_a_resume_file_from_before_an_option_existed_counts_as_its_default(tmp_path):
    """A stored config that lacks options added since (here a training one and a stage one) equals
    a run that uses their defaults, and differs from one that does not."""
    defaults = stored_defaults(AdaptOptions)
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
    with pytest.raises(declarations.LaborUsageError, match=message):  # made, the group checks itself
        TrainConfig(**values)


@pytest.mark.parametrize(
    "options_class, values, message",
    [
        (declarations.ExtractOptions, {"candidates_per_class": 0}, "--candidates-per-class and --uncertain-per"),
        (declarations.ExtractOptions, {"mask_share": 1.0}, r"--mask-share 1.0: must be in \[0, 1\)"),
        (declarations.ExtractOptions, {"save_every": 0}, "--save-every 0: must be at least 1"),
        (declarations.SelectOptions, {"mode": "ppl", "ratio": 0.5}, "--mode ppl takes --points N"),
        (declarations.SelectOptions, {"mode": "random", "points": 4, "seed": -1}, "--seed must be >= 0, got -1"),
        (declarations.BenchOptions, {"pipeline": True, "e2e_images": 2}, "--pipeline times the loader"),
        (declarations.ToyOptions, {"directory": Path("x"), "seed": -1}, "--seed -1: must be at least 0"),
    ],
)
def test_options_made_in_the_same_process_are_checked_as_the_command_lines_are(options_class, values, message):
    """Tests, the demo and bench make options objects directly: each group checks itself once, when made."""
    required = {"model": Path("m.h5"), "target": "t", "output": Path("o.h5"), "masks": Path("m.h5")}
    names = {f.name for f in dataclasses.fields(options_class)}
    given = {k: v for k, v in required.items() if k in names and k not in values}
    with pytest.raises(declarations.LaborUsageError, match=message):
        options_class(**given, **values)
