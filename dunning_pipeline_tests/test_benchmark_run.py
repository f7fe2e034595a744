"""`make bench` at a small size runs end to end and writes a report with every step and floor.

1,000 moves and two nights (the first load, the next day after `advance_night`) rather than the
issue's 10k and three nights: the third night only re-runs the same code paths, and a full-size
run would cost minutes of a shared machine. Never asserts a timing.
"""

from __future__ import annotations

import pytest

from benchmarks import run as bench
from benchmarks.floors import ENGINE_STEPS, EXTRACTION_STEPS, request_step
from dunning_pipeline.definitions import defs


def test_request_step_names_the_step_of_a_logged_request():
    odoo = {"method": "POST", "path": "/jsonrpc", "status": 200, "fault": None,
            "json": {"params": {"service": "object", "method": "execute_kw",
                                "args": ["db", 2, "key", "account.move", "search_read", [], {}]}}}
    assert request_step("odoo", odoo) == "odoo_invoices"
    assert request_step("odoo", {**odoo, "path": "/json/2/res.partner/search_read", "json": {}}) == "odoo_customers"
    login = {**odoo, "json": {"params": {"service": "common", "method": "authenticate", "args": []}}}
    assert request_step("odoo", login) == "odoo_session"
    assert request_step("odoo", {**odoo, "status": 503}) is None  # a retried answer is not replayed
    events = {"method": "GET", "path": "/api/v2/incremental/ticket_events.json", "status": 200, "fault": None}
    assert request_step("zendesk", events) == "zendesk_comments"
    assert request_step("zendesk", {**events, "method": "PUT"}) is None  # never replay a write


@pytest.mark.usefixtures("pg_server_url")
def test_small_benchmark_reports_every_step_and_floor(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nThe analysis written by hand.\n\nCommand: `old`\n\n| old table |\n")
    result = bench.main(["--invoices", "1000", "--nights", "2", "--out", str(out)])

    job_steps = set(defs.resolve_job_def("nightly_dunning").graph.node_names())
    [size] = result["sizes"]
    assert [n["night"] for n in size["nights"]] == [1, 2]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nThe analysis written by hand.\n\nCommand: `python -m benchmarks.run")
    assert "| old table |" not in text
    for night in size["nights"]:
        assert set(night["steps"]) == job_steps, "every step of the nightly job, none failed"
        assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 0 for s in night["steps"].values())
        assert night["peak_rss_mb"] >= max(s["peak_rss_mb"] for s in night["steps"].values())
        assert night["floor_b"]["aging_rows"] > 0
        assert {"read_s", "compute_s", "write_s", "peak_rss_mb"} <= set(night["floor_b"])
        assert night["sandbox_cpu_s"] > 0
    first = size["nights"][0]
    # The first night fetches every source, so floor (a) replays pages of every extraction step.
    assert set(first["floor_a"]["steps"]) == {*EXTRACTION_STEPS, "odoo_session"}
    assert all(first["floor_a"]["rows"][s] > 0 for s in EXTRACTION_STEPS)
    assert first["floor_b"]["history_rows"] > 0  # the first night records every invoice's stage
    assert set(ENGINE_STEPS) <= job_steps
    for step in job_steps:
        assert f"| {step} | " in text
    assert "floor a odoo_session" in text and "floor b (DuckDB)" in text
    assert "`import dagster`" in text and result["load"]["import_dagster_s"] > 0
    assert "1,000 moves" in text and "load average" in text


def test_the_profile_summary_counts_each_of_our_functions_once_per_sample(tmp_path):
    """py-spy's collapsed stacks: a function on several lines of one stack counts once, the lock
    wrapper around every step is left out, and library leaves are ranked by their samples."""
    raw = tmp_path / "night.txt"
    raw.write_text(
        "python (1);serialized_step.<locals>.step (dunning_pipeline/runtime.py:74)"
        ";invoice_aging (dunning_pipeline/dunning/assets.py:160);age (dunning_pipeline/dunning/aging.py:10)"
        ";age (dunning_pipeline/dunning/aging.py:42);read_sql (pandas/io/sql.py:600) 3\n"
        "python (1);invoice_aging (dunning_pipeline/dunning/assets.py:170);execute (sqlalchemy/engine/base.py:1) 1\n"
        "garbage line without a count\n")
    summary = bench.profile_summary(raw)
    assert summary["samples"] == 4
    assert summary["ours_inclusive"] == [("invoice_aging (dunning_pipeline/dunning/assets.py)", 100.0),
                                         ("age (dunning_pipeline/dunning/aging.py)", 75.0)]
    assert summary["leaves"] == [("read_sql (pandas/io/sql.py)", 75.0), ("execute (sqlalchemy/engine/base.py)", 25.0)]
