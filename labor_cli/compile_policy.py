"""When `--compile auto` compiles: where torch.compile pays for itself (no torch import, so that
the command line's help can say it).

Compiling the training networks costs COMPILE_SECONDS once (with static shapes every graph is
built in the first iteration) and saves COMPILE_SAVES_MS in every iteration after it, so a run
wins it back after ``compile_break_even`` iterations. The two figures are estimates, not
measurements at the paper's shapes (no GPU run has finished `labor bench --compile on` yet,
docs/measurements.md): that command reports each compiled workload's compile time, its saving
and its break-even on the user's GPU.
"""

from __future__ import annotations

COMPILE_SECONDS = 120.0
COMPILE_SAVES_MS = 60.0


def compile_break_even(compile_seconds: float, eager_ms: float, compiled_ms: float) -> float:
    """Iterations after which compiling has paid for itself (infinite if it saves nothing)."""
    saved_ms = eager_ms - compiled_ms
    return compile_seconds * 1000 / saved_ms if saved_ms > 0 else float("inf")


COMPILE_BREAK_EVEN = round(compile_break_even(COMPILE_SECONDS, COMPILE_SAVES_MS, 0.0))  # iterations

COMPILE_HELP = (
    "torch.compile the networks: auto compiles warmup and adapt on CUDA for runs of at least "
    f"{COMPILE_BREAK_EVEN} iterations (where compiling, about {COMPILE_SECONDS:.0f} s, is won back at "
    f"{COMPILE_SAVES_MS:.0f} ms an iteration at the paper's shapes: estimates; `labor bench --compile on` measures yours), "
    "not extract and evaluate; on; off. If compiling fails: one warning, and the stage goes on uncompiled."
)
