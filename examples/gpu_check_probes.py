"""examples/gpu-check.sh's step 3. The default path's warmup and adapt iterations in one fresh
process, on the same networks: FrozenBN folded (as shipped), folded but with its scale and shift
recomputed at every call (b4ade52), and unfolded (each FrozenBN applied to the activation, as
before); then cuDNN autotuning off, and after a profiler session. host ms: the time until the
call returns, before waiting for the GPU (near ms: the host is the limit). Profiles of the
unfolded rows come last (after every timing). Usage: gpu_check_probes.py RESULTS DEVICE."""

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from labor_cli.models import deeplab
from labor_cli.stages import bench

out, device = Path(sys.argv[1]), sys.argv[2]
plan = bench._plan(None, device, "off", "separate", bench.WORKLOADS)
torch_device = plan.device
bench.configure_backends(torch_device)
prepared = bench._prepare(plan.paths[1], plan)
folded_conv_bn, cached_folding = deeplab.conv_bn, deeplab.FrozenBN.folding
repeats = 6 if torch_device.type == "cuda" else 1
rows = {}


def unfolded_conv_bn(conv, norm, x):
    return norm(conv(x))


def recomputed_folding(self):  # as b4ade52 did: scale and shift computed again at every call
    scale, shift = self.scale_and_shift()
    return scale.reshape(-1, 1, 1, 1), shift


def timed(name, workload):
    step = prepared[workload]()[0]
    step()
    ms, peak = bench._time(step, torch_device, repeats, 2 if torch_device.type == "cuda" else 0)
    host = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        host.append((time.perf_counter() - started) * 1000)
        bench._synchronize(torch_device)
    rows[name] = {"ms": ms, "host_ms": statistics.median(host), "peak_gib": peak}
    print(f"{name}: {ms:.1f} ms, host {rows[name]['host_ms']:.1f} ms", flush=True)


variants = {
    "folded": (folded_conv_bn, cached_folding),
    "folded recomputed": (folded_conv_bn, recomputed_folding),
    "unfolded": (unfolded_conv_bn, cached_folding),
}
for variant, (conv_bn, folding) in variants.items():
    deeplab.conv_bn, deeplab.FrozenBN.folding = conv_bn, folding
    for workload in ("warmup", "adapt"):
        timed(f"{workload} {variant}", workload)
deeplab.conv_bn, deeplab.FrozenBN.folding = folded_conv_bn, cached_folding
if torch_device.type == "cuda":
    torch.backends.cudnn.benchmark = False
    timed("warmup folded, cuDNN autotuning off", "warmup")
    torch.backends.cudnn.benchmark = True
bench._profile(prepared["warmup"]()[0], torch_device, out / "probe-profile-warmup.txt")
timed("warmup folded, after a profiler session", "warmup")
deeplab.conv_bn = unfolded_conv_bn
for workload in ("warmup", "adapt"):
    busy = bench._profile(prepared[workload]()[0], torch_device, out / "profile" / f"default-unfolded-{workload}.txt")
    rows[f"{workload} unfolded"]["gpu_busy_ms"] = busy
(out / "probes.json").write_text(json.dumps(rows, indent=1))
