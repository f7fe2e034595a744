"""Hand-made `dunning_history` rows for the slack tests (the engine is not needed to test the alert)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from dunning_pipeline.money import to_units

COLUMNS = [
    "invoice_id", "invoice_number", "move_type", "customer_id", "customer_name", "company_id",
    "currency", "company_currency", "from_stage", "to_stage", "as_of_date", "run_id", "reason",
    "stages_skipped", "days_overdue", "invoice_date_due", "amount_residual",
    "amount_residual_company", "hold_reason", "hold_until", "ticket_id", "recorded_at",
]


def row(invoice_id: int, customer_id: int, name: str, from_stage: str | None, to_stage: str,
        as_of: date, *, amount: str = "100.00", currency: str = "EUR", due: date | None = None,
        reason: str = "days_overdue", number: str | None = None, skipped: int = 0,
        hold: str | None = None, hold_until: date | None = None, ticket: int | None = None,
        run_id: str = "run-test") -> dict:
    due = due or as_of
    units = to_units(amount)
    return {
        "invoice_id": invoice_id,
        "invoice_number": number or f"INV/2026/{invoice_id:05d}",
        "move_type": "out_invoice",
        "customer_id": customer_id,
        "customer_name": name,
        "company_id": 1,
        "currency": currency,
        "company_currency": currency,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "as_of_date": pd.Timestamp(as_of),
        "run_id": run_id,
        "reason": reason,
        "stages_skipped": skipped,
        "days_overdue": (as_of - due).days,
        "invoice_date_due": pd.Timestamp(due),
        "amount_residual": units,
        "amount_residual_company": units,
        "hold_reason": hold,
        "hold_until": pd.Timestamp(hold_until) if hold_until else None,
        "ticket_id": ticket,
        "recorded_at": pd.Timestamp(datetime(as_of.year, as_of.month, as_of.day, 2, 0)),
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows typed as `Warehouse.read` returns them (money int64 units, dates datetime64)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("as_of_date", "invoice_date_due", "hold_until"):
        df[col] = pd.to_datetime(df[col]).astype("datetime64[s]")
    df["recorded_at"] = pd.to_datetime(df["recorded_at"]).astype("datetime64[us]")
    for col in ("stages_skipped", "days_overdue", "ticket_id"):
        df[col] = df[col].astype("Int64")
    for col in ("amount_residual", "amount_residual_company"):
        df[col] = df[col].astype("int64")
    return df


def alert_job(resources: dict):
    """The weekly_slack_alert job (the only one that posts) bound to `resources`."""
    import dagster as dg

    from dunning_pipeline.slack.definitions import weekly_slack_alert_job
    from dunning_pipeline.slack.assets import weekly_slack_alert

    return dg.Definitions(assets=[weekly_slack_alert], jobs=[weekly_slack_alert_job],
                          resources=resources).resolve_job_def("weekly_slack_alert")
