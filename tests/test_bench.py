import json

from labor_cli.stages.bench import as_json, run_bench, speedups


def test_bench_runs_both_paths_on_the_cpu_and_reports_every_figure():
    results = run_bench(device="cpu", repeats=1, warmup=0)
    assert [(r.workload, r.path) for r in results] == [
        (w, p) for p in ("reference", "default") for w in ("adapt", "warmup", "extract")]
    assert all(r.ms > 0 and r.images_per_s > 0 and r.tflops > 0 for r in results)
    assert set(speedups(results)) == {"adapt", "warmup", "extract"}
    json.dumps(as_json(results), allow_nan=False)  # scripts get strict JSON


def test_bench_profile_writes_where_the_time_goes(tmp_path):
    run_bench(device="cpu", repeats=1, warmup=0, workloads=("extract",), profile_dir=tmp_path / "profile")
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
            warnings.warn("called a synchronizing CUDA operation")  # what CUDA's sync debug mode emits per wait
        warnings.warn("something else")

    assert _count_host_syncs(step) == 3
    assert modes == ["warn", "default"]  # switched back off afterwards
