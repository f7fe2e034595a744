"""The data-quality asset checks: one Dagster check per rule of `suites.SUITES`.

Thin wiring (no `from __future__ import annotations`: Dagster reads the parameter annotations).
Each raw asset gets a `multi_asset_check` op `<asset>_data_quality` running its own rules, and,
when it has reference rules, a second op `<asset>_references` that also depends on the
referenced asset (so it runs after that asset was written in the same run). Each op reads the
table from the warehouse, runs its rules in one Great Expectations validation, replaces its part
of the asset's quarantine, and reports one `AssetCheckResult` per rule.

Every check is `blocking`: downstream assets wait for it (so they read tonight's quarantine),
and a failure with ERROR severity (a STRUCTURE rule, a REFERENCE rule above its share, a rule
that could not be evaluated) stops them. RECORD problems fail with WARN: the run goes on
without the quarantined records. Each check's description ends with its severity rule
(`validation.SEVERITY`). References live in their own op because Dagster does not run
a check whose extra dependency was stopped by a blocking check: a broken users table then
skips only the requester check of the tickets, not their other checks.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from dunning_pipeline import runtime
from dunning_pipeline.quality import frames, quarantine, report
from dunning_pipeline.quality.suites import ASSETS, SUITES, Rule, SuiteParams, columns_used
from dunning_pipeline.quality.thresholds import Thresholds
from dunning_pipeline.quality.validation import ERROR, SEVERITY, evaluate_table, quarantine_rows
from dunning_pipeline.warehouse.resource import WarehouseResource


class QualityConfig(dg.Config, Thresholds):
    """Limits of the data-quality rules (defaults and meaning in `quality/thresholds.py`)."""


def _spec(rule: Rule) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        rule.name,
        asset=rule.asset,
        description=SEVERITY[rule.kind].describe(rule.description),
        # Every kind can fail with ERROR (see SEVERITY), and blocking also makes the downstream
        # assets wait for the op, so that they read tonight's quarantine.
        blocking=SEVERITY[rule.kind].can_error,
        additional_deps=list(rule.references),
        metadata={**SEVERITY[rule.kind].metadata(), "rule_kind": rule.kind.value},
    )


def _check_op(asset: str, name: str, rules: Sequence[Rule], owned: dict, description: str):
    @dg.multi_asset_check(
        name=name,
        specs=[_spec(r) for r in rules],
        description=description,
        compute_kind="great_expectations",
    )
    def _checks(context: dg.AssetCheckExecutionContext, config: QualityConfig, warehouse: WarehouseResource):
        yield from run_checks(context, asset, rules, config, warehouse, **owned)

    return _checks


def build_asset_checks(asset: str) -> list[dg.AssetChecksDefinition]:
    """The check ops of one raw asset: its own rules, and its reference rules if it has any."""
    own = [r for r in SUITES[asset] if not r.references]
    refs = [r for r in SUITES[asset] if r.references]
    ref_names = [r.name for r in refs]
    ops = [_check_op(asset, f"{asset}_data_quality", own, {"other_than": ref_names},
                     f"Great Expectations suite of {asset}: keys, columns, enumerations, amounts, dates; "
                     "quarantines its failing records.")]
    if refs:
        targets = sorted({t for r in refs for t in r.references})
        ops.append(_check_op(asset, f"{asset}_references", refs, {"checks": ref_names},
                             f"Great Expectations: references of {asset} into {', '.join(targets)}; "
                             "quarantines records that point nowhere."))
    return ops


def run_checks(context: dg.AssetCheckExecutionContext, asset: str, rules: Sequence[Rule], config: Thresholds,
               warehouse: WarehouseResource, *, checks: Sequence[str] | None = None,
               other_than: Sequence[str] = ()):
    op_context = context.op_execution_context
    as_of = runtime.run_as_of(op_context)
    thresholds = Thresholds.model_validate(config.model_dump())
    wh = warehouse.get_warehouse()
    full = any(r.name == "required_columns" for r in rules)  # column presence needs every column
    columns = None if full else columns_used(
        [e for r in rules for e in r.build(SuiteParams(as_of, thresholds))])
    frame, unparsed = frames.read_table(wh, asset, columns)
    refs = frames.reference_ids(wh, [t for r in rules for t in r.references])
    context.log.info(
        f"{asset}: validating {len(frame)} rows as of {as_of} against {len(rules)} rules with Great Expectations"
        + "".join(f"; {t}: {len(ids)} ids" for t, ids in refs.items()))
    params = SuiteParams(as_of, thresholds, unparsed)
    outcomes = evaluate_table(asset, frame, params, reference_ids=refs, rules=rules)
    held = quarantine_rows(outcomes)
    written = quarantine.replace_quarantine(
        wh, asset, held, run_id=op_context.run_id, as_of=as_of,
        quarantined_at=datetime.now(UTC), checks=checks, other_than=other_than)
    failed = [o for o in outcomes if not o.passed]
    context.log.info(f"{asset}: {len(outcomes) - len(failed)} of {len(outcomes)} checks passed; "
                     f"{written} quarantine row(s) for {held['record_id'].nunique()} record(s)")
    for o in failed:
        log = context.log.error if o.severity == ERROR else context.log.warning
        log(f"{asset}.{o.rule.name} ({o.severity}): {o.summary}")
    for o in outcomes:
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=o.rule.name,
            passed=o.passed,
            severity=dg.AssetCheckSeverity.ERROR if o.severity == ERROR else dg.AssetCheckSeverity.WARN,
            description=o.summary,
            metadata={k: _md(v) for k, v in report.metadata(o, thresholds.sample_size).items()},
        )


def _md(value):
    return dg.MetadataValue.md(value) if isinstance(value, report.Markdown) else value


def build_all_asset_checks() -> list[dg.AssetChecksDefinition]:
    return [op for asset in ASSETS for op in build_asset_checks(asset)]
