"""Where the server's core goes: CPU time per request, by thread, read from /proc (Linux).

On one core, the event loop (HTTP, JSON, tokenizing, batching, responses) and the model's
thread take turns. Their CPU time per request bounds throughput whatever the batching does:
with one text per request, texts/s <= 1e6 / (loop µs per request + model µs per text). The
benchmark prints both next to each cell, so a table that misses a target also shows why.

The main thread is the event loop (its id is the process id); every other thread of the
server (the inference thread, and a tokenizing thread for very large requests) counts as
the model's side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each live thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


@dataclass(frozen=True)
class CpuShare:
    loop_us_per_request: float
    model_us_per_text: float
    busy: float  # server CPU seconds per wall second (1.0 = its core was never idle)


def cpu_share(pid: int, before: dict[int, float], after: dict[int, float],
              requests: int, texts: int, wall_s: float) -> CpuShare:
    """Split the CPU spent between two snapshots into the loop's share per request and the
    other threads' share per text. Threads born in between count from zero."""
    spent = {tid: seconds - before.get(tid, 0.0) for tid, seconds in after.items()}
    loop = spent.pop(pid, 0.0)
    model = sum(spent.values())
    return CpuShare(
        loop_us_per_request=1e6 * loop / max(requests, 1),
        model_us_per_text=1e6 * model / max(texts, 1),
        busy=(loop + model) / wall_s if wall_s > 0 else 0.0,
    )
