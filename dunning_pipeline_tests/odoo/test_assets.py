"""The odoo_invoices and odoo_customers assets, materialized with the real resources against the
sandbox and the warehouse (SQLite and PostgreSQL): rows, metadata, progress logs, secrets."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
import pytest

from dunning_pipeline import money
from dunning_pipeline.definitions import defs as full_defs
from dunning_pipeline.odoo.assets import odoo_customers, odoo_invoices
from dunning_pipeline.odoo.definitions import defs
from dunning_pipeline.odoo.resource import OdooResource
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline_tests.odoo.conftest import make_sandbox, out_moves


def resources(sb, warehouse_url, monkeypatch, **odoo_overrides):
    for name in ("ODOO_URL", "ODOO_DB", "ODOO_USERNAME", "ODOO_API_KEY"):
        monkeypatch.setenv(name, sb.env[name])
    odoo = OdooResource(
        url=dg.EnvVar("ODOO_URL"), database=dg.EnvVar("ODOO_DB"), username=dg.EnvVar("ODOO_USERNAME"),
        api_key=dg.EnvVar("ODOO_API_KEY"), page_size=50, backoff_factor=0.0, max_retries=1,
        **odoo_overrides,
    )
    return {"odoo": odoo, "warehouse": WarehouseResource(database_url=warehouse_url)}


def materialize(sb, warehouse_url, monkeypatch, **kw):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [odoo_invoices, odoo_customers], resources=resources(sb, warehouse_url, monkeypatch, **kw),
        instance=instance, raise_on_error=False,
    )
    messages = [e.user_message or "" for e in instance.all_logs(result.run_id)]
    return result, messages


def meta(result, asset: str) -> dict:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.mark.parametrize("version", ["17.0", "19.0"])
def test_materialize_twice_then_after_a_night(version, warehouse_url, monkeypatch):
    with make_sandbox(version) as sb:
        result, logs = materialize(sb, warehouse_url, monkeypatch)
        assert result.success
        n_inv, n_cust = len(out_moves(sb.data)), len(sb.data.partners)
        inv, cust = meta(result, "odoo_invoices"), meta(result, "odoo_customers")
        assert inv["mode"] == "full" and inv["fetched"] == inv["changed"] == n_inv
        assert inv["dagster/row_count"] == inv["rows_in_table"] == n_inv
        assert inv["protocol"] == ("json2" if version == "19.0" else "jsonrpc")
        assert inv["odoo_version"] == version
        assert inv["high_water_mark"] == max(m["write_date"] for m in out_moves(sb.data))
        assert cust["dagster/row_count"] == n_cust and cust["changed"] == n_cust
        schema = inv["dagster/column_schema"]
        assert [c.name for c in schema.columns][:3] == ["id", "name", "move_type"]
        assert inv["preview"].splitlines()[0].split("|")[1].strip() == "id"  # a markdown table
        assert "page 1: 50 invoices (50 so far)" in logs
        assert any(m.startswith("page 1: ") and "customers" in m for m in logs)

        wh = Warehouse(warehouse_url)
        try:
            assert wh.count("odoo_invoices") == n_inv and wh.count("odoo_customers") == n_cust
        finally:
            wh.dispose()

        again, _ = materialize(sb, warehouse_url, monkeypatch)
        inv2 = meta(again, "odoo_invoices")
        assert inv2["mode"] == "incremental" and inv2["changed"] == 0
        assert inv2["preview"] == "_no rows_"
        assert meta(again, "odoo_customers")["changed"] == 0

        mark = inv["high_water_mark"]
        sb.advance_night()
        changed = [m for m in out_moves(sb.data) if m["write_date"] > mark]
        night, _ = materialize(sb, warehouse_url, monkeypatch)
        inv3 = meta(night, "odoo_invoices")
        assert inv3["changed"] == len(changed) > 0
        assert inv3["dagster/row_count"] == len(out_moves(sb.data))
        first_changed = min(changed, key=lambda m: m["id"])
        assert first_changed["name"] in inv3["preview"]


def test_preview_shows_exact_amounts(sandbox, sqlite_url, monkeypatch):
    result, _ = materialize(sandbox, sqlite_url, monkeypatch)
    preview = meta(result, "odoo_invoices")["preview"]
    first = out_moves(sandbox.data)[0]
    amount = money.format_amount(money.to_units(Decimal(repr(first["amount_total"]))),
                                 first["currency_id"][1])
    assert amount in preview and first["name"] in preview


def test_a_wrong_key_fails_the_run_clearly_without_showing_it(sqlite_url, monkeypatch):
    with make_sandbox("19.0") as sb:
        env_key = "wrong-key-" + "x" * 20
        monkeypatch.setenv("ODOO_API_KEY", env_key)
        for name in ("ODOO_URL", "ODOO_DB", "ODOO_USERNAME"):
            monkeypatch.setenv(name, sb.env[name])
        instance = dg.DagsterInstance.ephemeral()
        odoo = OdooResource(url=dg.EnvVar("ODOO_URL"), database=dg.EnvVar("ODOO_DB"),
                            username=dg.EnvVar("ODOO_USERNAME"), api_key=dg.EnvVar("ODOO_API_KEY"))
        result = dg.materialize([odoo_invoices], instance=instance, raise_on_error=False,
                                resources={"odoo": odoo, "warehouse": WarehouseResource(database_url=sqlite_url)})
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        text = str(failure.event_specific_data.error)
        assert "OdooAuthError" in text and "re-issue your Odoo API key" in text
        everything = " ".join(str(e) for e in instance.all_logs(result.run_id))
        assert env_key not in everything and env_key not in text


def test_missing_configuration_names_the_variable(sqlite_url, monkeypatch):
    monkeypatch.setenv("ODOO_URL", "odoo.example.com")  # no scheme
    for name in ("ODOO_DB", "ODOO_USERNAME", "ODOO_API_KEY"):
        monkeypatch.setenv(name, "x")
    odoo = OdooResource(url=dg.EnvVar("ODOO_URL"), database=dg.EnvVar("ODOO_DB"),
                        username=dg.EnvVar("ODOO_USERNAME"), api_key=dg.EnvVar("ODOO_API_KEY"))
    result = dg.materialize([odoo_invoices], raise_on_error=False,
                            resources={"odoo": odoo, "warehouse": WarehouseResource(database_url=sqlite_url)})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "ODOO_URL must be an http(s) URL" in str(failure.event_specific_data.error)


def test_asset_definitions_are_described_grouped_and_owned():
    assert {a.key.to_user_string() for a in defs.assets} == {"odoo_invoices", "odoo_customers",
                                                             "odoo_receivable_lines", "odoo_reconciliations"}
    graph = full_defs.resolve_asset_graph()
    for key in ("odoo_invoices", "odoo_customers", "odoo_receivable_lines", "odoo_reconciliations"):
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == "odoo"
        assert {"odoo", "python"} <= set(node.kinds)
        assert node.owners == ["team:finance-data"]
        assert node.description and len(node.description) > 80
        columns = [c.name for c in node.metadata["dagster/column_schema"].columns]
        # The tables the checks judge keep why a field did not parse (see odoo/parse.py).
        assert columns[-2:] == ["extracted_at", "parse_error"]


def _materialize_with_the_code_locations_resources(sb, sqlite_url, monkeypatch, **env):
    from dunning_pipeline.definitions import build_resources

    for name in ("ODOO_URL", "ODOO_DB", "ODOO_USERNAME", "ODOO_API_KEY"):
        monkeypatch.setenv(name, sb.env[name])
    monkeypatch.setenv("DUNNING_DATABASE_URL", sqlite_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bound = build_resources()
    return dg.materialize([odoo_invoices], raise_on_error=False,
                          resources={"odoo": bound["odoo"], "warehouse": bound["warehouse"]})


def test_odoo_protocol_is_an_environment_variable_and_late_commits_are_in_the_metadata(sqlite_url, monkeypatch):
    with make_sandbox("19.0") as sb:
        first = _materialize_with_the_code_locations_resources(sb, sqlite_url, monkeypatch,
                                                               ODOO_PROTOCOL="jsonrpc")
        assert first.success
        inv = meta(first, "odoo_invoices")
        assert inv["protocol"] == "jsonrpc" and "deprecated in 19" in inv["warnings"]
        assert "open_moves_verified" not in inv  # a full run has nothing to verify
        late = sb.late_commit()
        second = _materialize_with_the_code_locations_resources(sb, sqlite_url, monkeypatch,
                                                                ODOO_PROTOCOL="jsonrpc")
        inv2 = meta(second, "odoo_invoices")
        assert inv2["late_changes_found"] == 1 and inv2["open_moves_verified"] > 1
        assert str(late.move_id) not in inv2.get("notes", "")
        bad = _materialize_with_the_code_locations_resources(sb, sqlite_url, monkeypatch,
                                                             ODOO_PROTOCOL="xmlrpc")
        assert not bad.success
        (failure,) = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "ODOO_PROTOCOL must be one of auto, json2, jsonrpc" in str(failure.event_specific_data.error)


def test_an_unreadable_company_is_a_warning_in_the_metadata(sqlite_url, monkeypatch):
    with make_sandbox("17.0") as sb:
        assert _materialize_with_the_code_locations_resources(sb, sqlite_url, monkeypatch).success
        company = sb.data.companies[-1]
        sb.revoke_company(company["id"])
        result = _materialize_with_the_code_locations_resources(sb, sqlite_url, monkeypatch)
        inv = meta(result, "odoo_invoices")
        assert inv["unreadable_companies"] == f"{company['name']} (id {company['id']})"
        assert "can no longer read it" in inv["warnings"]
