"""One night of the pipeline in its own process, so the parent can measure its time and memory.

Runs the `nightly_dunning` job in process against the sandbox named by the environment, with
the warehouse at --database-url, and prints one JSON line: per step its wall seconds (from the
STEP_START and STEP_SUCCESS events' timestamps) and its peak RSS (the largest VmRSS a sampling
thread saw between them, or the kernel's high-water mark VmHWM where it rose during the step: a
spike between two samples still counts; the in-process executor runs one step at a time), plus the time to load
the code location. The Zendesk export limiter is lifted (the sandbox's is too): the benchmark
measures our code, not Zendesk's 10-requests-per-minute budget.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

_RSS_SAMPLES: list[tuple[float, int, int]] = []  # (time.time(), VmRSS, VmHWM in KiB)


def _rss_kib() -> tuple[int, int]:
    """VmRSS and VmHWM (the process's peak RSS so far, as the kernel reports it to wait4)."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line[:5]] = int(line.split()[1])
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


def _sample_rss(stop: threading.Event, every: float = 0.05) -> None:
    while not stop.is_set():
        _RSS_SAMPLES.append((time.time(), *_rss_kib()))
        stop.wait(every)


def _peak_mb(start: float, end: float) -> int:
    """The highest RSS sampled while the step ran, counting the samples just before and after it
    (a step shorter than the sampling interval has no sample of its own but still held that
    memory); or, where the high-water mark rose from the sample before the step to the one after
    it, that mark: the step reached it, if only between two samples."""
    samples = list(_RSS_SAMPLES)
    before = [s for s in samples if s[0] < start][-1:]
    after = [s for s in samples if s[0] > end][:1]
    window = before + [s for s in samples if start <= s[0] <= end] + after
    peak = max((rss for _, rss, _ in window), default=0)
    if before and after and after[0][2] > before[0][2]:
        peak = max(peak, after[0][2])
    return round(peak / 1024)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--as-of", required=True)
    p.add_argument("--database-url", required=True)
    args = p.parse_args()
    stop = threading.Event()
    threading.Thread(target=_sample_rss, args=(stop,), daemon=True).start()

    load_started = time.perf_counter()
    import dagster as dg

    from dunning_pipeline import definitions as d
    load_s = time.perf_counter() - load_started
    from dunning_pipeline.schedules import nightly_dunning
    from dunning_pipeline.warehouse.resource import WarehouseResource
    from dunning_pipeline.zendesk.resource import ZendeskResource

    resources = d.build_resources()
    resources["warehouse"] = WarehouseResource(database_url=args.database_url)
    resources["zendesk"] = ZendeskResource(
        url=dg.EnvVar("ZENDESK_URL"), email=dg.EnvVar("ZENDESK_EMAIL"),
        api_token=dg.EnvVar("ZENDESK_API_TOKEN"), export_requests_per_minute=10_000,
    )
    bench = dg.Definitions.merge(
        d.odoo_part.defs, d.zendesk_part.defs, d.quality_part.defs, d.dunning_part.defs, d.reporting_part.defs,
        dg.Definitions(jobs=[nightly_dunning], resources=resources),
    )
    job = bench.resolve_job_def("nightly_dunning")
    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, partition_key=args.as_of,
                                        raise_on_error=False)
        total = time.perf_counter() - started
        stop.set()
        starts, steps = {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type_value
            if kind == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif kind == "STEP_SUCCESS":
                begin = starts.get(event.step_key, entry.timestamp)
                steps[event.step_key] = {"seconds": round(entry.timestamp - begin, 2),
                                         "peak_rss_mb": _peak_mb(begin, entry.timestamp)}
            elif kind == "STEP_FAILURE":
                error, messages = event.event_specific_data.error, []
                while error is not None:  # Dagster's wrapper first, then the root cause
                    messages.append(error.message.strip())
                    error = error.cause
                steps[event.step_key] = {"failed": " <- ".join(messages)[-600:]}
    print(json.dumps({"success": result.success, "seconds": round(total, 1), "steps": steps,
                      "load_s": round(load_s, 2), "pid": os.getpid()}))


if __name__ == "__main__":
    main()
