"""One night of the pipeline in its own process, so the parent can measure its time and memory.

Runs the `nightly_dunning` job in process against the sandbox named by the environment, with
the warehouse at --database-url, and prints one JSON line: step durations and row counts.
The Zendesk export limiter is lifted (the sandbox's is too): the benchmark measures our code,
not Zendesk's 10-requests-per-minute budget, which would add ~6 s per 1,000 tickets.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import dagster as dg


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--as-of", required=True)
    p.add_argument("--database-url", required=True)
    args = p.parse_args()

    from dunning_pipeline import definitions as d
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
    steps = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 2)
        elif event.event_type_value == "STEP_FAILURE":
            error, messages = event.event_specific_data.error, []
            while error is not None:  # Dagster's wrapper first, then the root cause
                messages.append(error.message.strip())
                error = error.cause
            steps[event.step_key] = "FAILED: " + " <- ".join(messages)[-600:]
    print(json.dumps({"success": result.success, "seconds": round(total, 1), "steps": steps,
                      "pid": os.getpid()}))


if __name__ == "__main__":
    main()
