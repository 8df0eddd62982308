"""One table of everything, and the issue's targets."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None


eager, compiled, probes = load("bench-eager.json"), load("bench-compiled.json"), load("probes.json")
rows = (compiled or eager or {}).get("results", [])
device = (compiled or eager or {}).get("device", "?")
print(f"labor on {device} ({(out / 'gpu.txt').read_text().strip().splitlines()[-1]})")
summary = {"device": device, "steps": (out / "steps.txt").read_text().splitlines()}


def row(workload, path, is_compiled=False, source=rows):
    return next(
        (r for r in source if r["workload"] == workload and r["path"] == path and r["compiled"] == is_compiled), None
    )


def fmt(value, pattern="{:.1f}"):
    return "-" if value is None else pattern.format(value)


print(
    f"{'workload':9s} {'reference':>10s} {'default':>10s} {'x':>6s} {'compiled':>10s} {'x':>6s}"
    f" {'peak GiB ref->def':>18s}"
    f" {'GPU busy':>9s} {'compile s':>9s} {'pays after':>11s}"
)
table = {}
for workload in ("adapt", "warmup", "extract"):
    ref, default, comp = row(workload, "reference"), row(workload, "default"), row(workload, "default", True)
    if eager and not default:
        ref, default = (
            row(workload, "reference", source=eager["results"]),
            row(workload, "default", source=eager["results"]),
        )
    busy = row(workload, "default", source=eager["results"]) if eager else None
    if not ref or not default:
        continue
    up = ref["ms"] / default["ms"]
    up_c = ref["ms"] / comp["ms"] if comp else None
    mem = (
        default["peak_memory_gib"] / ref["peak_memory_gib"]
        if ref.get("peak_memory_gib") and default.get("peak_memory_gib")
        else None
    )
    peaks = (
        f"{fmt(ref['peak_memory_gib'], '{:.2f}')}->{fmt(default['peak_memory_gib'], '{:.2f}')} ({fmt(mem, '{:.2f}x')})"
    )
    print(
        f"{workload:9s} {ref['ms']:8.1f}ms {default['ms']:8.1f}ms {up:5.2f}x {fmt(comp and comp['ms']):>8s}ms"
        f" {fmt(up_c, '{:.2f}x'):>6s}"
        f" {peaks:>18s} {fmt(busy and busy.get('gpu_busy_ms')):>7s}ms {fmt(comp and comp['compile_s']):>9s}"
        f" {fmt(comp and comp['break_even_iterations'], '{:.0f} its'):>11s}"
    )
    table[workload] = {
        "reference_ms": ref["ms"],
        "default_ms": default["ms"],
        "speedup": up,
        "compiled_ms": comp and comp["ms"],
        "speedup_compiled": up_c,
        "peak_ratio": mem,
        "compile_s": comp and comp["compile_s"],
        "break_even_iterations": comp and comp["break_even_iterations"],
    }
summary["bench"] = table
e2e = (eager or {}).get("extract_end_to_end")
if e2e:
    print(
        f"extract end to end: {e2e['images']} PNGs {e2e['native_size'][1]}x{e2e['native_size'][0]}: "
        f"{e2e['images_per_s']:.1f} images/s "
        f"overall, {fmt(e2e.get('steady_images_per_s'))} steady, start-up {fmt(e2e.get('startup_s'))} s"
    )
    summary["e2e"] = e2e
seconds = (out / "bench-compiled.seconds").read_text().strip() if (out / "bench-compiled.seconds").exists() else None
log = (out / "bench-compiled.log").read_text(errors="replace") if (out / "bench-compiled.log").exists() else ""
recompiles, dynamic = log.count("Recompiling function"), log.count("pow_by_natural") + log.count("automatic dynamic")
print(
    f"labor bench --compile on: {seconds or '?'} s (target <= 240), {recompiles} recompiles logged, "
    f"{dynamic} dynamic-shape lines"
)
summary["compiled_bench"] = {"seconds": seconds and int(seconds), "recompiles": recompiles, "dynamic_lines": dynamic}
if probes:
    for name, values in probes.items():
        busy = f", GPU busy {values['gpu_busy_ms']:.1f} ms" if values.get("gpu_busy_ms") else ""
        print(f"probe {name}: {values['ms']:.1f} ms (host {values['host_ms']:.1f} ms{busy})")
    summary["probes"] = probes
chain = (out / "chain.log").read_text(errors="replace") if (out / "chain.log").exists() else ""
nccl = sum("NCCL INFO" in line for line in chain.splitlines())
print(f"torchrun chain: {[s for s in summary['steps'] if s.startswith('4.')] or ['not run']}, {nccl} NCCL INFO lines")
summary["chain_nccl_lines"] = nccl
adapt, extract = table.get("adapt", {}), table.get("extract", {})
targets = {
    "adapt >= 2x eager": (adapt.get("speedup") or 0) >= 2,
    "adapt >= 2.5x compiled": (adapt.get("speedup_compiled") or 0) >= 2.5,
    "adapt peak memory <= 0.6x": adapt.get("peak_ratio") is not None and adapt["peak_ratio"] <= 0.6,
    "extract >= 2.5x": (extract.get("speedup") or 0) >= 2.5,
    "e2e >= 60 images/s overall": bool(e2e) and e2e["images_per_s"] >= 60,
    "e2e >= 60 images/s steady": bool(e2e) and (e2e.get("steady_images_per_s") or 0) >= 60,
    "bench --compile on <= 240 s": seconds is not None
    and int(seconds) <= 240
    and "2. bench --compile on: ok" in " ".join(summary["steps"]),
}
print("targets: " + ", ".join(f"{name} {'MET' if met else 'not met'}" for name, met in targets.items()))
summary["targets"] = targets
(out / "summary.json").write_text(json.dumps(summary, indent=1))
