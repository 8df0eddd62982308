"""What the tests share besides fixtures (those are in conftest.py): the ways to run `labor`, the
command lines and options of the tests' tiny runs, and the one-line error check.

Three ways to run `labor`, one per need:
- ``run_executable``: a process of its own, as users run it (real exit code, default loader
  workers, signals);
- ``run_main``: this process, through ``main`` (the executable's error handling), so that a
  monkeypatch holds; its exit code, stdout and stderr;
- ``invoke``: this process, through typer's test runner, for a run that must succeed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

# The tests' training run: a few iterations of the small arch, saved twice.
TINY_TRAIN = dict(iterations=6, lr=2e-3, source_batch=2, target_batch=2, save_every=3, log_every=2, seed=0)
# The tests' runtime: the small arch on the CPU, data loaded in the running process, quiet.
ON_THE_CPU = dict(device="cpu", workers=0, quiet=True)
SMALL_ON_THE_CPU = dict(arch="small", **ON_THE_CPU)
# The tests' torch settings (conftest.py) in a process of its own, so that its results compare bit
# for bit with the test process's.
TEST_TORCH = "import torch; torch.set_num_threads(2); torch.backends.mkldnn.enabled = False; "
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def executable_argv(*args, torch_settings: bool = False) -> list[str]:
    """The argv of `labor ARGS` in a process of its own; with torch_settings, the tests' ones."""
    if torch_settings:
        return [sys.executable, "-c", TEST_TORCH + "from labor_cli.cli import main; main()", *map(str, args)]
    return [sys.executable, "-m", "labor_cli", *map(str, args)]


def run_executable(*args, check: bool = True, timeout: float = 300, torch_settings: bool = False):
    """`labor ARGS` in a process of its own; with check, it must succeed."""
    result = subprocess.run(
        executable_argv(*args, torch_settings=torch_settings), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (args, result.stderr)
    return result


def run_main(argv, capsys) -> tuple[int, str, str]:
    """`labor ARGV` in this process through main: its exit code, stdout and stderr."""
    from labor_cli.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def invoke(*args):
    """`labor ARGS` in this process through typer's test runner; it must succeed."""
    from typer.testing import CliRunner

    from labor_cli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def one_line(err: str) -> str:
    """The one line of an error's stderr (no traceback)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def options_argv(**options) -> list[str]:
    """Keyword options as command-line ones: source_batch=2 -> --source-batch 2, quiet=True ->
    --quiet; None or False leaves the option out."""
    argv = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        argv.append("--" + name.replace("_", "-"))
        if value is not True:
            argv.append(str(value))
    return argv


def warmup_command(source, target, output, **overrides) -> list[str]:
    """`labor warmup`'s arguments for the tests' tiny run (what warmup_options makes in-process)."""
    options = {**SMALL_ON_THE_CPU, **TINY_TRAIN, **overrides}
    return ["warmup", "--source", str(source), "--target", str(target), "-o", str(output), *options_argv(**options)]


def extract_command(model, target, output, **overrides) -> list[str]:
    """`labor extract`'s arguments on the CPU, data loaded in the running process, quiet."""
    options = {**ON_THE_CPU, **overrides}
    return ["extract", "-m", str(model), "--target", str(target), "-o", str(output), *options_argv(**options)]


def tiny_train_config(**overrides):
    """The tests' TrainConfig: TINY_TRAIN with overrides."""
    from labor_cli.options import TrainConfig

    return TrainConfig(**{**TINY_TRAIN, **overrides})


def warmup_options(source, target, output, config=None, **overrides):
    """The tests' warmup in this process: the small arch on the CPU, data loaded here, quiet."""
    from labor_cli.options import WarmupOptions

    values = {**SMALL_ON_THE_CPU, **overrides}
    return WarmupOptions(source=source, target=target, output=output, train=config or tiny_train_config(), **values)


def crash_test_module():
    """examples/crash_test.py as a module: its kill -9 runs and its artifact comparison."""
    if "crash_test" not in sys.modules:
        spec = importlib.util.spec_from_file_location("crash_test", EXAMPLES / "crash_test.py")
        sys.modules["crash_test"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(sys.modules["crash_test"])
    return sys.modules["crash_test"]


def image_to_tensor(image):
    """One HxWx3 uint8 RGB image as the networks read it: 3xHxW float32, ImageNet-normalised."""
    from labor_cli.data.transforms import ImageNormalizer, image_as_tensor

    return ImageNormalizer()(image_as_tensor(image)[None])[0]
