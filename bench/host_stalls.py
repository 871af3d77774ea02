"""Host stalls: stretches in which a CPU of this machine ran nothing of ours at all.

On a virtual machine the hypervisor can take a virtual CPU away for tens of
milliseconds; nothing inside the guest shows it (``/proc/stat`` reports no steal on this
host). A latency window that holds such a stall misses any p99 target of a few
milliseconds, whatever the server does. :class:`StallProbe` runs one tiny process per
CPU, pinned to it, that sleeps 2 ms at a time under ``SCHED_FIFO`` when it may (then no
process of the guest can delay it): every wake-up later than ``threshold_ms`` is a stall
of that CPU. Without the right to ``SCHED_FIFO`` the probe runs at normal priority and
then also counts the guest's own scheduling delays; ``fifo`` says which. The summary
says how much CPU the probes themselves used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from proc_cpu import cpu_s

# the probe, run as ``python -c PROBE <cpu> <threshold_ms>``; prints its stalls as JSON
# when terminated: {"fifo": bool, "stalls": [[start_epoch_s, length_s], ...]}
PROBE = r"""
import json, os, signal, sys, time
cpu, threshold = int(sys.argv[1]), float(sys.argv[2]) / 1000
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    fifo = True
except OSError:
    fifo = False
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
offset = time.time() - time.perf_counter()
stalls = []
last = time.perf_counter()
print("ready", flush=True)
while not stop:
    time.sleep(0.002)
    now = time.perf_counter()
    if now - last > threshold:
        stalls.append((last + offset, now - last))
    last = now
print(json.dumps({"fifo": fifo, "stalls": stalls}), flush=True)
"""


@dataclass
class Stalls:
    """What the probes saw: stalls of any CPU, and the probes' own CPU seconds."""

    fifo: bool
    threshold_ms: float
    probe_cpu_s: float = 0.0
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (start epoch s, s)

    @property
    def count(self) -> int:
        return len(self.stalls)

    @property
    def total_ms(self) -> float:
        return sum(length for _, length in self.stalls) * 1000

    @property
    def longest_ms(self) -> float:
        return max((length for _, length in self.stalls), default=0.0) * 1000

    def summary(self) -> str:
        how = "SCHED_FIFO" if self.fifo else "normal priority: guest delays count too"
        return (f"{self.count} host stalls ≥ {self.threshold_ms:g} ms, {self.total_ms:.0f} ms "
                f"in all, longest {self.longest_ms:.0f} ms ({how}; the probes used "
                f"{self.probe_cpu_s:.2f} s of CPU)")


class StallProbe:
    """``with StallProbe() as probe: …`` then ``probe.result``: the stalls meanwhile."""

    def __init__(self, threshold_ms: float = 10.0) -> None:
        self.threshold_ms = threshold_ms
        self.result: Stalls | None = None
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> StallProbe:
        for cpu in sorted(os.sched_getaffinity(0)):
            proc = subprocess.Popen([sys.executable, "-c", PROBE, str(cpu),
                                     str(self.threshold_ms)], stdout=subprocess.PIPE, text=True)
            self._procs.append(proc)
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                self.__exit__(None, None, None)
                raise RuntimeError(f"the stall probe on CPU {cpu} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        fifo, stalls, used = True, [], 0.0
        for proc in self._procs:
            used += cpu_s(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # never leave a SCHED_FIFO process behind
                proc.kill()
                out, _ = proc.communicate()
            try:
                seen = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                continue  # it failed; its error went to stderr
            fifo &= seen["fifo"]
            stalls.extend((float(t), float(length)) for t, length in seen["stalls"])
        self._procs.clear()
        self.result = Stalls(fifo, self.threshold_ms, used, stalls)
