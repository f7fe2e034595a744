"""Each day-dependent table records the day and run it was built for, in its own transaction; a
reader refuses a table of another day, or one built from inputs rebuilt since, naming the table
to rebuild."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline import runtime
from dunning_pipeline.warehouse import builds

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)


def _build(wh, table, as_of, run_id, inputs=()):
    with wh.begin() as conn:
        builds.record(wh, conn, table, as_of=as_of, run_id=run_id, inputs=inputs)


def test_a_table_built_from_inputs_rebuilt_since_is_refused_with_the_table_to_rebuild(warehouse):
    _build(warehouse, "receivables", D1, "run-a")
    _build(warehouse, "invoice_aging", D1, "run-a", inputs=("receivables",))
    assert builds.current(warehouse)["invoice_aging"].inputs == {"receivables": "run-a"}
    runtime.read_of_day(warehouse, "invoice_aging", D1)  # consistent: read

    _build(warehouse, "receivables", D1, "run-b")  # a second night of the day died after receivables
    with pytest.raises(dg.Failure) as refused:
        runtime.read_of_day(warehouse, "invoice_aging", D1)
    assert ("invoice_aging (as-of 2026-03-02) was built from receivables of run run-a, but receivables now holds "
            "as-of 2026-03-02 of run run-b") in str(refused.value)
    assert "rebuild invoice_aging for 2026-03-02" in str(refused.value)
    runtime.read_of_day(warehouse, "receivables", D1)  # the input itself is fine

    _build(warehouse, "receivables", D2, "run-c")  # the next night died after receivables
    with pytest.raises(dg.Failure, match="receivables holds as-of 2026-03-03, this run's as-of is 2026-03-02"):
        runtime.read_of_day(warehouse, "receivables", D1)
    _build(warehouse, "invoice_aging", D2, "run-c", inputs=("receivables",))
    runtime.read_of_day(warehouse, "invoice_aging", D2)


def test_the_build_is_written_with_its_table_or_not_at_all(warehouse):
    _build(warehouse, "receivables", D1, "run-a")
    with pytest.raises(RuntimeError, match="crash"), warehouse.begin() as conn:
        warehouse.replace("receivables", warehouse.read("receivables"), conn=conn)
        builds.record(warehouse, conn, "receivables", as_of=D2, run_id="run-b")
        raise RuntimeError("crash before the commit")
    assert builds.current(warehouse)["receivables"] == builds.Build("receivables", D1, "run-a", {})
    stored = warehouse.read("warehouse_builds")
    assert stored["as_of_date"].tolist() == [pd.Timestamp(D1)]


def test_a_table_never_built_is_refused_and_one_built_empty_is_read(warehouse):
    """An empty table without a build is no answer: a step reading it would compute on nothing."""
    assert warehouse.count("late_payment_charges") == 0
    with pytest.raises(dg.Failure) as refused:
        runtime.read_of_day(warehouse, "late_payment_charges", D1)
    assert "late_payment_charges was never built" in str(refused.value)
    assert "materialize late_payment_charges for 2026-03-02 first" in str(refused.value)

    _build(warehouse, "late_payment_charges", D1, "run-a")  # built, and empty: nothing charged that day
    frame = runtime.read_of_day(warehouse, "late_payment_charges", D1)
    assert frame.empty and "invoice_id" in frame.columns
