"""The tunable limits of the data-quality rules, validated by pydantic.

Pure (no Dagster): `checks.QualityConfig` exposes the same fields as the run config of each check
op (`<asset>_data_quality`, and `<asset>_references` for the reference rules), e.g.

    ops:
      odoo_invoices_data_quality: {config: {freshness_days: 5, allow_due_before_invoice: true}}
      odoo_invoices_references: {config: {max_broken_reference_share: 0.02}}

so a data engineer can change a limit for a run in the launchpad without touching code.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Thresholds(BaseModel):
    """Limits of the rules; the defaults suit a company that syncs Odoo and Zendesk nightly."""

    freshness_days: int = Field(
        default=3, ge=0,
        description="Warn when the newest write_date (invoices) / updated_at (tickets) is more than "
                    "this many days before the run's as-of date: the source may have stopped syncing. "
                    "3 covers a weekend without new invoices.",
    )
    max_broken_reference_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="Share of rows (0..1) whose reference (invoice partner, ticket requester, "
                    "comment ticket) may point nowhere before the reference check blocks as ERROR; "
                    "at or below it the rows are quarantined with a WARN. A broken extraction of the "
                    "referenced table breaks far more than 5%.",
    )
    allow_due_before_invoice: bool = Field(
        default=False,
        description="Accept a due date before the invoice date (some imports back-date invoices). "
                    "When false such invoices are quarantined.",
    )
    plausible_years_past: int = Field(
        default=30, ge=1,
        description="A date more than this many years before the as-of date is implausible "
                    "(a typo such as 0226 for 2026).",
    )
    plausible_years_future: int = Field(
        default=10, ge=1,
        description="A date more than this many years after the as-of date is implausible.",
    )
    sample_size: int = Field(
        default=20, ge=1, le=1000,
        description="Failing records listed per check in its metadata (all of them are counted "
                    "and quarantined; only the listing is capped).",
    )
