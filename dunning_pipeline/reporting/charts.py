"""Charts of the report and the KPIs: Altair specs rendered to PNG offline by vl-convert.

vl-convert embeds the Vega-Lite compiler and a renderer; it fetches nothing (data is inline in
the spec, and no remote font or schema is loaded), so a chart renders on a machine without
network. The PNG goes into Dagster's markdown metadata as a data URI (the UI renders base64
images in markdown), into the self-contained HTML report, and into the Slack alert's upload.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from dunning_pipeline import lazy, money

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

if TYPE_CHECKING:  # Altair is imported when a chart is drawn, not when the code location loads
    import altair as alt

WIDTH, HEIGHT = 560, 260


def render_png(chart: alt.TopLevelMixin, scale: float = 1.0) -> bytes:
    import vl_convert as vlc  # imported here: the Rust extension is loaded only when a chart is drawn

    return vlc.vegalite_to_png(chart.to_json(), scale=scale)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def markdown_image(png: bytes, title: str) -> str:
    return f"![{title}]({data_uri(png)})"


def aging_distribution_chart(buckets: pd.DataFrame, as_of_label: str) -> alt.Chart:
    """Open balance per aging bucket in company currency, one bar group per company currency and
    company. `buckets`: rows of the report's buckets with basis 'company'."""
    import altair as alt

    b = buckets[buckets["basis"] == "company"]
    frame = (b.groupby(["company_id", "currency", "aging_bucket", "bucket_order"])["amount"].sum()
             .reset_index().sort_values("bucket_order"))
    frame["company"] = "company " + frame["company_id"].astype(str) + " (" + frame["currency"].astype(str) + ")"
    # Display only: the exact amounts are in the tables; a chart needs numbers, not units.
    frame["amount_display"] = frame["amount"].astype("int64") / money.SCALE
    order = frame.drop_duplicates("aging_bucket")["aging_bucket"].tolist()
    return (
        alt.Chart(frame[["company", "aging_bucket", "amount_display"]], title=f"Open receivables by aging bucket, {as_of_label}")
        .mark_bar()
        .encode(
            x=alt.X("aging_bucket:N", sort=order, title="days overdue", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("company:N"),
            y=alt.Y("amount_display:Q", title="open balance (company currency)"),
            color=alt.Color("company:N", title=None),
            tooltip=["company", "aging_bucket", alt.Tooltip("amount_display:Q", format=",.2f")],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def kpi_trend_chart(series: pd.DataFrame, kpis: tuple[str, ...], title: str, y_title: str = "days") -> alt.Chart:
    """The daily values of `kpis` (rows of collection_kpis without a dimension), one line per
    company and KPI."""
    import altair as alt

    s = series[series["kpi"].isin(kpis) & (series["dimension"] == "") & series["value"].notna()].copy()
    s["as_of_date"] = pd.to_datetime(s["as_of_date"]).dt.strftime("%Y-%m-%d")
    s["series"] = s["kpi"] + " (company " + s["company_id"].astype(str) + ")"
    return (
        alt.Chart(s[["as_of_date", "series", "value"]], title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("as_of_date:T", title=None),
            y=alt.Y("value:Q", title=y_title),
            color=alt.Color("series:N", title=None),
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
