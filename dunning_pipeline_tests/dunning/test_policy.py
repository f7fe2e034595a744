"""The policy file: the shipped default, exact numbers, and errors that name file, line, expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from dunning_pipeline.dunning.policy import (
    DEFAULT_POLICY_FILE,
    PolicyError,
    bucket_labels,
    load_policy,
    parse_policy,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


MINIMAL = """
policies:
  default:
    stages:
      - {name: reminder, days: 1, action: email, tone: polite}
      - {name: final, days: 30, action: letter, tone: formal}
"""


def test_default_policy_has_the_documented_ladder_buckets_and_tolerance():
    policy = load_policy(DEFAULT_POLICY_FILE)
    table = policy.stage_table()
    default = table[table["policy"] == "default"]
    assert list(zip(default["stage"], default["days"], default["action"], strict=True)) == [
        ("pre_due", -3, "email"), ("reminder_1", 1, "email"), ("reminder_2", 8, "email"),
        ("call", 15, "call"), ("final_notice", 31, "letter"), ("collection", 45, "agency"),
    ]
    # key accounts: the same ladder, stages after the due date 14 days later, manual only
    key = table[table["policy"] == "key_accounts"]
    assert key["days"].tolist() == [-3, 15, 22, 29, 45, 59]
    assert key["manual_only"].all() and not default["manual_only"].any()
    assert policy.all_bucket_labels() == ("current", "1-30", "31-60", "61-90", "90+")
    tol = policy.tolerance_units(pd.Series([1, 1]), pd.Series(["EUR", "JPY"]))
    assert tol.tolist() == [100, 10_000]  # 0.01 EUR and 1 JPY, in 1/10,000 units


def test_environment_variable_selects_the_file(tmp_path):
    path = _write(tmp_path, MINIMAL)
    policy = load_policy(environ={"DUNNING_POLICY_FILE": str(path)})
    assert policy.source == str(path)
    assert [s.name for s in policy.ladders["default"].stages] == ["reminder", "final"]
    assert load_policy(environ={}).source == str(DEFAULT_POLICY_FILE)


def test_missing_file_names_the_path_and_the_variable(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match=r"nope\.yaml \(set by DUNNING_POLICY_FILE\) cannot be read"):
        load_policy(environ={"DUNNING_POLICY_FILE": str(missing)})


def test_numbers_are_exact_decimals():
    policy = parse_policy(MINIMAL + "tolerance:\n  default: 0.1\n  currencies: {KWD: 0.005}\n")
    tol = policy.tolerance_units(pd.Series([1, 1]), pd.Series(["EUR", "KWD"]))
    assert tol.tolist() == [1_000, 50]


def test_wrong_value_names_file_line_and_allowed_values(tmp_path):
    path = _write(tmp_path, """
        policies:
          default:
            stages:
              - {name: reminder, days: 1, action: email, tone: polite}
              - {name: final, days: 30, action: sms, tone: formal}
        """)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    message = str(exc.value)
    assert f"{path}, line 5, policies.default.stages[1].action" in message
    assert "'email', 'call', 'letter', 'suspend' or 'agency'" in message and "(got 'sms')" in message


def test_unknown_key_names_its_line_and_the_keys_expected(tmp_path):
    path = _write(tmp_path, """
        policies:
          default:
            stages:
              - {name: reminder, days: 1, action: email, tone: polite}
        holds:
          dispute_tags: [dispute]
          invoice_pattern: 'INV/\\d+'
        """)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    message = str(exc.value)
    assert f"{path}, line 7, holds.invoice_pattern: unknown key 'invoice_pattern'" in message
    assert "expected one of: open_ticket_statuses, dispute_tags, invoice_number_pattern, promise_pattern" in message


def test_every_problem_is_listed_with_its_own_line():
    text = textwrap.dedent("""
        aging_buckets: [30, 30, 90]
        tolerance:
          default: 0.00001
        policies:
          default:
            stages:
              - {name: a, days: 5, action: email, tone: polite}
              - {name: b, days: 2, action: email, tone: polite}
        companies:
          x: {}
        """).lstrip("\n")
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, source="p.yaml")
    lines = str(exc.value).splitlines()
    assert lines[0] == "dunning policy p.yaml is invalid:"
    assert any(line.startswith("  p.yaml, line 1, aging_buckets: bucket bounds must strictly increase") for line in lines)
    assert any(line.startswith("  p.yaml, line 3, tolerance.default: has more than 4 decimal places (got 0.00001)")
               for line in lines)
    assert any(line.startswith("  p.yaml, line 6, policies.default.stages: stage days must strictly increase")
               for line in lines)
    assert any(line.startswith("  p.yaml, line 10, companies.x: Input should be a valid integer") for line in lines)


def test_references_to_unknown_policies_are_errors_with_lines():
    text = MINIMAL.lstrip("\n") + textwrap.dedent("""
        segments:
          - name: vip
            policy: gold
            tags: [VIP]
        companies:
          3: {policy: silver}
        """)
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, source="p.yaml")
    message = str(exc.value)
    assert "p.yaml, line 9, segments[0].policy: unknown policy 'gold'; expected one of: default" in message
    assert "p.yaml, line 12, companies.3.policy: unknown policy 'silver'" in message


def test_default_policy_is_required_and_duplicate_keys_are_refused():
    with pytest.raises(PolicyError, match=r"line 1, policies: a policy named 'default' is required"):
        parse_policy("policies:\n  other:\n    stages: [{name: a, days: 1, action: email, tone: firm}]\n",
                     source="p.yaml")
    with pytest.raises(PolicyError, match=r"line 3, aging_buckets: key 'aging_buckets' appears twice \(first on line 1\)"):
        parse_policy("aging_buckets: [30]\npolicies: {}\naging_buckets: [60]\n", source="p.yaml")


def test_reserved_stage_names_and_bad_patterns_are_refused():
    with pytest.raises(PolicyError, match=r"stages\[0\]\.name: 'closed' is reserved"):
        parse_policy("policies:\n  default:\n    stages: [{name: closed, days: 1, action: email, tone: firm}]\n")
    with pytest.raises(PolicyError, match=r"holds\.invoice_number_pattern: must not contain capturing groups"):
        parse_policy(MINIMAL + "holds:\n  invoice_number_pattern: '(INV)/\\d+'\n")
    with pytest.raises(PolicyError, match=r"holds\.promise_pattern: must contain exactly one group"):
        parse_policy(MINIMAL + "holds:\n  promise_pattern: 'pay on (\\d+)'\n")


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(PolicyError, match=r"dunning policy p\.yaml, line 4: not valid YAML: .*"
                                          r"\(while parsing a flow sequence started on line 3\)"):
        parse_policy("policies:\n  default:\n    stages: [a\n", source="p.yaml")


def test_bucket_labels_follow_the_bounds():
    assert bucket_labels((30, 60, 90)) == ("current", "1-30", "31-60", "61-90", "90+")
    assert bucket_labels((14,)) == ("current", "1-14", "14+")


def test_company_override_of_policy_buckets_and_tolerance():
    policy = parse_policy(MINIMAL + textwrap.dedent("""
        companies:
          2:
            tolerance: {default: 0.5}
            aging_buckets: [10]
        """))
    assert policy.tolerance_units(pd.Series([1, 2]), pd.Series(["EUR", "EUR"])).tolist() == [100, 5_000]
    buckets = policy.aging_bucket(pd.Series([1, 2, 2]), pd.Series([11, 11, 0]))
    assert buckets.tolist() == ["1-30", "10+", "current"]
