"""The worklist's rollup of the aging snapshot (`workbench_worklist`, `workbench_worklist_customers`):
its one home, used by the nightly asset `workbench_worklist` (reporting group) and, as a fallback
when the rollup is of another snapshot, by the workbench. SQLAlchemy Core only (no Dagster), so the
workbench stays import-light.

The snapshot mark (`extract_state` key `WORKLIST_STATE`) names the aging snapshot (as-of day and
run id) the rollup was built from.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline import money
from dunning_pipeline.dunning import tables as dt
from dunning_pipeline.warehouse import schema
from dunning_pipeline.workbench.tables import workbench_worklist, workbench_worklist_customers

ag = dt.invoice_aging
wl, wlc = workbench_worklist, workbench_worklist_customers
DUNNED, ON_HOLD = "dunned", "on_hold"
WORKLIST_STATE = "workbench.worklist_snapshot"  # extract_state: the aging snapshot the rollup is of

# The worklist's groups, in display order, and the policy actions each covers.
GROUPS = (("call", "Call", ("call",)), ("reminder", "Send reminder", ("email",)),
          ("final_notice", "Final notice", ("letter",)), ("agency", "Hand to agency", ("suspend", "agency")))
# Rank of a customer's most advanced action: the group is that of the highest one.
ACTION_RANK = {"email": 1, "call": 2, "letter": 3, "suspend": 4, "agency": 5}
RANK_GROUP = {1: "reminder", 2: "call", 3: "final_notice", 4: "agency", 5: "agency"}


def units(col) -> sa.ColumnElement:
    """A money column as exact int units of 1/10,000 (no float on the way)."""
    return sa.cast(sa.func.round(col * money.SCALE), sa.BigInteger)


def snapshot_query() -> sa.Select:
    """The aging snapshot's mark, `as_of|run_id`: the aging is replaced whole by each run, so
    any row names it (None when the aging is empty)."""
    return sa.select(sa.cast(ag.c.as_of_date, sa.Text).concat("|")
                     .concat(sa.func.coalesce(ag.c.run_id, ""))).limit(1)


def current_snapshot(conn: Connection) -> str | None:
    return conn.execute(snapshot_query()).scalar()


def built_snapshot(conn: Connection) -> str | None:
    """The mark of the snapshot the stored rollup was built from."""
    es = schema.extract_state
    return conn.execute(sa.select(es.c.value).where(es.c.key == WORKLIST_STATE)).scalar()


def per_customer(where: list[sa.ColumnElement]) -> sa.Select:
    """The rollup's rows matching `where`, summed per customer and company currency."""
    held = sa.case((wl.c.dunning_status == ON_HOLD, wl.c.invoices), else_=0)
    return (
        sa.select(
            wl.c.customer_id, wl.c.company_currency,
            sa.func.max(wl.c.customer_name).label("customer_name"),
            sa.func.max(wl.c.segment).label("segment"),
            sa.func.max(wl.c.customer_stage).label("customer_stage"),
            sa.func.sum(wl.c.invoices).label("invoices"),
            sa.func.sum(held).label("held"),
            sa.func.sum(wl.c.amount_units).label("amount_units"),
            sa.func.max(wl.c.days_overdue).label("days_overdue"),
            sa.func.max(wl.c.action_rank).label("action_rank"),
        )
        .where(*where)
        .group_by(wl.c.customer_id, wl.c.company_currency)
    )


def group_of(action_rank) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """The worklist group of a customer's most advanced action, and the group's display order."""
    group = sa.case(*[(action_rank == r, g) for r, g in RANK_GROUP.items()], else_="none")
    order = sa.case(*[(group == key, i) for i, (key, _, _) in enumerate(GROUPS)], else_=len(GROUPS))
    return group.label("action_group"), order.label("group_order")


def rebuild(conn: Connection) -> str | None:
    """Replace both rollup tables from the aging snapshot and stamp the snapshot mark, in the
    caller's transaction (a reader sees the old rollup or the new one, never half of one).
    Returns the mark of the snapshot built from."""
    es = schema.extract_state
    current = current_snapshot(conn)
    rank = sa.case(*[(ag.c.action == a, r) for a, r in ACTION_RANK.items()], else_=0)
    keys = [ag.c.customer_id, ag.c.company_currency, ag.c.dunning_status, ag.c.hold_reason, ag.c.stage,
            ag.c.segment, ag.c.company_id, ag.c.currency]
    rollup = (sa.select(*keys, sa.func.count(), sa.func.sum(units(ag.c.amount_residual_company)),
                        sa.func.max(ag.c.days_overdue), sa.func.max(rank), sa.func.max(ag.c.customer_name),
                        sa.func.max(ag.c.customer_stage))
              .where(ag.c.dunning_status.in_((DUNNED, ON_HOLD))).group_by(*keys))
    conn.execute(wl.delete())
    conn.execute(wl.insert().from_select(
        [k.name for k in keys] + ["invoices", "amount_units", "days_overdue", "action_rank",
                                  "customer_name", "customer_stage"], rollup))
    customers = per_customer([wl.c.dunning_status == DUNNED]).subquery()
    group, order = group_of(customers.c.action_rank)
    conn.execute(wlc.delete())
    conn.execute(wlc.insert().from_select(
        [c.name for c in customers.c] + ["action_group", "group_order"], sa.select(customers, group, order)))
    if conn.dialect.name == "postgresql":  # the planner's statistics of the new rows
        conn.execute(sa.text("ANALYZE workbench_worklist, workbench_worklist_customers"))
    conn.execute(es.delete().where(es.c.key == WORKLIST_STATE))
    if current is not None:
        conn.execute(es.insert().values(key=WORKLIST_STATE, value=current,
                                        updated_at=datetime.now(UTC).replace(tzinfo=None)))
    return current
