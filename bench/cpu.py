"""Where the server's core goes: CPU time per request, by thread, read from /proc (Linux).

On one core, the event loop (HTTP, JSON, tokenizing, batching, responses) and the model's
thread take turns. Their CPU time per request bounds throughput whatever the batching does:
with one text per request, texts/s <= 1e6 / (loop µs per request + model µs per text). The
benchmark prints both next to each cell, so a table that misses a target also shows why.

The main thread is the event loop (its id is the process id). grpcio's C-core threads
(``event_engine``, ``grpc_global_timer``: gRPC's socket I/O and HTTP/2 framing, which uvicorn
does on the loop) count as I/O threads, per request. Every other thread of the server (the
inference thread, a tokenizing thread for very large requests, and grpcio's Python thread
that hands completions to the loop, ~20-30 µs per call) counts as the model's side.

It also counts how many times the server's threads were put on a CPU (``schedstat``'s third
field: a thread's voluntary and involuntary context switches), per request: a transport that
hands each request between threads shows it there, whatever the machine's speed.
"""

from __future__ import annotations

import os
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
# How grpcio's C-core names its threads (/proc/<pid>/task/<tid>/comm, cut at 15 characters).
IO_THREAD_NAMES = ("event_engine", "grpc_")
_SWITCHES = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of ``pid``: the scheduler's own count in nanoseconds
    (``schedstat``) where the kernel has it, else user + system time in clock ticks, which
    samples a thread at each tick and so misses most of a thread that runs in short bursts
    (grpcio's I/O threads: 0.02 s by ticks where the scheduler counted ~0.1 s)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
            continue
        except (OSError, ValueError, IndexError):  # no schedstat here, or the thread ended
            pass
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


def thread_switches(pid: int) -> int:
    """How many times the live threads of ``pid`` have been put on a CPU, summed."""
    return sum(task_switches(task) for task in Path(f"/proc/{pid}/task").iterdir())


def task_switches(task: Path) -> int:
    """One thread's count: the scheduler's (``schedstat``), else the voluntary and involuntary
    context switches ``status`` gives, which are the same number; 0 if it has ended."""
    try:
        return int((task / "schedstat").read_text().split()[2])
    except (OSError, ValueError, IndexError):  # no schedstat here, or the thread ended
        pass
    try:
        status = (task / "status").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in status.splitlines() if line.startswith(_SWITCHES))


def io_threads(pid: int) -> set[int]:
    """The live threads of ``pid`` that grpcio's C-core runs (``IO_THREAD_NAMES``)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith(IO_THREAD_NAMES):
            found.add(int(task.name))
    return found


Snapshot = tuple[dict[int, float], int]  # each thread's CPU seconds, and the switches so far


def snapshot(pid: int | None) -> Snapshot:
    """What ``cpu_share`` compares: ``thread_cpu_seconds`` and ``thread_switches`` (nothing
    without a local server)."""
    return (thread_cpu_seconds(pid), thread_switches(pid)) if pid is not None else ({}, 0)


@dataclass(frozen=True)
class CpuShare:
    loop_us_per_request: float
    model_us_per_text: float
    busy: float  # server CPU seconds per wall second (1.0 = its core was never idle)
    io_us_per_request: float = 0.0  # grpcio's C-core threads; 0 for HTTP
    switches_per_request: float = 0.0  # times a thread of the server was put on a CPU


def cpu_share(pid: int, before: dict[int, float], after: dict[int, float],
              requests: int, texts: int, wall_s: float, io: Set[int] = frozenset(),
              switches: int = 0) -> CpuShare:
    """Split the CPU spent between two snapshots into the loop's and the ``io`` threads'
    shares per request and the other threads' share per text; ``switches`` made between them
    count per request. Threads born in between count from zero."""
    spent = {tid: seconds - before.get(tid, 0.0) for tid, seconds in after.items()}
    loop = spent.pop(pid, 0.0)
    io_spent = sum(spent.pop(tid, 0.0) for tid in io)
    model = sum(spent.values())
    return CpuShare(
        loop_us_per_request=1e6 * loop / max(requests, 1),
        model_us_per_text=1e6 * model / max(texts, 1),
        busy=(loop + io_spent + model) / wall_s if wall_s > 0 else 0.0,
        io_us_per_request=1e6 * io_spent / max(requests, 1),
        switches_per_request=switches / max(requests, 1),
    )
