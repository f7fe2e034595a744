"""Late-payment interest and fees: the policy section and the exact per-invoice computation."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pandas as pd
import pytest

from dunning_pipeline.dunning.policy import DEFAULT_POLICY_FILE, PolicyError, load_policy, parse_policy
from dunning_pipeline.reporting.interest import interest_units, late_payment_charges

LADDER = """
policies:
  default:
    stages:
      - {name: pre_due, days: -3, action: email, tone: friendly}
      - {name: reminder_1, days: 1, action: email, tone: polite}
      - {name: reminder_2, days: 8, action: email, tone: firm}
      - {name: final_notice, days: 31, action: letter, tone: formal}
  quiet:
    extends: default
segments:
  - {name: vip, policy: quiet, tags: [VIP]}
"""


def _policy(late_payment: str = ""):
    return parse_policy(textwrap.dedent(LADDER) + textwrap.dedent(late_payment))


def _aging(**overrides) -> pd.DataFrame:
    base = {"invoice_id": [1, 2, 3, 4, 5], "invoice_number": ["INV/1", "INV/2", "JP/3", "RINV/4", "INV/5"],
            "move_type": ["out_invoice", "out_invoice", "out_invoice", "out_refund", "out_invoice"],
            "customer_id": [10, 10, 11, 10, 12], "company_id": [1, 1, 2, 1, 1],
            "currency": ["EUR", "EUR", "JPY", "EUR", "EUR"],
            "amount_residual": [10_000_000, 1_825_000, 1_000_000_000, -500_000, 2_000_000],
            "days_overdue": [30, 1, 45, 40, -2],
            "policy": ["default", "default", "default", "default", "default"],
            "segment": ["default", "default", "default", "default", "default"],
            "stage_rank": [2, 1, 3, 3, 0]}
    base.update(overrides)
    return pd.DataFrame(base)


def test_off_by_default_in_the_shipped_policy():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.late_payment_for("default", "default").interest is None
    assert late_payment_charges(_aging(), policy).empty


@pytest.mark.parametrize("late_payment, charges", [
    ("", False),
    ("late_payment: {default: {}, policies: {quiet: {}}, segments: {vip: {}}}", False),
    ("late_payment: {default: {interest: {rate_percent: 8}}}", True),
    ("late_payment: {policies: {quiet: {fee: {amounts: {EUR: 40}}}}}", True),
    ("late_payment: {segments: {vip: {interest: {rate_percent: 8}}}}", True),
])
def test_the_policy_says_whether_anything_is_charged(late_payment, charges):
    # late_payment_charges reads no aging rows at all when nothing is charged anywhere.
    policy = _policy(late_payment)
    assert policy.charges_late_payment is charges
    pairs = [("default", None), ("quiet", None), ("quiet", "vip")]
    assert any(policy.late_payment_for(*p) != type(policy.late_payment_for(*p))() for p in pairs) is charges


def test_interest_is_exact_and_rounded_half_up_per_currency():
    # 1,000.00 EUR, 30 days at 9.5 %: 7.8082... -> 7.81 EUR
    assert interest_units(10_000_000, 30, Decimal("9.5"), "EUR") == 78_100
    # 182.50 EUR, 1 day at 1 %: exactly 0.005 -> 0.01 (half up), never a float's 0.00499...
    assert interest_units(1_825_000, 1, Decimal("1"), "EUR") == 100
    # 100,000 JPY, 45 days at 2.15 + 9 points: 1,374.66 -> 1,375 JPY (no minor unit)
    assert interest_units(1_000_000_000, 45, Decimal("11.15"), "JPY") == 13_750_000
    assert interest_units(10_000_000, 0, Decimal("9.5"), "EUR") == 0
    assert interest_units(-10_000_000, 30, Decimal("9.5"), "EUR") == 0


def test_charges_per_invoice_with_a_reference_rate_and_a_fee_per_invoice():
    policy = _policy("""
    late_payment:
      default:
        interest: {reference_rate_percent: 2.15, points: 9}
        fee: {amounts: {EUR: 40}, per: invoice}
    """)
    out = late_payment_charges(_aging(), policy).set_index("invoice_id")
    # the credit note (4) and the invoice not yet due (5) are never charged
    assert sorted(out.index) == [1, 2, 3]
    assert out.loc[1, "interest_rate_percent"] == "11.15" and out.loc[1, "interest_statutory"]
    # 1,000.00 EUR x 30 / 365 x 11.15 % = 9.1643... -> 9.16 EUR; plus 40 EUR
    assert out.loc[1, ["interest_amount", "fee_amount", "charges_total"]].tolist() == [91_600, 400_000, 491_600]
    assert out.loc[2, "interest_amount"] == 600  # 182.50 x 1 / 365 x 11.15 % = 0.0557 -> 0.06
    # no fee configured for JPY: interest only
    assert out.loc[3, ["interest_amount", "fee_count", "fee_amount"]].tolist() == [13_750_000, 0, 0]


def test_fee_per_stage_and_segment_wins_over_policy():
    policy = _policy("""
    late_payment:
      default:
        fee: {amounts: {EUR: 5}, per: stage}
      segments:
        vip: {}
    """)
    aging = _aging(segment=["default", "default", "default", "default", "vip"], days_overdue=[30, 1, 45, 40, 12])
    out = late_payment_charges(aging, policy).set_index("invoice_id")
    # rank 2 = reminder_2: two overdue stages reached (reminder_1, reminder_2); no interest configured
    assert out.loc[1, ["fee_count", "fee_amount", "interest_amount"]].tolist() == [2, 100_000, 0]
    assert out.loc[2, "fee_count"] == 1
    assert 5 not in out.index  # the vip segment charges nothing


def test_interest_per_overdue_instalment_when_instalments_are_known():
    policy = _policy("""
    late_payment:
      default:
        interest: {rate_percent: 10}
    """)
    instalments = pd.DataFrame({"invoice_id": [1, 1, 1], "line_id": [7, 8, 9],
                                "amount_residual": [3_650_000, 3_650_000, 2_700_000],
                                "days_overdue": [30, 10, -20]})
    out = late_payment_charges(_aging(), policy, instalments).set_index("invoice_id")
    # 365.00 x 30 / 365 x 10 % = 3.00 and 365.00 x 10 / 365 x 10 % = 1.00; the third is not due
    assert out.loc[1, ["interest_basis", "interest_amount"]].tolist() == ["instalments", 40_000]
    assert out.loc[2, "interest_basis"] == "invoice"


@pytest.mark.parametrize("section, message", [
    ("late_payment:\n  default:\n    interest: {rate_percent: 8, points: 9}\n",
     "give either 'rate_percent' or 'reference_rate_percent' with 'points'"),
    ("late_payment:\n  default:\n    interest: {points: 9}\n",
     "a reference rate needs both 'reference_rate_percent' and 'points'"),
    ("late_payment:\n  default:\n    fee: {amounts: {EUR: 40.001}}\n", "EUR 40.001 has more decimals than EUR's 2"),
    ("late_payment:\n  policies:\n    nope: {}\n", "unknown policy 'nope'"),
    ("late_payment:\n  segments:\n    nobody: {}\n", "unknown segment 'nobody'"),
])
def test_bad_late_payment_settings_fail_at_load_naming_the_line(section, message):
    text = textwrap.dedent(LADDER) + section
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, source="p.yaml")
    assert message in str(exc.value)
    first_line = textwrap.dedent(LADDER).count("\n") + 1  # the section starts after the ladder
    line = int(str(exc.value).split("p.yaml, line ")[1].split(",")[0])
    assert first_line <= line <= first_line + 3
