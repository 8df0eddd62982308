"""--compile: the stages compile the modules they call, and fall back to eager when compiling fails.

torch.compile's "eager" backend (dynamo's graph capture, no code generation) stands in for
inductor: it exercises the same wiring in seconds on the CPU, and gives the same numbers as
not compiling at all, so results can be compared exactly.
"""

import h5py
import numpy as np
import pytest
import torch
from helpers import tiny_train_config, warmup_options

from labor_cli import artifacts, runtime
from labor_cli.errors import LaborUsageError
from labor_cli.options import EvaluateOptions, ExtractOptions
from labor_cli.runtime import CompileFallback, resolve_compile
from labor_cli.stages.evaluate import run_evaluate
from labor_cli.stages.extract import run_extract
from labor_cli.stages.train import run_training_stage


def _weights(path):
    networks = artifacts.load_checkpoint(path).networks
    return {
        f"{name}.{k}": v
        for name in ("segmenter", "selector", "discriminator")
        for k, v in getattr(networks, name).state_dict().items()
    }


def _warmup(toy_source, toy_target, output, compile):
    config = tiny_train_config(iterations=3, save_every=100)
    return run_training_stage(warmup_options(toy_source, toy_target, output, config, compile=compile))


def failing_backend(graph_module, example_inputs):
    raise RuntimeError("no compiler here\nsecond line")


def test_compile_choices():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("auto", cuda, training=True) is True  # warmup, adapt on CUDA
    assert resolve_compile("auto", cuda, training=False) is False  # extract, evaluate
    assert resolve_compile("auto", cpu, training=True) is False
    assert resolve_compile("on", cpu, training=False) is True and resolve_compile("off", cuda, training=True) is False
    with pytest.raises(LaborUsageError, match="--compile 'yes'"):
        resolve_compile("yes", cpu, training=True)
    # auto compiles a training run only where it pays: at least COMPILE_BREAK_EVEN iterations
    from labor_cli.compile_policy import COMPILE_BREAK_EVEN, COMPILE_HELP

    assert resolve_compile("auto", cuda, training=True, iterations=COMPILE_BREAK_EVEN) is True
    assert resolve_compile("auto", cuda, training=True, iterations=COMPILE_BREAK_EVEN - 1) is False
    assert resolve_compile("on", cuda, training=True, iterations=1) is True
    assert f"at least {COMPILE_BREAK_EVEN} iterations" in COMPILE_HELP


@pytest.mark.slow
def test_compiled_training_equals_eager_and_keeps_the_checkpoint_layout(tmp_path, toy_source, toy_target, monkeypatch):
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "eager")
    _warmup(toy_source, toy_target, tmp_path / "eager.h5", "off")
    _warmup(toy_source, toy_target, tmp_path / "compiled.h5", "on")
    eager, compiled = _weights(tmp_path / "eager.h5"), _weights(tmp_path / "compiled.h5")
    assert eager.keys() == compiled.keys()  # no "_orig_mod." prefixes: nn.Module.compile leaves the names alone
    assert all(torch.equal(eager[k], compiled[k]) for k in eager)
    with h5py.File(tmp_path / "compiled.h5") as f:
        assert '"compile": true' in f.attrs["config"]


@pytest.mark.slow
def test_a_failing_compiler_falls_back_to_eager_with_one_warning(tmp_path, toy_source, toy_target, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", failing_backend)
    _warmup(toy_source, toy_target, tmp_path / "fallback.h5", "on")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "torch.compile failed" in line]
    assert len(warnings) == 1 and "no compiler here" in warnings[0] and "second line" not in warnings[0]
    _warmup(toy_source, toy_target, tmp_path / "eager.h5", "off")
    eager, fallback = _weights(tmp_path / "eager.h5"), _weights(tmp_path / "fallback.h5")
    assert all(torch.equal(eager[k], fallback[k]) for k in eager)  # the failed step was redone from scratch


