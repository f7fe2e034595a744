"""The full code location: it loads, validates, and has the assets, checks, jobs and schedules."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from dunning_pipeline.definitions import defs
from dunning_pipeline.schedules import nightly_dunning_schedule

RAW = {"odoo_invoices": "odoo", "odoo_customers": "odoo", "zendesk_tickets": "zendesk",
       "zendesk_users": "zendesk", "zendesk_comments": "zendesk"}
ENGINE = {"receivables": "dunning", "customer_communications": "dunning",
          "invoice_aging": "dunning", "dunning_history": "dunning"}


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    for key, group in {**RAW, **ENGINE, "weekly_slack_alert": "slack"}.items():
        assert groups.get(key) == group, f"{key}: expected in group {group}, found {groups.get(key)}"
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owner"
        assert node.kinds, f"{key.to_user_string()} has no kinds"


def test_jobs_and_schedules_are_defined_with_explicit_time_zones():
    nightly = defs.resolve_job_def("nightly_dunning")
    selected = {k.to_user_string() for k in nightly.asset_layer.executable_asset_keys}
    assert set(RAW) | set(ENGINE) <= selected
    assert "weekly_slack_alert" not in selected
    schedule = defs.resolve_schedule_def("nightly_dunning_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == os.environ.get("DUNNING_TIMEZONE", "UTC")
    weekly = defs.resolve_schedule_def("weekly_slack_alert_schedule")
    assert weekly.execution_timezone == schedule.execution_timezone


def test_every_raw_asset_has_data_quality_checks():
    graph = defs.resolve_asset_graph()
    checked = {key.asset_key.to_user_string() for key in graph.asset_check_keys}
    assert set(RAW) <= checked


def test_nightly_schedule_tags_each_run_with_its_business_day():
    tick = datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("UTC"))
    # A partitioned job's run request is resolved against the repository (the key must exist).
    context = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def())
    request = nightly_dunning_schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-03-02" and request.tags["dunning/as_of"] == "2026-03-02"
    assert request.run_key == "nightly-2026-03-02"


def _load_in_subprocess(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import sys, dunning_pipeline.definitions as d;"
        "s = d.defs.resolve_schedule_def('nightly_dunning_schedule');"
        "print(s.execution_timezone);"
        "print('great_expectations' in sys.modules)"
    )
    env = {**os.environ, **env_overrides}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_time_zone_comes_from_the_environment_and_bad_values_name_the_variable():
    ok = _load_in_subprocess({"DUNNING_TIMEZONE": "Europe/Berlin"})
    assert ok.returncode == 0, ok.stderr
    zone, gx_imported = ok.stdout.split()
    assert zone == "Europe/Berlin"
    # Loading the code location must not pay Great Expectations' multi-second import.
    assert gx_imported == "False"
    bad = _load_in_subprocess({"DUNNING_TIMEZONE": "Europe/Atlantis"})
    assert bad.returncode != 0
    assert "DUNNING_TIMEZONE='Europe/Atlantis' is not an IANA time zone name" in bad.stderr
