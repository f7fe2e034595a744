"""The AR aging report as files: a CSV and a self-contained HTML page per run.

The folder is `DUNNING_REPORT_DIR`, default `$DAGSTER_HOME/reports`. The HTML embeds its CSS and
the chart (a PNG data URI): it opens from a file share or an email attachment with no network.
Amounts are written with the currency's own decimals, exactly (no float on the way).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from dunning_pipeline import lazy, money
from dunning_pipeline.reporting import report as report_mod
from dunning_pipeline.reporting.charts import data_uri

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

REPORT_DIR_VAR = "DUNNING_REPORT_DIR"
_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .6rem}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.3rem 0}.muted{color:#656d76}"""


def report_folder(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = (env.get(REPORT_DIR_VAR) or "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    home = Path(env.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()
    return home / "reports"


def plain_amount(units, currency: str | None) -> str:
    """'1234.50': exact, the currency's decimals, no thousands separator (for CSV)."""
    if pd.isna(units):
        return ""
    places = money.currency_decimals(currency)
    return str(money.to_decimal(int(units)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def csv_frame(summary: pd.DataFrame, buckets: pd.DataFrame) -> pd.DataFrame:
    """One line per customer and company: the summary and its company-currency buckets."""
    pivot = report_mod.bucket_pivot(buckets, report_mod.COMPANY, ["company_id", "customer_id"])
    labels = [c for c in pivot.columns if c not in ("company_id", "customer_id", "currency", "total")]
    merged = summary.merge(pivot.drop(columns=["currency", "total"]), on=["company_id", "customer_id"], how="left")
    money_cols = ["total_company", "current_company", "overdue_company", "open_credit_company",
                  "on_hold_company", *labels]
    out = merged.copy()
    for col in money_cols:
        out[col] = [plain_amount(u, c) for u, c in zip(out[col], out["company_currency"], strict=True)]
    return out.drop(columns=["run_id"])


def _html_table(frame: pd.DataFrame, caption: str, numeric: set[str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.astype(object).where(frame.notna(), "").itertuples(index=False):
        cells = "".join(
            f'<td class="n">{html.escape(str(v))}</td>' if c in numeric else f"<td>{html.escape(str(v))}</td>"
            for c, v in zip(frame.columns, row, strict=True))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(*, as_of: date, run_id: str, summary: pd.DataFrame, buckets: pd.DataFrame, png: bytes | None,
                top: int = 25) -> str:
    totals = report_mod.bucket_pivot(buckets, report_mod.COMPANY, ["company_id"])
    by_currency = report_mod.bucket_pivot(buckets, report_mod.INVOICE, ["company_id"])
    labels = [c for c in totals.columns if c not in ("company_id", "currency")]
    cur_labels = [c for c in by_currency.columns if c not in ("company_id", "currency")]
    totals = report_mod.format_money_columns(totals, labels)
    by_currency = report_mod.format_money_columns(by_currency, cur_labels)
    customers = report_mod.top_customers(summary, top)
    shown = customers[["company_id", "customer_name", "company_currency", "total_company", "overdue_company",
                       "open_credit_company", "oldest_due_date", "highest_stage", "dunning_status", "hold_reasons",
                       "promised_date", "last_inbound_at", "last_outbound_at"]].copy()
    shown = report_mod.format_money_columns(shown, ["total_company", "overdue_company", "open_credit_company"],
                                            currency="company_currency")
    for col in ("oldest_due_date", "promised_date"):
        shown[col] = pd.to_datetime(shown[col]).dt.strftime("%Y-%m-%d")
    for col in ("last_inbound_at", "last_outbound_at"):
        shown[col] = pd.to_datetime(shown[col]).dt.strftime("%Y-%m-%d %H:%M UTC")
    chart = (f'<img alt="Open receivables by aging bucket" src="{data_uri(png)}">' if png else
             '<p class="muted">No chart (no open receivables, or it could not be drawn: see the run log).</p>')
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>AR aging report {as_of.isoformat()}</title><style>{_CSS}</style></head><body>",
        f"<h1>AR aging report, as of {as_of.isoformat()}</h1>",
        f'<p class="muted">Run {html.escape(run_id)}. Per customer (commercial partner) and company; '
        "amounts in company currency unless stated; credit notes are negative.</p>",
        chart,
        _html_table(totals, "Totals per company (company currency)", set(labels)),
        _html_table(by_currency, "Totals per company and invoice currency", set(cur_labels)),
        _html_table(shown, f"Top {len(shown)} customers by overdue balance",
                    {"total_company", "overdue_company", "open_credit_company"}),
        "</body></html>",
    ]
    return "\n".join(parts)


@dataclass(frozen=True)
class WrittenReport:
    csv: Path
    html: Path


def write_report(folder: Path, *, as_of: date, run_id: str, summary: pd.DataFrame, buckets: pd.DataFrame,
                 png: bytes | None) -> WrittenReport:
    """Write both files (named by as-of date and run) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"ar_aging_report_{as_of.isoformat()}_{run_id[:8]}"
    csv_path, html_path = folder / f"{stem}.csv", folder / f"{stem}.html"
    csv_frame(summary, buckets).to_csv(csv_path, index=False)
    html_path.write_text(render_html(as_of=as_of, run_id=run_id, summary=summary, buckets=buckets, png=png),
                         encoding="utf-8")
    return WrittenReport(csv_path, html_path)
