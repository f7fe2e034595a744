"""The dunning policy: a YAML file validated with pydantic, resolved into lookup tables.

`DUNNING_POLICY_FILE` names the file; without it the documented `default_policy.yaml` shipped
with the package applies. A wrong key or value fails at load with the file, the line and what
was expected (pydantic's error locations are mapped back to the YAML nodes' marks), e.g.

    dunning policy /etc/dunning/policy.yaml is invalid:
      line 14, policies.default.stages[1].action: Input should be 'email', 'call', 'letter',
      'suspend' or 'agency' (got 'sms')

Numbers in the file are read as `Decimal` (never binary floats), so a tolerance of 0.01 is
exactly one cent. Pure: no Dagster import; the path and environment are passed in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dunning_pipeline import lazy, money
from dunning_pipeline.settings import POLICY_FILE_VAR

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent.parent / "default_policy.yaml"
# The reminder templates shipped with the package; a policy may name a folder that overrides them.
SHIPPED_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "reporting" / "templates"

# Pseudo-stages of the history: `closed` when an invoice leaves the open set, `none` when an
# invoice that was in dunning falls back before its policy's first stage (due date moved out).
CLOSED = "closed"
NO_STAGE = "none"
RESERVED_STAGE_NAMES = frozenset({CLOSED, NO_STAGE})

Action = Literal["email", "call", "letter", "suspend", "agency"]
Tone = Literal["friendly", "polite", "firm", "formal", "legal"]
TicketStatus = Literal["new", "open", "pending", "hold", "solved", "closed"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names file and line."""


