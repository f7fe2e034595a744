"""`dunning_holds.released_at` (written by the workbench) ends a manual hold from that local day
on; earlier days (a replay) still see it. Frames without the column behave as before."""

from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd

from dunning_pipeline.dunning.holds import manual_holds

CUSTOMERS = pd.DataFrame({"id": [10], "commercial_partner_id": [10]})


def _holds(released_at=None) -> pd.DataFrame:
    frame = pd.DataFrame([{"id": 1, "customer_id": 10, "invoice_id": None, "kind": "promise",
                           "until": pd.Timestamp("2026-03-20"), "note": "n", "created_by": "alice",
                           "created_at": pd.Timestamp("2026-03-01 09:00")}])
    if released_at is not None:
        frame["released_at"] = pd.Series([pd.Timestamp(released_at) if released_at else pd.NaT],
                                         dtype="datetime64[us]")
    return frame


def test_a_released_hold_stops_applying_from_the_day_it_was_released():
    tz = ZoneInfo("Europe/Berlin")
    released = _holds("2026-03-04 23:30")  # 00:30 on 03-05 in Berlin
    assert len(manual_holds(released, CUSTOMERS, date(2026, 3, 4), tz)) == 1
    assert len(manual_holds(released, CUSTOMERS, date(2026, 3, 5), tz)) == 0
    assert len(manual_holds(_holds(""), CUSTOMERS, date(2026, 3, 5), tz)) == 1  # column present, not released
    assert len(manual_holds(_holds(), CUSTOMERS, date(2026, 3, 5), tz)) == 1  # frames without the column
