import json

from labor_cli.stages.bench import as_json, speedups, time_workloads


def test_bench_runs_both_paths_on_the_cpu_and_reports_every_figure():
    results = time_workloads(device="cpu", repeats=1, warmup=0)
    assert [(r.workload, r.path) for r in results] == [
        (w, p) for p in ("reference", "default") for w in ("adapt", "warmup", "extract")
    ]
    assert all(r.ms > 0 and r.images_per_s > 0 and r.tflops > 0 for r in results)
    assert set(speedups(results)) == {"adapt", "warmup", "extract"}
    json.dumps(as_json(results), allow_nan=False)  # scripts get strict JSON


def test_bench_profile_writes_where_the_time_goes(tmp_path):
    from labor_cli.stages.bench import profile_bench

    results = time_workloads(device="cpu", repeats=1, warmup=0, workloads=("extract",))
    profile_bench(results, tmp_path / "profile", device="cpu", workloads=("extract",))
    assert sorted(p.name for p in (tmp_path / "profile").iterdir()) == ["default-extract.txt", "reference-extract.txt"]
    table = (tmp_path / "profile" / "default-extract.txt").read_text()
    assert "aten::upsample_bilinear2d" in table and "Self CPU" in table


def test_host_syncs_are_counted_from_cudas_sync_debug_warnings(monkeypatch):
    import warnings

    import torch

    from labor_cli.stages.bench import _count_host_syncs

    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)  # no GPU here: CUDA's side is stood in for

    def step():
        for _ in range(3):
            warnings.warn(
                "called a synchronizing CUDA operation", stacklevel=2
            )  # what CUDA's sync debug mode emits per wait
        warnings.warn("something else", stacklevel=2)

    assert _count_host_syncs(step) == 3
    assert modes == ["warn", "default"]  # switched back off afterwards


def test_labor_bench_times_everything_before_it_profiles(tmp_path, monkeypatch):
    """A profiler session can leave CUDA's tracing attached and slow every later launch: `labor
    bench --profile` times the rows and the end-to-end extraction first, then profiles."""
    from typer.testing import CliRunner

    from labor_cli.cli import app
    from labor_cli.stages import bench

    calls = []
    monkeypatch.setattr(bench, "time_workloads", lambda *a, **k: calls.append("time_workloads") or [])
    monkeypatch.setattr(
        bench, "bench_extract_end_to_end", lambda *a, **k: calls.append(("e2e", k["profile_dir"])) or {}
    )
    monkeypatch.setattr(
        bench, "profile_bench", lambda results, profile_dir, *a, **k: calls.append(("profile_bench", profile_dir))
    )
    result = CliRunner().invoke(
        app, ["bench", "--device", "cpu", "--e2e-images", "2", "--profile", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert calls == ["time_workloads", ("e2e", tmp_path), ("profile_bench", tmp_path)]


def test_compiled_rows_come_beside_the_eager_ones_with_their_compile_time(monkeypatch):
    from labor_cli import runtime

    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "eager")  # dynamo without code generation: seconds on a CPU
    results = time_workloads(device="cpu", repeats=1, warmup=0, compile="on", workloads=("extract",))
    assert [(r.path, r.compiled) for r in results] == [("reference", False), ("default", False), ("default", True)]
    compiled = results[-1]
    assert compiled.compile_s is not None and compiled.compile_s >= 0 and compiled.first_call_s > 0
    assert compiled.tflops > 0 and set(speedups(results)) == {"extract", "extract + compile"}
    assert all(r.compile_s is None and r.break_even_iterations is None for r in results[:2])
    json.dumps(as_json(results), allow_nan=False)


def test_compile_break_even():
    from labor_cli.compile_policy import compile_break_even

    assert compile_break_even(60.0, 300.0, 200.0) == 600  # 60 s won back at 0.1 s per iteration
    assert compile_break_even(60.0, 200.0, 250.0) == float("inf")


def test_end_to_end_extraction_separates_startup_from_the_steady_rate_and_profiles_it(tmp_path):
    from labor_cli.stages.bench import bench_extract_end_to_end

    result = bench_extract_end_to_end(device="cpu", images=3, workers=0, batch_size=1, profile_dir=tmp_path)
    assert result["images"] == 3 and result["short_run_images"] == 2 and result["images_per_s"] > 0
    assert result["seconds"] > result["short_run_seconds"] > 0
    json.dumps(result, allow_nan=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2e-ops.txt", "e2e-stacks.txt", "e2e-trace.json.gz"]
    stacks = (tmp_path / "e2e-stacks.txt").read_text()
    assert "MainThread" in stacks and "(scores.py:" in stacks


def test_stack_sampler_says_where_each_thread_waits():
    import threading
    import time

    from labor_cli.stages.bench import StackSampler

    def napping():
        time.sleep(0.3)

    with StackSampler(interval=0.01) as sampler:
        sleeper = threading.Thread(target=napping, name="sleeper")
        sleeper.start()
        sleeper.join()
    report = sampler.report()
    assert "sleeper:" in report and "napping (test_bench.py:" in report
