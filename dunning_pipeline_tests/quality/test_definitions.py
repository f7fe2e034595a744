"""The checks in the code location: on their assets, with descriptions, blocking, in the nightly
job; loading them never imports Great Expectations; GX runs leave no trace on disk and print no
progress bars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from dunning_pipeline.quality.suites import SUITES

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GX_ANALYTICS_ENABLED"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory) -> tuple[dict, str, Path]:
    """A new interpreter (in an empty directory) that loads the code location, then runs one GX
    validation: what it saw, its stderr, and the directory."""
    cwd = tmp_path_factory.mktemp("fresh")
    proc = _python("""
        import json, os, sys
        import dunning_pipeline.definitions as d
        d.defs.get_repository_def().asset_graph  # resolve everything
        gx_at_load = any(m.split(".")[0] == "great_expectations" for m in sys.modules)
        import pandas as pd
        from dunning_pipeline.quality.gx_runner import validate
        from dunning_pipeline.quality.suites import Expect
        frame = pd.DataFrame({"id": [1, 2, 3], "status": ["open", "odd", "solved"]})
        [r] = validate(frame, [Expect("ExpectColumnValuesToBeInSet",
                                      {"column": "status", "value_set": ["open", "solved"]}, "status", "known")],
                       suite_name="tickets")
        print(json.dumps({"gx_at_load": gx_at_load, "positions": r["positions"].tolist(),
                          "analytics": os.environ["GX_ANALYTICS_ENABLED"]}))
    """, cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr, cwd


def test_loading_the_code_location_does_not_import_great_expectations(fresh_process):
    seen, _stderr, _cwd = fresh_process
    assert seen["gx_at_load"] is False


def test_a_validation_writes_nothing_to_disk_keeps_analytics_off_and_prints_no_progress(fresh_process):
    seen, stderr, cwd = fresh_process
    assert seen["positions"] == [1] and seen["analytics"] == "False"
    assert "Calculating Metrics" not in stderr
    assert list(cwd.iterdir()) == []
    assert not (REPO / "gx").exists()


def test_every_rule_is_a_blocking_check_with_a_description_on_its_asset():
    from dunning_pipeline.definitions import defs

    graph = defs.get_repository_def().asset_graph
    for asset, rules in SUITES.items():
        for rule in rules:
            key = dg.AssetCheckKey(dg.AssetKey(asset), rule.name)
            assert key in graph.asset_check_keys, key
            spec = graph.get_check_spec(key)
            assert spec.description.startswith(rule.description) and len(rule.description) > 20
            assert spec.blocking
            assert {d.asset_key.to_user_string() for d in spec.additional_deps} == set(rule.references)


def test_the_nightly_job_runs_the_checks():
    from dunning_pipeline.definitions import defs

    job = defs.resolve_job_def("nightly_dunning")
    in_job = job.asset_layer.asset_graph.asset_check_keys
    expected = {dg.AssetCheckKey(dg.AssetKey(a), r.name) for a, rules in SUITES.items() for r in rules}
    assert expected <= set(in_job)
