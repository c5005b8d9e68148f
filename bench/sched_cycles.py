#!/usr/bin/env python3
"""bench/sched_cycles.py TRACE PROXY_PIDS MOCK_PIDS: where a 1-connection run's calls waited.

Reads a `perf sched record -a` trace of one bench/proxy.sh run (wrk -> proxy -> mock on
loopback, one connection) through `perf sched timehist -w` and prints one line: the calls as
wrk saw them (a cycle runs from one wake-up of wrk's thread to the next: one call each, since
wrk sleeps while its call is out), their p50 and p99, and what ran during the slow ones.

- placement: where the scheduler kept the three threads of the chain. On two cores, the proxy
  shares a core with the mock or with wrk (two wake-ups cross cores per call), or runs alone
  (all four do). A wake-up that crosses cores costs tens of microseconds on a virtual machine,
  and the scheduler keeps whichever arrangement it lands in, so this changes from run to run.
- the proxy's other threads (for keygate: the usage writer, the store writer, the
  checkpointer): the share of calls during which one of them ran, and the p99 without those.
- kernel workers (softirq, kworker, journal): the same.

PROXY_PIDS and MOCK_PIDS are comma-separated process ids (a proxy's workers included). The
proxy's thread that served the connection is the one of those processes seen most often; the
mock's likewise; wrk's is the busiest thread named wrk.
"""
import collections
import re
import subprocess
import sys

KERNEL_WORKERS = ("ksoftirqd", "kworker", "jbd2", "kcompactd", "rcu", "migration")
TASK = re.compile(r"^(.*)\[(\d+)(?:/(\d+))?\]$")  # comm[tid/pid] or comm[pid]
# "TIME [CPU] TASK REST": a task name may hold spaces, its [tid/pid] ends it.
LINE = re.compile(r"^\s*(\d+\.\d+)\s+(\[\d+\])\s+(.*?\[\d+(?:/\d+)?\])(.*)$")


def parse(task):
    """(comm, tid, pid) of a timehist task name; pid is tid for a process's main thread."""
    m = TASK.match(task)
    if not m:
        return task, -1, -1
    tid = int(m.group(2))
    return m.group(1), tid, int(m.group(3)) if m.group(3) else tid


def events(trace):
    """(time_us, cpu, task, wakee or None) for every switch-out and wake-up in the trace."""
    out = subprocess.run(["perf", "sched", "timehist", "-w", "-i", trace], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        rest = m.group(4)
        woken = rest.split("awakened: ")[1].strip() if "awakened: " in rest else None
        yield float(m.group(1)) * 1e6, m.group(2), m.group(3), woken


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def main():
    trace, proxy_pids, mock_pids = sys.argv[1], sys.argv[2], sys.argv[3]
    proxy = {int(p) for p in proxy_pids.split(",") if p}
    mock = {int(p) for p in mock_pids.split(",") if p}
    if proxy & mock:  # the direct path: no proxy between wrk and the mock
        proxy = set()
    try:
        evs = list(events(trace))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"no trace read from {trace} ({e})")
        return
    seen = collections.Counter(e[2] for e in evs)

    def busiest(keep):
        found = [task for task, _ in seen.most_common() if keep(parse(task))]
        return found[0] if found else None

    wrk = busiest(lambda t: t[0] == "wrk")
    server = busiest(lambda t: t[2] in proxy)
    mock_worker = busiest(lambda t: t[2] in mock)
    if wrk is None or mock_worker is None:
        print("wrk or the mock not found in the trace")
        return
    anchors = [i for i, e in enumerate(evs) if e[3] == wrk]
    cycles = []  # (duration_us, placement, proxy's other threads ran, kernel workers ran)
    for a, b in zip(anchors, anchors[1:]):
        cpus = collections.defaultdict(set)
        others = kernel = False
        for _, cpu, task, woken in evs[a + 1:b + 1]:
            for name in (task, woken):
                if name is None:
                    continue
                comm, _, pid = parse(name)
                others |= pid in proxy and name != server
                kernel |= comm.startswith(KERNEL_WORKERS)
            if woken is None and task in (wrk, server, mock_worker):
                cpus[task].add(cpu)
        placement = "mixed"
        if server is not None and all(len(cpus[t]) == 1 for t in (wrk, server, mock_worker)):
            w, s, m = (next(iter(cpus[t])) for t in (wrk, server, mock_worker))
            placement = "with mock" if s == m else "with wrk" if s == w else "alone"
        cycles.append((evs[b][0] - evs[a][0], placement, others, kernel))
    if not cycles:
        print("no calls found in the trace")
        return

    def summary(selected):
        durations = sorted(c[0] for c in selected)
        return len(durations), percentile(durations, 0.5), percentile(durations, 0.99)

    n, p50, p99 = summary(cycles)
    parts = [f"{n} calls, p50 {p50:.0f} us, p99 {p99:.0f} us"]
    if server is not None:
        shares = []
        for placement in ("with mock", "with wrk", "alone", "mixed"):
            chosen = [c for c in cycles if c[1] == placement]
            if chosen:
                shares.append(f"{placement} {100 * len(chosen) / n:.0f}% "
                              f"(p50 {summary(chosen)[1]:.0f})")
        parts.append("proxy " + ", ".join(shares))
        clean = [c for c in cycles if not c[2]]
        parts.append(f"its other threads ran in {100 * (n - len(clean)) / n:.1f}% "
                     f"(p99 without: {summary(clean)[2]:.0f})" if clean else
                     "its other threads ran in every call")
    clean = [c for c in cycles if not c[3]]
    parts.append(f"kernel workers in {100 * (n - len(clean)) / n:.1f}% "
                 f"(p99 without: {summary(clean)[2]:.0f})" if clean else
                 "kernel workers in every call")
    quiet = [c for c in cycles if not c[2] and not c[3]]
    if quiet:
        parts.append(f"p99 of the calls with neither: {summary(quiet)[2]:.0f}")
    print("; ".join(parts))


if __name__ == "__main__":
    main()