def _amount(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    if value != value.quantize(Decimal(1).scaleb(-money.SCALE_DIGITS)):
        raise ValueError(f"has more than {money.SCALE_DIGITS} decimal places")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageConfig(_Strict):
    """One step of a dunning ladder."""

    name: Name
    days: int = Field(description="days relative to the due date (negative: before it)")
    action: Action
    tone: Tone
    description: str | None = None
    label: str | None = Field(default=None, min_length=1, max_length=60,
                              description="how the alert names the stage; default: the name, capitalised")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_STAGE_NAMES:
            raise ValueError(f"{v!r} is reserved for the history; choose another stage name")
        return v


class PolicyConfig(_Strict):
    """A ladder of stages, or another policy's ladder with overdue stages delayed."""

    description: str | None = None
    extends: Name | None = None
    stages: list[StageConfig] | None = None
    delay_days: int = Field(default=0, ge=0, description="added to every stage due after the due date")
    manual_only: bool = Field(default=False, description="stages are shown and recorded, never acted on automatically")

    @field_validator("stages")
    @classmethod
    def _ladder(cls, stages: list[StageConfig] | None) -> list[StageConfig] | None:
        if stages is None:
            return None
        if not stages:
            raise ValueError("a policy needs at least one stage")
        names = [s.name for s in stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique, repeated: {', '.join(dupes)}")
        days = [s.days for s in stages]
        if any(b <= a for a, b in zip(days, days[1:], strict=False)):
            raise ValueError(f"stage days must strictly increase in order, got {days}")
        return stages

    @model_validator(mode="after")
    def _stages_or_extends(self) -> PolicyConfig:
        if self.stages is None and self.extends is None:
            raise ValueError("a policy needs either 'stages' or 'extends'")
        return self


class ToleranceConfig(_Strict):
    """Residuals at or below the tolerance count as settled (rounding leftovers)."""

    default: Decimal = Decimal("0.01")
    currencies: dict[CurrencyCode, Decimal] = Field(default_factory=dict)

    @field_validator("default")
    @classmethod
    def _check_default(cls, v: Decimal) -> Decimal:
        return _amount(v)

    @field_validator("currencies")
    @classmethod
    def _check_currencies(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for amount in v.values():
            _amount(amount)
        return v


def _check_bounds(v: list[int] | None) -> list[int] | None:
    if v is None:
        return v
    if not v:
        raise ValueError("give at least one bound, e.g. [30, 60, 90]")
    if any(b <= a for a, b in zip(v, v[1:], strict=False)):
        raise ValueError(f"bucket bounds must strictly increase, got {v}")
    return v


class SegmentConfig(_Strict):
    """Customers (commercial partners) selected by Odoo tag name or partner id."""

    name: Name
    policy: Name
    tags: list[str] = Field(default_factory=list, description="Odoo partner tag (category) names")
    partner_ids: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    companies: list[Annotated[int, Field(gt=0)]] | None = Field(default=None, description="only these Odoo companies")

    @model_validator(mode="after")
    def _selects_something(self) -> SegmentConfig:
        if not self.tags and not self.partner_ids:
            raise ValueError("a segment needs 'tags' or 'partner_ids' to select its customers")
        return self


DEFAULT_INVOICE_NUMBER_PATTERN = r"\b[A-Z][A-Z0-9]*/\d{4}/(?:\d{2}/)?\d{3,}\b"
DEFAULT_INVOICE_WORDS = ("invoice", "invoices", "inv", "rechnung", "rechnungen", "rechnungsnummer", "rechnungsnr",
                         "rg", "facture", "factures", "fact")
DEFAULT_DISPUTE_KEYWORDS = (
    "dispute", "disputed", "disputing", "we do not accept", "we don't accept", "incorrect", "wrong amount",
    "not ordered", "never received", "damaged", "complaint", "refuse to pay",
    "widerspruch", "widersprechen", "widerspreche", "beanstanden", "beanstandung", "reklamation", "reklamieren",
    "fehlerhaft", "nicht bestellt", "nicht erhalten", "nicht korrekt",
    "contester", "conteste", "contestons", "contestation", "litige", "réclamation", "erronée", "erroné",
    "pas commandé", "jamais reçu", "incorrecte",
)
DEFAULT_PAYMENT_CLAIM_KEYWORDS = (
    "we have paid", "we paid", "has been paid", "have been paid", "was paid", "already paid", "payment was made",
    "payment has been made", "remittance advice", "remittance", "transfer has been made", "proof of payment",
    "bezahlt", "überwiesen", "zahlungsavis", "zahlungsbestätigung", "zahlung ist erfolgt", "zahlung erfolgt",
    "avons payé", "avons réglé", "déjà payé", "déjà réglé", "a été payée", "a été réglée", "virement effectué",
    "avis de paiement", "avis de virement", "preuve de paiement",
)
Keyword = Annotated[str, Field(min_length=2, max_length=100, pattern=r"\S")]


class HoldConfig(_Strict):
    """What puts an invoice on hold from Zendesk."""

    open_ticket_statuses: list[TicketStatus] = Field(default_factory=lambda: ["new", "open", "pending", "hold"])
    dispute_tags: list[str] = Field(default_factory=lambda: ["dispute", "billing_dispute", "invoice_dispute"])
    invoice_number_pattern: str = DEFAULT_INVOICE_NUMBER_PATTERN
    promise_pattern: str | None = Field(
        default=None, description="optional: a regex with a named group 'date' (YYYY-MM-DD) in an open ticket"
    )
    # What the customer meant (see communications): words and phrases, matched case-insensitively
    # as whole words in the customer's own comments.
    invoice_words: list[Keyword] = Field(default_factory=lambda: list(DEFAULT_INVOICE_WORDS))
    dispute_keywords: list[Keyword] = Field(default_factory=lambda: list(DEFAULT_DISPUTE_KEYWORDS))
    payment_claim_keywords: list[Keyword] = Field(default_factory=lambda: list(DEFAULT_PAYMENT_CLAIM_KEYWORDS))
    payment_claim_days: int = Field(default=5, ge=1, le=60, description="a payment claim holds for this many days")
    customer_mention_hold: Literal["dispute", "none"] = Field(
        default="dispute", description="an invoice the customer names without dispute or payment words")
    dispute_field_ids: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=list, description="Zendesk custom field ids whose set value marks a dispute")

    @field_validator("invoice_number_pattern")
    @classmethod
    def _invoice_pattern(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        if compiled.groups:
            raise ValueError("must not contain capturing groups; use (?:...) instead")
        return v

    @field_validator("promise_pattern")
    @classmethod
    def _promise_pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        if set(compiled.groupindex) != {"date"} or compiled.groups != 1:
            raise ValueError("must contain exactly one group, the named group (?P<date>...)")
        return v


class CommunicationsConfig(_Strict):
    """How Zendesk requesters are matched to Odoo customers."""

    match_by_domain: bool = True
    public_email_domains: list[str] = Field(
        default_factory=lambda: [
            "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com",
            "icloud.com", "me.com", "aol.com", "gmx.de", "gmx.net", "web.de", "proton.me",
            "protonmail.com", "mail.com", "yandex.ru", "qq.com",
        ]
    )


class CompanyConfig(_Strict):
    """Overrides for one Odoo company (by id)."""

    policy: Name | None = None
    tolerance: ToleranceConfig | None = None
    aging_buckets: list[Annotated[int, Field(gt=0)]] | None = None

    @field_validator("aging_buckets")
    @classmethod
    def _bounds(cls, v: list[int] | None) -> list[int] | None:
        return _check_bounds(v)


class InterestConfig(_Strict):
    """Late-payment interest per year on the overdue residual: a fixed rate, or a reference rate
    plus points (EU Directive 2011/7/EU art. 2(6): the central bank's reference rate plus at least
    eight percentage points, for business customers). Percent per year; day count actual/365."""

    rate_percent: Decimal | None = Field(default=None, description="fixed rate, e.g. 9.5")
    reference_rate_percent: Decimal | None = Field(default=None, description="e.g. the ECB main refinancing rate")
    points: Decimal | None = Field(default=None, description="percentage points added to the reference rate")

    @field_validator("rate_percent", "reference_rate_percent", "points")
    @classmethod
    def _not_negative(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v < 0:
            raise ValueError("must not be negative")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> InterestConfig:
        fixed = self.rate_percent is not None
        reference = self.reference_rate_percent is not None or self.points is not None
        if fixed == reference:
            raise ValueError("give either 'rate_percent' or 'reference_rate_percent' with 'points'")
        if reference and (self.reference_rate_percent is None or self.points is None):
            raise ValueError("a reference rate needs both 'reference_rate_percent' and 'points'")
        return self

    @property
    def statutory(self) -> bool:
        """Reference rate plus points: what the EU rules call statutory interest."""
        return self.rate_percent is None

    @property
    def annual_percent(self) -> Decimal:
        return self.rate_percent if self.rate_percent is not None else self.reference_rate_percent + self.points


class FeeConfig(_Strict):
    """A flat late-payment fee (e.g. the EU's 40 EUR recovery compensation), per currency."""

    amounts: dict[CurrencyCode, Decimal] = Field(description="fee per invoice currency, e.g. {EUR: 40}")
    per: Literal["invoice", "stage"] = Field(
        default="invoice", description="once per overdue invoice, or once per overdue stage it has reached")

    @field_validator("amounts")
    @classmethod
    def _check_amounts(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        if not v:
            raise ValueError("give the fee for at least one currency, e.g. {EUR: 40}")
        for currency, amount in v.items():
            _amount(amount)
            places = money.currency_decimals(currency)
            if amount != amount.quantize(Decimal(1).scaleb(-places)):
                raise ValueError(f"{currency} {amount} has more decimals than {currency}'s {places}")
        return v


class LatePaymentConfig(_Strict):
    """Interest and fees of one policy or segment; both absent: none."""

    interest: InterestConfig | None = None
    fee: FeeConfig | None = None


class LatePaymentFileConfig(_Strict):
    """Late-payment interest and fees, off by default; a segment's entry wins over its policy's.
    Computed for the report and the drafts only, never written to Odoo."""

    default: LatePaymentConfig = Field(default_factory=LatePaymentConfig)
    policies: dict[Name, LatePaymentConfig] = Field(default_factory=dict)
    segments: dict[Name, LatePaymentConfig] = Field(default_factory=dict)


class DraftsConfig(_Strict):
    """Reminder drafts: a folder of Jinja2 templates that override the shipped ones by file name."""

    templates_dir: str | None = Field(default=None, description="relative to the policy file's folder")


class PolicyFileConfig(_Strict):
    """The whole policy file."""

    version: Literal[1] = 1
    tolerance: ToleranceConfig = Field(default_factory=ToleranceConfig)
    aging_buckets: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [30, 60, 90])
    policies: dict[Name, PolicyConfig]
    segments: list[SegmentConfig] = Field(default_factory=list)
    holds: HoldConfig = Field(default_factory=HoldConfig)
    communications: CommunicationsConfig = Field(default_factory=CommunicationsConfig)
    companies: dict[Annotated[int, Field(gt=0)], CompanyConfig] = Field(default_factory=dict)
    late_payment: LatePaymentFileConfig = Field(default_factory=LatePaymentFileConfig)
    drafts: DraftsConfig = Field(default_factory=DraftsConfig)

    @field_validator("aging_buckets")
    @classmethod
    def _bounds(cls, v: list[int]) -> list[int]:
        return _check_bounds(v)


# -- the resolved policy ---------------------------------------------------------------------
# What a person does for each action: how the Slack alert tells the accountant what to do.
ACTION_TODO = {
    "email": "reminder email",
    "call": "phone the customer",
    "letter": "send the letter",
    "suspend": "suspend service",
    "agency": "hand to the collection agency",
}


def default_label(name: str) -> str:
    """A stage's display name when the policy gives none: 'final_notice' -> 'Final notice'."""
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Stage:
    name: str
    days: int
    action: str
    tone: str
    rank: int
    label: str = ""

    @property
    def display(self) -> str:
        return self.label or default_label(self.name)

    @property
    def todo(self) -> str:
        todo = ACTION_TODO.get(self.action, self.action)
        return f"{self.tone} {todo}" if self.action == "email" else todo

    @property
    def needs_action(self) -> bool:
        """A stage whose action is not an email is one an accountant must act on."""
        return self.action != "email"

    @property
    def overdue(self) -> bool:
        return self.days > 0


@dataclass(frozen=True)
class Ladder:
    """A resolved policy: its stages in order (rank 0 first)."""

    name: str
    stages: tuple[Stage, ...]
    manual_only: bool


def bucket_labels(bounds: tuple[int, ...]) -> tuple[str, ...]:
    """[30, 60, 90] -> current, 1-30, 31-60, 61-90, 90+ (days overdue; current = not yet due)."""
    return tuple(label for label, _low in _buckets(bounds))


def _buckets(bounds: tuple[int, ...]) -> list[tuple[str, int]]:
    """(label, lowest days overdue) of each bucket."""
    out = [("current", -(2**62))]
    low = 1
    for b in bounds:
        out.append((f"{low}-{b}", low))
        low = b + 1
    out.append((f"{bounds[-1]}+", low))
    return out


@dataclass(frozen=True)
class DunningPolicy:
    """The validated policy, with vectorised lookups for the engine."""

    source: str
    config: PolicyFileConfig
    ladders: Mapping[str, Ladder]
    _stages: pd.DataFrame = field(init=False, repr=False, compare=False)
    _by_rank: pd.MultiIndex = field(init=False, repr=False, compare=False)
    _by_name: pd.MultiIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lookup tables built once: the engine consults them several times per night.
        rows = [
            {"policy": lad.name, "stage": s.name, "rank": s.rank, "days": s.days, "action": s.action,
             "tone": s.tone, "manual_only": lad.manual_only}
            for lad in self.ladders.values() for s in lad.stages
        ]
        table = pd.DataFrame(rows)
        object.__setattr__(self, "_stages", table)
        object.__setattr__(self, "_by_rank", pd.MultiIndex.from_frame(table[["policy", "rank"]]))
        object.__setattr__(self, "_by_name", pd.MultiIndex.from_frame(table[["policy", "stage"]]))

    # -- policies and stages --------------------------------------------------------------
    def default_policy_for(self, company_id: int | None) -> str:
        override = self.config.companies.get(int(company_id)) if company_id is not None else None
        return override.policy if override is not None and override.policy else "default"

    def display_stages(self) -> tuple[Stage, ...]:
        """Every stage name once, as the alert ranks and labels it: the default ladder's stages
        in order, then the stages only other ladders have (in their ladder's order)."""
        ladders = sorted(self.ladders.values(), key=lambda lad: lad.name != "default")
        seen: dict[str, Stage] = {}
        for ladder in ladders:
            for stage in ladder.stages:
                seen.setdefault(stage.name, stage)
        return tuple(seen.values())

    def stage_table(self) -> pd.DataFrame:
        """One row per (policy, stage): rank, days, action, tone, manual_only."""
        return self._stages.copy()

    def stage_rank(self, policy: pd.Series, days: pd.Series) -> pd.Series:
        """Rank (0-based) of the stage each invoice has reached by `days` relative to its due
        date under its policy, or -1 before the first stage. Monotone in `days` per policy."""
        out = np.full(len(days), -1, dtype=np.int64)
        pol = policy.to_numpy()
        d = days.to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).min)
        for name, ladder in self.ladders.items():
            mask = pol == name
            if mask.any():
                thresholds = np.array([s.days for s in ladder.stages], dtype=np.int64)
                out[mask] = np.searchsorted(thresholds, d[mask], side="right") - 1
        unknown = ~np.isin(pol, list(self.ladders))
        if unknown.any():
            raise PolicyError(f"unknown policy name(s) {sorted(set(pol[unknown]))}")
        return pd.Series(out, index=days.index, dtype="int64")

    def stage_name(self, policy: pd.Series, rank: pd.Series) -> pd.Series:
        """Stage names for (policy, rank) pairs; null where the rank is -1."""
        table = self._stages
        idx = self._by_rank.get_indexer(
            pd.MultiIndex.from_arrays([policy.astype(object).to_numpy(), rank.to_numpy(dtype=np.int64)])
        )
        names = np.append(table["stage"].to_numpy(dtype=object), None)  # index -1 -> None
        return pd.Series(names[idx], index=rank.index, dtype=object)

    def stage_attributes(self, policy: pd.Series, stage: pd.Series) -> pd.DataFrame:
        """action, tone and manual_only of named stages (null where the stage is null)."""
        idx = self._by_name.get_indexer(
            pd.MultiIndex.from_arrays([policy.astype(object).to_numpy(), stage.astype(object).to_numpy()])
        )
        out = {}
        for col in ("action", "tone"):
            values = np.append(self._stages[col].to_numpy(dtype=object), None)
            out[col] = values[idx]
        flags = pd.array(np.append(self._stages["manual_only"].to_numpy(dtype=bool), False), dtype="boolean")[idx]
        flags[idx < 0] = pd.NA
        out["manual_only"] = flags
        return pd.DataFrame(out, index=stage.index)

    def rank_of_names(self, policy: pd.Series, stage: pd.Series) -> pd.Series:
        """Rank of named stages under the given policies: -1 for null or `none`, NA when the
        stage does not exist in that policy (the policy changed since it was recorded)."""
        table = self._stages
        idx = self._by_name.get_indexer(
            pd.MultiIndex.from_arrays([policy.astype(object).to_numpy(), stage.astype(object).to_numpy()])
        )
        ranks = pd.array(np.append(table["rank"].to_numpy(dtype=np.int64), 0), dtype="Int64")
        out = ranks[idx]
        out[idx < 0] = pd.NA
        s = stage.astype(object)
        out[(s.isna() | (s == NO_STAGE)).to_numpy()] = -1
        return pd.Series(out, index=stage.index)

    # -- segments -------------------------------------------------------------------------
    def segment_of(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Segment and policy of each (customer_id, company_id) pair.

        `customers` has columns customer_id, company_id and tag_list (lists of tag names).
        The first segment (in file order) that selects a customer wins; everyone else gets the
        company's default policy (segment 'default')."""
        n = len(customers)
        segment = np.full(n, "default", dtype=object)
        company = customers["company_id"].astype("Int64")
        defaults = {c: self.default_policy_for(c) for c in company.dropna().unique().tolist()}
        policy = company.astype(object).map(defaults).fillna("default").to_numpy(dtype=object)
        assigned = np.zeros(n, dtype=bool)
        if n and self.config.segments:
            exploded = customers[["tag_list"]].explode("tag_list")
            tag_norm = exploded["tag_list"].astype("str").str.strip().str.casefold()
            for seg in self.config.segments:
                hit = customers["customer_id"].isin(seg.partner_ids).to_numpy().copy()
                if seg.tags:
                    wanted = {t.strip().casefold() for t in seg.tags}
                    tagged = tag_norm.isin(wanted).groupby(level=0).any()
                    hit |= tagged.reindex(customers.index, fill_value=False).to_numpy()
                if seg.companies is not None:
                    hit &= customers["company_id"].isin(seg.companies).to_numpy()
                take = hit & ~assigned
                segment[take] = seg.name
                policy[take] = seg.policy
                assigned |= take
        return pd.DataFrame({"segment": segment, "policy": policy}, index=customers.index)

    # -- tolerance and buckets ------------------------------------------------------------
    def tolerance_units(self, company_id: pd.Series, currency: pd.Series) -> pd.Series:
        """The tolerance of each (company, currency), in 1/10,000 units of that currency."""
        keys = pd.DataFrame({"company_id": company_id.astype("Int64"), "currency": currency.astype(object)})
        distinct = keys.drop_duplicates()
        values = []
        for comp, cur in distinct.itertuples(index=False, name=None):
            tol = self.config.tolerance
            override = self.config.companies.get(int(comp)) if pd.notna(comp) else None
            if override is not None and override.tolerance is not None:
                tol = override.tolerance
            amount = tol.currencies.get(cur if isinstance(cur, str) else "", tol.default)
            values.append(money.to_units(amount))
        distinct = distinct.assign(_tol=np.array(values, dtype=np.int64))
        merged = keys.merge(distinct, on=["company_id", "currency"], how="left")
        return pd.Series(merged["_tol"].to_numpy(dtype=np.int64), index=company_id.index)

    def bucket_bounds(self, company_id: int | None) -> tuple[int, ...]:
        override = self.config.companies.get(int(company_id)) if company_id is not None else None
        if override is not None and override.aging_buckets is not None:
            return tuple(override.aging_buckets)
        return tuple(self.config.aging_buckets)

    def all_bucket_labels(self) -> tuple[str, ...]:
        """Every bucket label in use, in aging order (for reports)."""
        bounds = [tuple(self.config.aging_buckets)] + [
            tuple(c.aging_buckets) for c in self.config.companies.values() if c.aging_buckets
        ]
        labels: dict[str, int] = {}
        for b in bounds:
            for label, low in _buckets(b):
                labels.setdefault(label, low)
        # Open-ended buckets ('90+') after closed ones starting at the same day.
        return tuple(sorted(labels, key=lambda k: (labels[k], k.endswith("+"))))

    def aging_bucket(self, company_id: pd.Series, days_overdue: pd.Series) -> pd.Series:
        """The aging bucket label of each invoice by days overdue (<= 0: current)."""
        out = np.empty(len(days_overdue), dtype=object)
        comp = company_id.astype("Int64")
        d = days_overdue.to_numpy(dtype=np.int64)
        configs: dict[tuple[int, ...], np.ndarray] = {}
        for cid in comp.dropna().unique().tolist() + ([None] if comp.isna().any() else []):
            bounds = self.bucket_bounds(cid)
            mask = (comp.isna() if cid is None else comp == cid).fillna(False).to_numpy(dtype=bool)
            configs[bounds] = configs.get(bounds, np.zeros(len(d), dtype=bool)) | mask
        for bounds, mask in configs.items():
            labels = np.array(bucket_labels(bounds), dtype=object)
            edges = np.array((0,) + bounds, dtype=np.int64)
            out[mask] = labels[np.searchsorted(edges, d[mask], side="left")]
        return pd.Series(out, index=days_overdue.index, dtype=object)

    @property
    def holds(self) -> HoldConfig:
        return self.config.holds

    @property
    def communications(self) -> CommunicationsConfig:
        return self.config.communications

    @property
    def templates_dir(self) -> Path | None:
        """The drafts' override template folder (validated at load), or None."""
        return templates_dir_of(self.config, self.source)

    @property
    def charges_late_payment(self) -> bool:
        """Whether any policy or segment charges interest or fees (the file's default included)."""
        lp = self.config.late_payment
        return any(terms.interest is not None or terms.fee is not None
                   for terms in (lp.default, *lp.policies.values(), *lp.segments.values()))

    def late_payment_for(self, policy: str, segment: str | None) -> LatePaymentConfig:
        """Interest and fees of a segment, else of its policy, else the default (off unless set)."""
        lp = self.config.late_payment
        if segment is not None and segment in lp.segments:
            return lp.segments[segment]
        return lp.policies.get(policy, lp.default)


# -- loading ---------------------------------------------------------------------------------
def policy_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = (env.get(POLICY_FILE_VAR) or "").strip()
    return Path(value).expanduser() if value else DEFAULT_POLICY_FILE


def load_policy(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> DunningPolicy:
    """Read and validate a policy file (default: `DUNNING_POLICY_FILE`, else the shipped one)."""
    p = Path(path) if path is not None else policy_path(environ)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        hint = f" (set by {POLICY_FILE_VAR})" if path is None and p != DEFAULT_POLICY_FILE else ""
        raise PolicyError(f"dunning policy {p}{hint} cannot be read: {exc.strerror or exc}") from exc
    return parse_policy(text, source=str(p))


def parse_policy(text: str, *, source: str = "<policy>") -> DunningPolicy:
    """Validate policy YAML text; errors name `source`, the line and what was expected."""
    try:
        root = yaml.compose(text, Loader=_DecimalLoader)
    except yaml.YAMLError as exc:
        raise _not_yaml(source, exc) from None
    if root is None:
        raise PolicyError(f"dunning policy {source} is empty; it needs at least a 'policies' mapping")
    problems = _duplicate_keys(root)
    if problems:
        raise PolicyError(_format(source, problems))
    try:
        data = _DecimalLoader.construct_from(root)
    except yaml.YAMLError as exc:  # well-formed, but a tag or key the safe loader cannot build
        raise _not_yaml(source, exc) from None
    if not isinstance(data, dict):
        raise PolicyError(f"dunning policy {source}, line {root.start_mark.line + 1}: "
                          f"the file must be a mapping of keys (version, policies, ...)")
    try:
        config = PolicyFileConfig.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format(source, _pydantic_problems(exc, root))) from None
    problems = _cross_references(config) + _template_problems(config, source)
    if problems:
        raise PolicyError(_format(source, [(_line_of(root, loc), loc, msg) for loc, msg in problems]))
    return DunningPolicy(source=source, config=config, ladders=_resolve_ladders(config))


def _not_yaml(source: str, exc: yaml.YAMLError) -> PolicyError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f", line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark is not None and cmark is not mark:
        problem += f" ({context} started on line {cmark.line + 1})"
    return PolicyError(f"dunning policy {source}{where}: not valid YAML: {problem}")


def _resolve_ladders(config: PolicyFileConfig) -> dict[str, Ladder]:
    resolved: dict[str, Ladder] = {}

    def resolve(name: str) -> Ladder:
        if name in resolved:
            return resolved[name]
        pc = config.policies[name]
        base = pc.stages if pc.stages is not None else [
            StageConfig(name=s.name, days=s.days, action=s.action, tone=s.tone, label=s.label or None)
            for s in resolve(pc.extends).stages
        ]
        stages = tuple(
            Stage(name=s.name, days=s.days + (pc.delay_days if s.days > 0 else 0), action=s.action,
                  tone=s.tone, rank=i, label=s.label or default_label(s.name))
            for i, s in enumerate(base)
        )
        resolved[name] = Ladder(name=name, stages=stages, manual_only=pc.manual_only)
        return resolved[name]

    for name in config.policies:
        resolve(name)
    return resolved


def _cross_references(config: PolicyFileConfig) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    known = sorted(config.policies)
    if "default" not in config.policies:
        problems.append((("policies",), f"a policy named 'default' is required (found: {', '.join(known) or 'none'})"))
    for name, pc in config.policies.items():
        if pc.extends is not None:
            if pc.extends not in config.policies:
                problems.append((("policies", name, "extends"),
                                 f"unknown policy {pc.extends!r}; expected one of: {', '.join(known)}"))
                continue
            seen, cur = {name}, pc.extends
            while cur is not None and cur in config.policies:
                if cur in seen:
                    problems.append((("policies", name, "extends"), f"policies extend each other in a cycle ({cur!r})"))
                    break
                seen.add(cur)
                cur = config.policies[cur].extends
    if not problems:
        # Delays may reorder a ladder whose stages straddle the due date: check the result.
        for name, ladder in _resolve_ladders(config).items():
            days = [s.days for s in ladder.stages]
            if any(b <= a for a, b in zip(days, days[1:], strict=False)):
                problems.append((("policies", name, "delay_days"),
                                 f"the delayed stages are no longer in increasing order: {days}"))
    seg_names = [s.name for s in config.segments]
    for i, seg in enumerate(config.segments):
        if seg.policy not in config.policies:
            problems.append((("segments", i, "policy"),
                             f"unknown policy {seg.policy!r}; expected one of: {', '.join(known)}"))
        if seg.name == "default" or seg_names.count(seg.name) > 1:
            problems.append((("segments", i, "name"), f"segment name {seg.name!r} must be unique and not 'default'"))
    for cid, cc in config.companies.items():
        if cc.policy is not None and cc.policy not in config.policies:
            problems.append((("companies", cid, "policy"),
                             f"unknown policy {cc.policy!r}; expected one of: {', '.join(known)}"))
    for name in config.late_payment.policies:
        if name not in config.policies:
            problems.append((("late_payment", "policies", name),
                             f"unknown policy {name!r}; expected one of: {', '.join(known)}"))
    for name in config.late_payment.segments:
        if name not in seg_names and name != "default":
            problems.append((("late_payment", "segments", name),
                             f"unknown segment {name!r}; expected one of: {', '.join(['default', *seg_names])}"))
    return problems


def templates_dir_of(config: PolicyFileConfig, source: str) -> Path | None:
    """The drafts' template folder, resolved against the policy file's own folder."""
    folder = config.drafts.templates_dir
    if folder is None:
        return None
    path = Path(folder).expanduser()
    return path if path.is_absolute() else Path(source).resolve().parent / path


def _template_problems(config: PolicyFileConfig, source: str) -> list[tuple[tuple, str]]:
    """The override folder exists, holds only templates the drafts use, and each one parses."""
    import jinja2  # only when a folder is configured

    folder = templates_dir_of(config, source)
    if folder is None:
        return []
    loc = ("drafts", "templates_dir")
    if not folder.is_dir():
        return [(loc, f"template folder {folder} does not exist or is not a folder")]
    known = sorted(p.name for p in SHIPPED_TEMPLATES_DIR.glob("*.j2"))
    problems = []
    env = jinja2.Environment()
    for path in sorted(folder.iterdir()):
        if path.name not in known:
            problems.append((loc, f"{path.name} in {folder} is not a template the drafts use; "
                                  f"expected names: {', '.join(known)}"))
            continue
        try:
            env.parse(path.read_text(encoding="utf-8"), name=path.name, filename=str(path))
        except jinja2.TemplateSyntaxError as exc:
            problems.append((loc, f"{path}, line {exc.lineno}: template syntax error: {exc.message}"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((loc, f"{path} cannot be read: {exc}"))
    return problems


# -- YAML with Decimal numbers and line numbers -----------------------------------------------
class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that reads floats as Decimal (exact amounts) and can build from a node."""

    @classmethod
    def construct_from(cls, node: yaml.Node) -> Any:
        loader = cls("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return value if value.is_finite() else text


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _duplicate_keys(node: yaml.Node, path: tuple = ()) -> list[tuple[int, tuple, str]]:
    out = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if k in seen:
                out.append((key.start_mark.line + 1, path + (k,),
                            f"key {k!r} appears twice (first on line {seen[k]}); keep one"))
            else:
                seen[k] = key.start_mark.line + 1
            out += _duplicate_keys(value, path + (k,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out += _duplicate_keys(item, path + (i,))
    return out


def _line_of(root: yaml.Node, loc: tuple, *, key: bool = False) -> int:
    """The 1-based line of the YAML node at `loc` (the deepest one that exists)."""
    node = root
    key_node = None
    for part in loc:
        if isinstance(part, str) and part.startswith("[") and part.endswith("]"):
            continue  # pydantic's '[key]' marker: stay on the key found before
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value
                          if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if match is None:
                break
            key_node, node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            key_node, node = None, node.value[part]
        else:
            break
    # A collection's problem is reported on its key's line (where the reader looks for it).
    use_key = key_node is not None and (key or not isinstance(node, yaml.ScalarNode))
    target = key_node if use_key else node
    return target.start_mark.line + 1


def _pydantic_problems(exc: ValidationError, root: yaml.Node) -> list[tuple[int, tuple, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            expected = _expected_keys(loc[:-1])
            msg = f"unknown key {loc[-1]!r}" + (f"; expected one of: {', '.join(expected)}" if expected else "")
            problems.append((_line_of(root, loc, key=True), loc, msg))
            continue
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if kind == "missing":
            msg = f"required key {loc[-1]!r} is missing"
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            got = err["input"]
            msg += f" (got {str(got) if isinstance(got, Decimal) else repr(got)})"
        problems.append((_line_of(root, loc), loc, msg))
    return problems


def _expected_keys(loc: tuple) -> list[str]:
    """The field names allowed at `loc` in the policy file model."""
    model: Any = PolicyFileConfig
    for part in loc:
        if isinstance(part, str) and part.startswith("["):
            continue
        model = _unwrap(model)
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return []
            model = field.annotation
        elif get_origin(model) in (list, dict):
            model = get_args(model)[-1]
        else:
            return []
    model = _unwrap(model)
    if get_origin(model) in (list, dict):
        model = _unwrap(get_args(model)[-1])
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is not None and origin not in (list, dict) and type(None) in get_args(tp):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _dotted(loc: tuple) -> str:
    """('policies', 'default', 'stages', 1, 'action') -> policies.default.stages[1].action"""
    out, previous = "", None
    for part in loc:
        if isinstance(part, str) and part.startswith("["):
            continue
        if isinstance(part, int) and out and previous != "companies":  # list index, not a dict key
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
        previous = part
    return out or "(top level)"


def _format(source: str, problems: list[tuple[int, tuple, str]]) -> str:
    lines = [f"dunning policy {source} is invalid:"]
    for line, loc, msg in sorted(problems, key=lambda p: p[0]):
        lines.append(f"  {source}, line {line}, {_dotted(loc)}: {msg}")
    return "\n".join(lines)
