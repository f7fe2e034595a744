"""Incremental extraction of Odoo invoices and customers into the warehouse.

How a run decides what to fetch, and why no change can be missed:

- The high-water mark (HWM) is a `write_date` kept in `extract_state`. With none, the run is full.
- Before fetching, the run asks Odoo for the newest `write_date` matching the domain. That
  snapshot becomes the next HWM, so a record written while the run pages through the table is
  fetched next time even if paging had already passed its id.
- The run fetches `write_date >= HWM - overlap`. `>=`, because `write_date` has one-second
  resolution: a record written in the same second as the HWM, after the previous run read it,
  has the same `write_date`. The overlap (default 5 minutes) covers Odoo transactions that stamp
  `write_date` at their start but commit later. Records fetched again this way are compared with
  the stored rows: the metadata reports them as fetched, and only real differences as changed.
- A transaction that commits more than the overlap after it started (a long import, a slow
  reconciliation batch) writes records whose `write_date` lies before the mark: no window
  catches them. So each incremental run of the invoices also re-reads the few fields that
  decide dunning (`RECONCILE_FIELDS`) of every move the warehouse holds as open, in bulk
  (`id in [...]` batches), and fetches in full every move whose values differ and whose
  `write_date` the window does not cover. A late transaction can also create moves the
  warehouse never held: after the window's pages, the moves above the highest id held that are
  written before the window are asked for, and the moves up to it are counted in Odoo and in the
  warehouse; only when Odoo has more than the window explains are their ids listed. All those
  moves go through the same pages and the same upsert as the window's: there is one place where
  fetched moves are written.
- Rows and the new HWM are written in ONE warehouse transaction: a crash leaves both as they were.
  On PostgreSQL pages are written as they arrive (COPY, low memory); on SQLite they are buffered
  and written at the end, so the single writer lock is held for the write only, not for the
  whole download.

No Dagster import: the assets pass a logging callback.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from dunning_pipeline import lazy, money
from dunning_pipeline.odoo import parse
from dunning_pipeline.odoo.client import OdooClient, OdooResponseError
from dunning_pipeline.warehouse import as_known
from dunning_pipeline.warehouse.store import Warehouse

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

WRITE_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
PREVIEW_ROWS = 10

INVOICES_STATE_KEY = "odoo.account.move.write_date"
CUSTOMERS_STATE_KEY = "odoo.res.partner.write_date"
# Tag names live on res.partner.category: renaming a tag does not touch the partners'
# write_date, so a change of the tag list triggers a full refresh of the customers.
TAGS_STATE_KEY = "odoo.res.partner.category.fingerprint"

# What decides dunning: a stored open move whose values here differ from Odoo's has changed.
RECONCILE_FIELDS = ("write_date", "state", "payment_state", "amount_residual", "amount_residual_signed")
# Settled moves can no longer change what is dunned; drafts can still be posted.
SETTLED_PAYMENT_STATES = ("paid", "reversed", "invoicing_legacy")
COMPANY_MODEL = "res.company"


@dataclass(frozen=True)
class ExtractSpec:
    noun: str  # "invoices", "customers": for log lines
    model: str
    table: str
    domain: list
    fields: tuple[str, ...]
    state_key: str
    context: dict | None = None


INVOICES = ExtractSpec(
    noun="invoices", model=parse.INVOICE_MODEL, table="odoo_invoices", domain=parse.INVOICE_DOMAIN,
    fields=parse.INVOICE_FIELDS, state_key=INVOICES_STATE_KEY,
)
CUSTOMERS = ExtractSpec(
    noun="customers", model=parse.PARTNER_MODEL, table="odoo_customers", domain=parse.PARTNER_DOMAIN,
    fields=parse.PARTNER_FIELDS, state_key=CUSTOMERS_STATE_KEY, context=parse.ALL_RECORDS_CONTEXT,
)


@dataclass
class ExtractResult:
    table: str
    mode: str  # "full" or "incremental"
    fetched: int  # records Odoo sent this run
    changed: int  # of those, new or different from the stored row
    pages: int
    total_rows: int  # rows in the table after the run
    high_water_mark: str | None
    previous_high_water_mark: str | None
    fetched_since: str | None  # the lower bound used (None: everything)
    changed_preview: pd.DataFrame = field(repr=False, default_factory=lambda: pd.DataFrame())
    notes: list[str] = field(default_factory=list)
    open_verified: int | None = None  # open moves re-read by the reconciliation (None: not run)
    late_changes: int | None = None  # of those, changed outside the fetch window: fetched in full
    warnings: list[str] = field(default_factory=list)
    unreadable_companies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reconciliation:
    """What re-reading the open moves found (see the module docstring)."""

    verified: int  # open moves the warehouse holds, re-read in Odoo
    late_ids: list[int]  # differ from the stored row, written before the fetch window
    missing_ids: list[int]  # not returned: deleted in Odoo, or no longer readable
    # After the window's pages: the ids it fetched -> moves never held, committed late.
    find_unheld: Callable[[set[int]], list[int]] = field(default=lambda _ids: [], repr=False)


Log = Callable[[str], None]


def extract_invoices(
    client: OdooClient,
    warehouse: Warehouse,
    *,
    page_size: int,
    overlap_seconds: int,
    extracted_at: datetime,
    log: Log = lambda _m: None,
    known_on: date | None = None,
    run_id: str | None = None,
) -> ExtractResult:
    """Customer invoices and credit notes (any state) changed since the last run -> `odoo_invoices`,
    plus the open ones whose change committed too late for the window (`reconcile_open_moves`)."""
    unreadable = unreadable_companies(client, warehouse)
    warnings = [_unreadable_warning(c, client.acting_user) for c in unreadable]
    result = _extract(
        client, warehouse, INVOICES,
        lambda records: parse.parse_invoices(records, extracted_at=extracted_at),
        page_size=page_size, overlap_seconds=overlap_seconds, log=log,
        stamp=as_known.Stamp.of(extracted_at, known_on, run_id),
        reconcile=lambda since: reconcile_open_moves(client, warehouse, since, page_size=page_size, log=log),
    )
    result.warnings.extend(warnings)
    result.unreadable_companies.extend(f"{c.name} (id {c.id})" for c in unreadable)
    return result


def extract_customers(
    client: OdooClient,
    warehouse: Warehouse,
    *,
    page_size: int,
    overlap_seconds: int,
    extracted_at: datetime,
    log: Log = lambda _m: None,
    known_on: date | None = None,
    run_id: str | None = None,
) -> ExtractResult:
    """All partners (archived included) changed since the last run -> `odoo_customers`, with
    their tag names; a change to the tags themselves refreshes every partner."""
    tag_records = [
        rec
        for page in client.iter_pages(
            parse.CATEGORY_MODEL, [], parse.CATEGORY_FIELDS, page_size=page_size,
            context=parse.ALL_RECORDS_CONTEXT,
        )
        for rec in page
    ]
    tag_names = parse.parse_tag_names(tag_records)
    fingerprint = tags_fingerprint(tag_names)
    previous = warehouse.get_state(TAGS_STATE_KEY)
    force_full = previous is not None and previous != fingerprint
    notes = []
    if force_full:
        notes.append("partner tags changed since the last run: all customers refreshed")
        log(f"{len(tag_names)} partner tags, changed since the last run: refreshing all customers")
    return _extract(
        client, warehouse, CUSTOMERS,
        lambda records: parse.parse_customers(records, tag_names=tag_names, extracted_at=extracted_at),
        page_size=page_size, overlap_seconds=overlap_seconds, log=log,
        stamp=as_known.Stamp.of(extracted_at, known_on, run_id), force_full=force_full, extra_state={TAGS_STATE_KEY: fingerprint}, notes=notes,
    )


def tags_fingerprint(tag_names: Mapping[int, str]) -> str:
    text = json.dumps(sorted(tag_names.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _extract(
    client: OdooClient,
    warehouse: Warehouse,
    spec: ExtractSpec,
    parse_page: Callable[[list], pd.DataFrame],
    *,
    page_size: int,
    overlap_seconds: int,
    log: Log,
    stamp: as_known.Stamp,
    force_full: bool = False,
    extra_state: dict[str, str] | None = None,
    notes: list[str] | None = None,
    reconcile: Callable[[str], Reconciliation] | None = None,
) -> ExtractResult:
    previous_hwm = warehouse.get_state(spec.state_key)
    incremental = previous_hwm is not None and not force_full
    since = _minus(previous_hwm, overlap_seconds) if incremental else None
    domain = list(spec.domain) + ([["write_date", ">=", since]] if since else [])

    newest = _newest_write_date(client, spec, domain)
    recon = reconcile(since) if (incremental and reconcile is not None) else None
    late_ids = recon.late_ids if recon else []
    hwm = _max_write_date(previous_hwm, newest)
    if incremental:
        log(f"fetching {spec.noun} written since {since} UTC (high-water mark {previous_hwm}"
            f" minus {overlap_seconds} s overlap)")
    else:
        log(f"full extraction of {spec.noun}" + (" (no high-water mark yet)" if previous_hwm is None else ""))

    stored = _stored_rows(warehouse, spec.table, since, late_ids)
    stream = warehouse.dialect == "postgresql"
    fetched = changed = pages = 0
    preview: list[pd.DataFrame] = []
    buffered: list[pd.DataFrame] = []
    window_ids: set[int] = set()
    written_ids: set[int] = set()
    unheld: list[int] = []

    def window() -> Iterator[list[dict]]:
        for page in client.iter_pages(spec.model, domain, spec.fields, page_size=page_size,
                                      context=spec.context):
            window_ids.update(r["id"] for r in page)  # (iter_pages checked the ids)
            yield page

    def late() -> Iterator[list[dict]]:  # runs once the window's pages are done
        if recon is not None:
            unheld.extend(recon.find_unheld(window_ids))
        yield from _pages_by_id(client, spec, [*late_ids, *unheld], page_size)

    # The window's pages, then the late-committed moves by id: one loop, one upsert path.
    all_pages = itertools.chain(window(), late())
    with ExitStack() as stack:
        conn = stack.enter_context(warehouse.begin()) if stream else None
        for page in all_pages:
            frame = parse_page(page)
            mask = changed_mask(frame, stored)
            pages += 1
            fetched += len(frame)
            changed += int(mask.sum())
            written_ids.update(frame["id"].tolist())
            if sum(len(p) for p in preview) < PREVIEW_ROWS and mask.any():
                preview.append(frame[mask].head(PREVIEW_ROWS))
            if stream:
                warehouse.upsert(spec.table, frame, conn=conn)
            else:
                buffered.append(frame)
            log(f"page {pages}: {len(frame)} {spec.noun} ({fetched} so far)")
        if not stream:
            conn = stack.enter_context(warehouse.begin())
            for frame in buffered:
                warehouse.upsert(spec.table, frame, conn=conn)
        # The versions of what changed, with the rows (see warehouse/as_known.py).
        as_known.record_versions(warehouse, spec.table, conn=conn, stamp=stamp, values=written_ids)
        if hwm is not None:
            warehouse.set_state(spec.state_key, hwm, conn=conn)
        for key, value in (extra_state or {}).items():
            warehouse.set_state(key, value, conn=conn)
        total = warehouse.count(spec.table, conn=conn)
    log(f"{spec.noun}: {fetched} fetched, {changed} new or changed, {total} in {spec.table};"
        f" high-water mark {hwm}")
    result_notes = list(notes or [])
    if recon and recon.missing_ids:
        result_notes.append(f"{len(recon.missing_ids)} open {spec.noun} held in the warehouse were not"
                            f" returned by Odoo (deleted, or not readable by the API user): ids "
                            + ", ".join(map(str, recon.missing_ids[:PREVIEW_ROWS]))
                            + (" ..." if len(recon.missing_ids) > PREVIEW_ROWS else ""))
    return ExtractResult(
        table=spec.table,
        mode="incremental" if incremental else "full",
        fetched=fetched,
        changed=changed,
        pages=pages,
        total_rows=total,
        high_water_mark=hwm,
        previous_high_water_mark=previous_hwm,
        fetched_since=since,
        changed_preview=(pd.concat(preview, ignore_index=True).head(PREVIEW_ROWS) if preview
                         else parse_page([])),
        notes=result_notes,
        open_verified=recon.verified if recon else None,
        late_changes=len(late_ids) + len(unheld) if recon else None,
    )


def reconcile_open_moves(client: OdooClient, warehouse: Warehouse, since: str, *, page_size: int,
                         log: Log = lambda _m: None) -> Reconciliation:
    """Re-read `RECONCILE_FIELDS` of every move the warehouse holds as open (drafts, and posted
    moves not settled), `page_size` ids per request; the moves that differ and whose write_date
    lies before `since` (the fetch window's lower bound) committed late and are fetched in full."""
    t = warehouse.table(INVOICES.table)
    open_rows = warehouse.read(
        INVOICES.table, columns=["id", *RECONCILE_FIELDS],
        where=(t.c.state == "draft") | ((t.c.state == "posted") & (
            t.c.payment_state.is_(None) | t.c.payment_state.not_in(SETTLED_PAYMENT_STATES))),
        order_by=["id"],
    )
    stored = open_rows.set_index("id")
    bound = _parse_write_date(since, "lower bound")
    late: list[int] = []
    seen: set[int] = set()
    for batch in _chunks(stored.index.tolist(), page_size):
        records = client.search_read(INVOICES.model, [["id", "in", batch]], RECONCILE_FIELDS,
                                     limit=len(batch), order="id asc")
        for rec in records:
            rid = rec.get("id")
            if rid not in stored.index:
                continue
            seen.add(rid)
            written = _odoo_write_date(rec)
            if written is not None and written >= bound:
                continue  # inside the window: the normal fetch brings it
            if _differs(rec, stored.loc[rid]):
                late.append(rid)
    missing = [i for i in stored.index.tolist() if i not in seen]
    log(f"reconciliation: {len(stored)} open {INVOICES.noun} re-read, {len(late)} changed before the"
        f" window (committed late), fetched in full" + (f"; {len(missing)} not returned" if missing else ""))

    def find_unheld(window_ids: set[int]) -> list[int]:
        found = unheld_moves(client, warehouse, since, window_ids, gone=len(missing), page_size=page_size)
        if found:
            log(f"reconciliation: {len(found)} {INVOICES.noun} never held, created by a transaction"
                " that committed late, fetched in full")
        return found

    return Reconciliation(verified=len(stored), late_ids=sorted(late), missing_ids=missing,
                          find_unheld=find_unheld)


def unheld_moves(client: OdooClient, warehouse: Warehouse, since: str, window_ids: set[int], *,
                 gone: int, page_size: int) -> list[int]:
    """Moves the warehouse never held and the window did not fetch: created by a transaction
    that committed late. Above the highest id held they are asked for directly; up to it, Odoo's
    count is compared with the warehouse's (less the `gone` held moves Odoo no longer returns),
    and the ids are listed only when Odoo has more."""
    t = warehouse.table(INVOICES.table)
    top = warehouse.query(sa.select(sa.func.max(t.c.id))).iloc[0, 0]
    if top is None or pd.isna(top):
        return []
    top = int(top)
    before_window = [*INVOICES.domain, ["write_date", "<", since]]
    found = [r["id"] for page in client.iter_pages(INVOICES.model, before_window, ["write_date"],
                                                   page_size=page_size, after_id=top) for r in page]
    in_odoo = client.call(INVOICES.model, "search_count", [[*INVOICES.domain, ["id", "<=", top]]], {})
    held_ids = set(warehouse.read(INVOICES.table, columns=["id"])["id"].tolist())
    new_in_window = sum(1 for i in window_ids if i <= top and i not in held_ids)
    if isinstance(in_odoo, int) and in_odoo > len(held_ids) - gone + new_in_window:
        for page in client.iter_pages(INVOICES.model, [*before_window, ["id", "<=", top]], ["write_date"],
                                      page_size=page_size):
            found += [r["id"] for r in page if r["id"] not in held_ids]
    return sorted(set(found) - window_ids)


@dataclass(frozen=True)
class HeldCompany:
    id: int
    name: str
    invoices: int  # rows of the company in the warehouse


def unreadable_companies(client: OdooClient, warehouse: Warehouse) -> list[HeldCompany]:
    """The companies with invoices in the warehouse that the API user cannot read in Odoo any
    more: Odoo's record rules hide their moves, which would otherwise stay frozen silently."""
    if warehouse.count(INVOICES.table) == 0:
        return []
    t = warehouse.table(INVOICES.table)
    held = warehouse.query(
        sa.select(t.c.company_id, sa.func.max(t.c.company_name).label("company_name"),
                  sa.func.count().label("invoices"))
        .where(t.c.company_id.is_not(None)).group_by(t.c.company_id).order_by(t.c.company_id)
    )
    readable = {r.get("id") for r in client.search_read(COMPANY_MODEL, [], ["name"])}
    return [HeldCompany(int(r.company_id), r.company_name or "(no name)", int(r.invoices))
            for r in held.itertuples(index=False) if int(r.company_id) not in readable]


def _unreadable_warning(company: HeldCompany, user: str) -> str:
    return (f"company {company.name} (id {company.id}) is in the warehouse with {company.invoices}"
            f" invoices, but Odoo user {user!r} can no longer read it: its invoices stay as last"
            " extracted and are not updated. Give the user access to that company (Settings >"
            " Users > Allowed Companies), or remove its invoices from the warehouse")


def _pages_by_id(client: OdooClient, spec: ExtractSpec, ids: Sequence[int],
                 page_size: int) -> Iterator[list[dict]]:
    for batch in _chunks(list(ids), page_size):
        yield client.search_read(spec.model, [*spec.domain, ["id", "in", batch]], spec.fields,
                                 limit=len(batch), order="id asc", context=spec.context)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _odoo_write_date(rec: Mapping) -> datetime | None:
    value = rec.get("write_date")
    try:
        return datetime.strptime(value, WRITE_DATE_FORMAT) if isinstance(value, str) else None
    except ValueError:
        return None


_UNREADABLE = object()  # a value that equals nothing: an odd record is fetched (and named) in full


def _differs(rec: Mapping, row: pd.Series) -> bool:
    written = _odoo_write_date(rec)
    if written is None or pd.isna(row["write_date"]) or written != row["write_date"].to_pydatetime():
        return True
    for name in ("state", "payment_state"):
        value = rec.get(name)
        stored = None if pd.isna(row[name]) else row[name]
        if (value or None) != stored:
            return True
    for name in ("amount_residual", "amount_residual_signed"):
        value = rec.get(name)
        try:
            units = None if value is False or value is None else money.to_units(value)
        except money.MoneyError:
            units = _UNREADABLE
        stored = None if pd.isna(row[name]) else int(row[name])
        if units != stored:
            return True
    return False


def _parse_write_date(value: str, what: str) -> datetime:
    try:
        return datetime.strptime(value, WRITE_DATE_FORMAT)
    except (TypeError, ValueError):
        raise OdooResponseError(f"{what} {value!r} is not a datetime {WRITE_DATE_FORMAT}") from None


def _minus(hwm: str, seconds: int) -> str:
    return (_parse_write_date(hwm, "stored high-water mark") - timedelta(seconds=seconds)).strftime(WRITE_DATE_FORMAT)


def _max_write_date(previous: str | None, newest: str | None) -> str | None:
    candidates = [v for v in (previous, newest) if v is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda v: _parse_write_date(v, "write_date")).strip()


def _newest_write_date(client: OdooClient, spec: ExtractSpec, domain: list) -> str | None:
    """The newest write_date in Odoo now: the next high-water mark (see the module docstring)."""
    rows = client.search_read(spec.model, domain, ["write_date"], limit=1,
                              order="write_date desc, id desc", context=spec.context)
    if not rows:
        return None
    value = rows[0].get("write_date")
    if not isinstance(value, str):
        raise OdooResponseError(f"{spec.model} {rows[0].get('id')}: write_date is {value!r}, not a datetime")
    _parse_write_date(value, f"{spec.model} {rows[0].get('id')} write_date")
    return value


def _stored_rows(warehouse: Warehouse, table: str, since: str | None,
                 ids: Sequence[int] = ()) -> pd.DataFrame:
    """The stored rows a fetch may return again (those written since the lower bound, and the
    late-committed `ids`), by id."""
    if warehouse.count(table) == 0:
        return pd.DataFrame()
    t = warehouse.table(table)
    where = t.c.write_date >= _parse_write_date(since, "lower bound") if since else None
    frames = [warehouse.read(table, where=where)]
    if since:
        frames += [warehouse.read(table, where=t.c.id.in_(batch)) for batch in _chunks(list(ids), 500)]
    frames = [f for f in frames if not f.empty] or frames[:1]
    return pd.concat(frames).drop_duplicates("id").set_index("id")


def changed_mask(frame: pd.DataFrame, stored: pd.DataFrame) -> pd.Series:
    """True for rows of `frame` that are new or differ from `stored` (indexed by id) in any
    column but `extracted_at`."""
    if stored.empty or frame.empty:
        return pd.Series(True, index=frame.index, dtype=bool)
    known = frame["id"].isin(stored.index).to_numpy()
    mask = pd.Series(~known, index=frame.index)
    if known.any():
        cols = [c for c in frame.columns if c not in ("id", "extracted_at")]
        new = frame.loc[known].set_index("id")[cols]
        old = stored.loc[new.index, cols]
        differs = np.zeros(len(new), dtype=bool)
        for col in cols:
            # numpy compares Python objects as Python does (None == None); pandas would not
            differs |= _as_objects(new[col]) != _as_objects(old[col])
        mask.loc[known] = differs
    return mask


def _as_objects(values: pd.Series) -> np.ndarray:
    """Plain Python values with None for every kind of missing (NA, NaT, None), so columns of
    different but compatible dtypes (int64 / Int64, object / str) compare by value."""
    out = values.to_numpy(dtype=object, copy=True)
    out[values.isna().to_numpy()] = None
    return out


# -- receivable lines (instalments) --------------------------------------------------------------
# The extracted_at of the newest odoo_invoices rows whose lines are stored: every move upserted
# after it (new, changed, re-read by the overlap or any reconciliation) gets its lines replaced.
LINES_STATE_KEY = "odoo.account.move.line.moves_extracted_at"
# Above this share of the moves to refresh, one paged read of all lines is cheaper than id lists.
LINES_FULL_SHARE = 0.25
# Move ids per `move_id in [...]` domain: small enough for any proxy's request size limit.
LINES_MOVE_CHUNK = 1000


@dataclass
class LinesResult:
    table: str
    mode: str  # "full", "incremental" or "up to date"
    moves: int  # moves whose lines were replaced (full: all moves)
    fetched: int  # lines Odoo sent
    pages: int  # search_read requests made
    total_rows: int
    synced_to: str | None  # the moves' extracted_at the table now reflects


@dataclass(frozen=True)
class _Moves:
    """The moves upserted into `odoo_invoices` since a dependent table's mark (`previous`)."""
    previous: str | None
    newest: datetime | None  # the newest extracted_at: the mark once the table is refreshed
    ids: list[int]
    full: bool  # read everything: first run, or most moves changed

    @property
    def up_to_date(self) -> bool:
        return self.newest is None or (not self.ids and not self.full)


def _moves_since(warehouse: Warehouse, state_key: str) -> _Moves:
    inv = warehouse.table("odoo_invoices")
    previous = warehouse.get_state(state_key)
    newest = warehouse.query(sa.select(sa.func.max(inv.c.extracted_at).label("m")))["m"].iloc[0]
    if pd.isna(newest):
        return _Moves(previous, None, [], False)
    newest = pd.Timestamp(newest).to_pydatetime()
    window = inv.c.extracted_at <= newest
    if previous is not None:
        window = sa.and_(window, inv.c.extracted_at > datetime.fromisoformat(previous))
    ids = warehouse.read("odoo_invoices", columns=["id"], where=window)["id"].astype("int64").tolist()
    full = previous is None or len(ids) > LINES_FULL_SHARE * max(1, warehouse.count("odoo_invoices"))
    return _Moves(previous, newest, ids, full)


def _fetch_pages(client: OdooClient, model: str, fields, domains: list, page_size: int,
                 parse_page, empty) -> tuple[pd.DataFrame, int]:
    """Every page of `model` for each domain, parsed, newest row per id; and the requests made."""
    frames: list[pd.DataFrame] = []
    pages = 0
    for domain in domains:
        last = 0
        for page in client.iter_pages(model, domain, fields, page_size=page_size):
            pages += 1
            last = len(page)
            frames.append(parse_page(page))
        pages += last in (0, page_size)  # the request that found the end empty
    found = pd.concat(frames, ignore_index=True) if frames else empty()
    return found.drop_duplicates("id", keep="last"), pages


def extract_receivable_lines(
    client: OdooClient,
    warehouse: Warehouse,
    *,
    page_size: int,
    extracted_at: datetime,
    log: Log = lambda _m: None,
    known_on: date | None = None,
    run_id: str | None = None,
) -> LinesResult:
    """The receivable lines (one per instalment) of the moves upserted into `odoo_invoices` since
    the last run -> `odoo_receivable_lines`, read in bulk: pages by `id > last_id` over the
    lines of up to LINES_MOVE_CHUNK moves at a time, or of all customer moves when most moves
    changed (first run). A move's stored lines are replaced by what Odoo sends now (none: a
    cancelled or reset move), and the mark moves in the same transaction."""
    table = "odoo_receivable_lines"
    moves = _moves_since(warehouse, LINES_STATE_KEY)
    if moves.up_to_date:
        return LinesResult(table, "up to date", 0, 0, 0, warehouse.count(table), moves.previous)
    previous, newest, move_ids, full = moves.previous, moves.newest, moves.ids, moves.full

    domains = ([[*parse.LINE_DOMAIN, ["move_id.move_type", "in", list(parse.INVOICE_MOVE_TYPES)]]] if full
               else [[*parse.LINE_DOMAIN, ["move_id", "in", move_ids[i:i + LINES_MOVE_CHUNK]]]
                     for i in range(0, len(move_ids), LINES_MOVE_CHUNK)])
    log(f"receivable lines: {'all customer moves' if full else f'{len(move_ids)} moves upserted since {previous}'}")
    lines, pages = _fetch_pages(client, parse.LINE_MODEL, parse.LINE_FIELDS, domains, page_size,
                                lambda page: parse.parse_receivable_lines(page, extracted_at=extracted_at),
                                parse.empty_receivable_lines)
    mark = newest.isoformat()
    with warehouse.begin() as conn:
        if full:
            warehouse.replace(table, lines, conn=conn)
        else:
            t = warehouse.table(table)
            for i in range(0, len(move_ids), LINES_MOVE_CHUNK):
                warehouse.delete(table, t.c.move_id.in_(move_ids[i:i + LINES_MOVE_CHUNK]), conn=conn)
            warehouse.upsert(table, lines, conn=conn)
        # A move's lines are replaced: its lines gone from Odoo close their versions too.
        as_known.record_versions(warehouse, table, conn=conn, stamp=as_known.Stamp.of(extracted_at, known_on, run_id),
                                 scope="move_id", values=None if full else move_ids)
        warehouse.set_state(LINES_STATE_KEY, mark, conn=conn)
        total = warehouse.count(table, conn=conn)
    log(f"receivable lines: {len(lines)} fetched in {pages} requests, {total} in {table}")
    return LinesResult(table, "full" if full else "incremental",
                       warehouse.count("odoo_invoices") if full else len(move_ids),
                       len(lines), pages, total, mark)


# -- reconciliations (account.partial.reconcile) ---------------------------------------------
# Like the lines: the extracted_at of the newest odoo_invoices rows whose reconciliations are stored.
RECONCILIATIONS_STATE_KEY = "odoo.account.partial.reconcile.moves_extracted_at"
RECONCILIATIONS_TABLE = "odoo_reconciliations"


def extract_reconciliations(
    client: OdooClient,
    warehouse: Warehouse,
    *,
    page_size: int,
    extracted_at: datetime,
    log: Log = lambda _m: None,
) -> LinesResult:
    """The reconciliations (`account.partial.reconcile`) of the receivable lines of the moves
    upserted into `odoo_invoices` since the last run -> `odoo_reconciliations`; all of them
    (paged by id) on the first run or when most moves changed.

    Incremental through the moves, not through the reconciliations' own write_date: Odoo
    deletes a reconciliation when it is undone (a payment cancelled, an invoice reset to draft),
    which no write_date read can see, while the move's residual, and so its write_date, change
    with every reconciliation made or undone (and `odoo_invoices` also catches the moves whose
    change committed late). So each refreshed move's lines get their reconciliations replaced by
    what Odoo has now, debit or credit side, `LINES_MOVE_CHUNK` lines per request, and the mark
    moves in the same transaction. Needs `odoo_receivable_lines` refreshed first."""
    table = RECONCILIATIONS_TABLE
    moves = _moves_since(warehouse, RECONCILIATIONS_STATE_KEY)
    if moves.up_to_date:
        return LinesResult(table, "up to date", 0, 0, 0, warehouse.count(table), moves.previous)
    previous, newest, move_ids, full = moves.previous, moves.newest, moves.ids, moves.full
    line_ids: list[int] = []
    if not full:
        lines = warehouse.table("odoo_receivable_lines")
        for i in range(0, len(move_ids), LINES_MOVE_CHUNK):
            line_ids += warehouse.read("odoo_receivable_lines", columns=["id"],
                                       where=lines.c.move_id.in_(move_ids[i:i + LINES_MOVE_CHUNK]))["id"].tolist()
    chunks = [line_ids[i:i + LINES_MOVE_CHUNK] for i in range(0, len(line_ids), LINES_MOVE_CHUNK)]
    domains = ([parse.RECONCILIATION_DOMAIN] if full
               else [["|", ["debit_move_id", "in", c], ["credit_move_id", "in", c]] for c in chunks])
    log(f"reconciliations: {'all receivable lines' if full else f'{len(line_ids)} lines of {len(move_ids)} moves upserted since {previous}'}")
    found, pages = _fetch_pages(client, parse.RECONCILIATION_MODEL, parse.RECONCILIATION_FIELDS, domains,
                                page_size, lambda page: parse.parse_reconciliations(page, extracted_at=extracted_at),
                                parse.empty_reconciliations)
    mark = newest.isoformat()
    with warehouse.begin() as conn:
        if full:
            warehouse.replace(table, found, conn=conn)
        else:
            t = warehouse.table(table)
            for chunk in chunks:  # what Odoo no longer has was undone: gone here too
                warehouse.delete(table, t.c.debit_line_id.in_(chunk) | t.c.credit_line_id.in_(chunk), conn=conn)
            warehouse.upsert(table, found, conn=conn)
        warehouse.set_state(RECONCILIATIONS_STATE_KEY, mark, conn=conn)
        total = warehouse.count(table, conn=conn)
    log(f"reconciliations: {len(found)} fetched in {pages} requests, {total} in {table}")
    return LinesResult(table, "full" if full else "incremental",
                       warehouse.count("odoo_invoices") if full else len(move_ids),
                       len(found), pages, total, mark)
