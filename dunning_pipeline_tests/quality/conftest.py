"""Fixtures of the quality tests: the sandbox extracted by the real assets, with and without bad records.

`clean_run` and `faulty_run` (session scope: each costs a sandbox, an extraction and the checks)
run the real Odoo and Zendesk extraction assets against a sandbox, then the quality checks and a
stand-in for the dunning assets, in one Dagster run; `faulty_run`'s sandbox has one bad record
of every kind in `dunning_pipeline.sandbox.data_faults` (what the demo's data-fault switch does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from dunning_pipeline import settings
from dunning_pipeline.odoo.resource import OdooResource
from dunning_pipeline.quality import frames, quarantine
from dunning_pipeline.quality.checks import build_all_asset_checks
from dunning_pipeline.quality.suites import SUITES, RuleKind, SuiteParams
from dunning_pipeline.quality.thresholds import Thresholds
from dunning_pipeline.quality.validation import RuleOutcome, evaluate_table
from dunning_pipeline.sandbox import Sandbox, data_faults
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.zendesk.resource import ZendeskResource

AS_OF = date(2026, 3, 2)
SEED = 11
RAW_ASSETS = ("odoo_invoices", "odoo_customers", "odoo_receivable_lines", "odoo_reconciliations", "zendesk_tickets",
              "zendesk_users", "zendesk_comments")


@dg.asset(deps=list(RAW_ASSETS), group_name="dunning")
def dunning_stand_in(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Stands in for the dunning engine: what it would use, the quarantined records left out."""
    wh = warehouse.get_warehouse()
    held = quarantine.quarantined_ids(wh, "odoo_invoices")
    ids = [int(i) for i in wh.read("odoo_invoices", columns=["id"])["id"] if int(i) not in held]
    return dg.MaterializeResult(metadata={"invoice_ids": dg.MetadataValue.json(sorted(ids))})


def sandbox_resources(sb: Sandbox, warehouse_url: str) -> dict:
    env = sb.env
    return {
        "odoo": OdooResource(url=env["ODOO_URL"], database=env["ODOO_DB"], username=env["ODOO_USERNAME"],
                             api_key=env["ODOO_API_KEY"]),
        "zendesk": ZendeskResource(url=env["ZENDESK_URL"], email=env["ZENDESK_EMAIL"],
                                   api_token=env["ZENDESK_API_TOKEN"]),
        "warehouse": WarehouseResource(database_url=warehouse_url),
    }


@dataclass
class PipelineRun:
    result: dg.ExecuteInProcessResult
    warehouse: Warehouse
    faults: list[data_faults.DataFault]

    def fault(self, kind: str) -> data_faults.DataFault:
        return next(f for f in self.faults if f.kind == kind)

    def evaluations(self) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
        return {(e.asset_key.to_user_string(), e.check_name): e for e in self.result.get_asset_check_evaluations()}

    def materialized(self) -> set[str]:
        return {e.asset_key.to_user_string() for e in self.result.get_asset_materialization_events()}


def run_pipeline(directory: Path, fault_kinds: list[str] | None) -> PipelineRun:
    from dunning_pipeline.odoo.assets import (
        odoo_customers,
        odoo_invoices,
        odoo_receivable_lines,
        odoo_reconciliations,
    )
    from dunning_pipeline.zendesk.assets import zendesk_comments, zendesk_tickets_and_users

    url = f"sqlite:///{directory / 'warehouse.sqlite'}"
    with Sandbox(seed=SEED, customers=30, invoices=300, as_of=AS_OF) as sb:
        faults = data_faults.inject(sb.data, fault_kinds) if fault_kinds else []
        result = dg.materialize(
            [odoo_invoices, odoo_customers, odoo_receivable_lines, odoo_reconciliations, zendesk_tickets_and_users,
             zendesk_comments, dunning_stand_in,
             *build_all_asset_checks()],
            resources=sandbox_resources(sb, url),
            tags={settings.AS_OF_TAG: AS_OF.isoformat()},
            raise_on_error=False,
        )
    return PipelineRun(result, Warehouse(url), faults)


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory) -> PipelineRun:
    return run_pipeline(tmp_path_factory.mktemp("clean"), None)


@pytest.fixture(scope="session")
def faulty_run(tmp_path_factory) -> PipelineRun:
    return run_pipeline(tmp_path_factory.mktemp("faulty"), list(data_faults.KINDS))


def evaluate_warehouse(wh: Warehouse, thresholds: Thresholds | None = None,
                       as_of: date = AS_OF) -> dict[tuple[str, str], RuleOutcome]:
    """Every rule of every raw table, evaluated on the warehouse directly (no Dagster gating)."""
    params_t = thresholds or Thresholds()
    refs = frames.reference_ids(wh, RAW_ASSETS)
    out = {}
    for asset in RAW_ASSETS:
        frame, unparsed = frames.read_table(wh, asset)
        for o in evaluate_table(asset, frame, SuiteParams(as_of, params_t, unparsed), reference_ids=refs):
            out[(asset, o.rule.name)] = o
    return out


ALL_RULES = [(asset, rule.name) for asset in SUITES for rule in SUITES[asset]]
QUARANTINING = {(asset, rule.name) for asset in SUITES for rule in SUITES[asset]
                if rule.kind in (RuleKind.RECORD, RuleKind.REFERENCE)}