@pytest.mark.slow
def test_compiled_extract_and_evaluate_equal_eager(tmp_path, warm_checkpoint, toy_target, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", failing_backend)  # the fallback path, then real compiling
    run_extract(
        ExtractOptions(
            model=warm_checkpoint,
            target=toy_target,
            output=tmp_path / "fallback.h5",
            device="cpu",
            quiet=True,
            compile="on",
            batch_size=2,
            workers=0,
        )
    )
    assert "torch.compile failed" in capsys.readouterr().err
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "eager")
    run_extract(
        ExtractOptions(
            model=warm_checkpoint,
            target=toy_target,
            output=tmp_path / "compiled.h5",
            device="cpu",
            quiet=True,
            compile="on",
            batch_size=2,
            workers=0,
        )
    )
    run_extract(
        ExtractOptions(
            model=warm_checkpoint,
            target=toy_target,
            output=tmp_path / "eager.h5",
            device="cpu",
            quiet=True,
            compile="off",
            batch_size=2,
            workers=0,
        )
    )
    with h5py.File(tmp_path / "eager.h5") as eager:
        for name in ("fallback.h5", "compiled.h5"):
            with h5py.File(tmp_path / name) as other:
                for key in ("prediction", "mask", "candidates/similarity", "candidates/x", "uncertain/entropy"):
                    np.testing.assert_array_equal(other[key][()], eager[key][()], err_msg=f"{name}: {key}")
    compiled = run_evaluate(
        EvaluateOptions(
            model=warm_checkpoint,
            target=toy_target,
            split="val",
            output=tmp_path / "e1.h5",
            device="cpu",
            quiet=True,
            compile="on",
            workers=0,
        )
    )
    eager = run_evaluate(
        EvaluateOptions(
            model=warm_checkpoint,
            target=toy_target,
            split="val",
            output=tmp_path / "e2.h5",
            device="cpu",
            quiet=True,
            compile="off",
            workers=0,
        )
    )
    np.testing.assert_array_equal(compiled.confusion, eager.confusion)


def test_a_real_error_still_raises_after_the_eager_retry(monkeypatch):
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "eager")
    module = torch.nn.Linear(2, 2)
    guard = CompileFallback([module], enabled=True)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        guard(broken)
    assert len(calls) == 2 and not guard.active and module._compiled_call_impl is None


@pytest.mark.slow
def test_compiling_builds_one_static_graph_per_input_shape_all_in_the_first_iteration(
    tmp_path, toy_source, toy_target, monkeypatch
):
    """Static shapes: the source (128x72) and target (128x64) crops each get graphs of their own,
    with fixed sizes (automatic dynamic shapes would rebuild the first graph with symbolic sizes
    when the second shape comes), all built in the first iteration: later iterations compile
    nothing, and no input signature is compiled twice."""
    import torch._dynamo

    graphs = []

    def recording_backend(graph_module, example_inputs):
        signature = tuple(
            (type(x).__name__, tuple(getattr(x, "shape", ())), getattr(x, "requires_grad", None))
            for x in example_inputs
        )
        graphs.append((torch.is_grad_enabled(), signature))
        return graph_module.forward

    monkeypatch.setattr(runtime, "COMPILE_BACKEND", recording_backend)
    counts = []
    try:
        for iterations in (1, 3):
            torch._dynamo.reset()
            graphs.clear()
            # B learns pseudo labels from the first iteration: the iteration where they start is
            # another graph (once per run), which would hide a rebuild here.
            config = tiny_train_config(iterations=iterations, save_every=100, pseudo_from=0)
            output = tmp_path / f"w{iterations}.h5"
            run_training_stage(warmup_options(toy_source, toy_target, output, config, compile="on"))
            assert not any(kind == "SymInt" for _, signature in graphs for kind, _, _ in signature)
            assert len(set(graphs)) == len(graphs)
            counts.append(len(graphs))
    finally:
        torch._dynamo.reset()
    assert counts[0] == counts[1] > 0
    shapes = {shape for _, signature in graphs for kind, shape, _ in signature if kind == "Tensor" and len(shape) == 4}
    assert (2, 3, 72, 128) in shapes and (2, 3, 64, 128) in shapes  # both crops, each at its own fixed size
