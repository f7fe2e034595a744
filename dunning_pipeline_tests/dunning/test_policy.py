"""The policy file: the shipped default, exact numbers, and errors that name file, line, expectation."""

from __future__ import annotations

import os
import textwrap
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from dunning_pipeline.dunning.policy import (
    DEFAULT_POLICY_FILE,
    PolicyError,
    bucket_labels,
    load_policy,
    parse_policy,
    policy_path,
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
    with pytest.raises(PolicyError) as exc:
        parse_policy("policies:\n  default:\n    stages: [a\n", source="p.yaml")
    assert str(exc.value) == ("dunning policy p.yaml, line 4: not valid YAML: expected ',' or ']', but got '<stream end>'"
                              " (while parsing a flow sequence started on line 3)")
    with pytest.raises(PolicyError) as exc:  # no context to name
        parse_policy("policies: a: b\n", source="p.yaml")
    assert str(exc.value) == "dunning policy p.yaml, line 1: not valid YAML: mapping values are not allowed here"
    with pytest.raises(PolicyError) as exc:  # a reader error has no line, only a position
        parse_policy("policies: \x07\n", source="p.yaml")
    assert str(exc.value).startswith(
        "dunning policy p.yaml: not valid YAML: unacceptable character #x0007: special characters are not allowed")


def test_well_formed_yaml_the_safe_loader_cannot_build_is_a_policy_error():
    # these used to escape as yaml's ConstructorError, naming neither the policy file nor its line
    with pytest.raises(PolicyError) as exc:
        parse_policy(MINIMAL.lstrip("\n") + "colour: !!python/object:os.system x\n", source="p.yaml")
    assert str(exc.value) == ("dunning policy p.yaml, line 6: not valid YAML: could not determine a constructor "
                              "for the tag 'tag:yaml.org,2002:python/object:os.system'")
    with pytest.raises(PolicyError) as exc:
        parse_policy(MINIMAL.lstrip("\n") + "? [a, b]\n: 1\n? [c]\n: 2\n", source="p.yaml")
    assert str(exc.value) == ("dunning policy p.yaml, line 6: not valid YAML: found unhashable key "
                              "(while constructing a mapping started on line 1)")


def test_messages_without_a_source_name_the_policy_text():
    with pytest.raises(PolicyError, match=r"^dunning policy <policy> is empty"):
        parse_policy("")


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


def _problems(text: str) -> str:
    with pytest.raises(PolicyError) as exc:
        parse_policy(textwrap.dedent(text).lstrip("\n"), source="p.yaml")
    return str(exc.value)


def test_ladders_and_buckets_that_cannot_work_are_refused():
    message = _problems("""
        aging_buckets: []
        tolerance: {default: -0.01, currencies: {JPY: -1}}
        policies:
          default:
            stages: []
          other:
            description: neither stages nor a base
          twice:
            stages:
              - {name: a, days: 1, action: email, tone: polite}
              - {name: a, days: 2, action: email, tone: polite}
              - {name: b, days: 2, action: email, tone: polite}
        companies:
          2: {aging_buckets: [60, 30]}
        segments:
          - {name: vip, policy: default}
        """)
    # a value that is a list or mapping is not repeated after the message
    assert message.splitlines() == [
        "dunning policy p.yaml is invalid:",
        "  p.yaml, line 1, aging_buckets: give at least one bound, e.g. [30, 60, 90]",
        "  p.yaml, line 2, tolerance.default: must not be negative (got -0.01)",
        "  p.yaml, line 2, tolerance.currencies: must not be negative",
        "  p.yaml, line 5, policies.default.stages: a policy needs at least one stage",
        "  p.yaml, line 6, policies.other: a policy needs either 'stages' or 'extends'",
        "  p.yaml, line 9, policies.twice.stages: stage names must be unique, repeated: a",
        "  p.yaml, line 14, companies.2.aging_buckets: bucket bounds must strictly increase, got [60, 30]",
        "  p.yaml, line 16, segments[0]: a segment needs 'tags' or 'partner_ids' to select its customers",
    ]


def test_a_stage_day_repeated_is_not_increasing():
    message = _problems("""
        policies:
          default:
            stages:
              - {name: a, days: 1, action: email, tone: polite}
              - {name: b, days: 1, action: email, tone: polite}
        """)
    assert "line 3, policies.default.stages: stage days must strictly increase in order, got [1, 1]" in message
    assert "line 1, aging_buckets: bucket bounds must strictly increase, got [30, 30]" in _problems(
        "aging_buckets: [30, 30]\n" + MINIMAL.lstrip("\n"))


def test_extends_must_name_a_policy_and_not_go_round_in_a_cycle():
    message = _problems(MINIMAL + """
          c: {extends: gold}
          a: {extends: b}
          b: {extends: a}
        """.replace("\n        ", "\n"))
    assert "line 7, policies.c.extends: unknown policy 'gold'; expected one of: a, b, c, default" in message
    assert "line 8, policies.a.extends: policies extend each other in a cycle ('a')" in message
    assert "line 9, policies.b.extends: policies extend each other in a cycle ('b')" in message
    message = _problems(MINIMAL + """
          x: {extends: y}
          y: {extends: gold}
          p: {extends: q}
          q: {extends: r}
          r: {extends: q}
        """.replace("\n        ", "\n"))
    assert message.splitlines()[1:] == [
        "  p.yaml, line 8, policies.y.extends: unknown policy 'gold'; expected one of: default, p, q, r, x, y",
        "  p.yaml, line 9, policies.p.extends: policies extend each other in a cycle ('q')",
        "  p.yaml, line 10, policies.q.extends: policies extend each other in a cycle ('q')",
        "  p.yaml, line 11, policies.r.extends: policies extend each other in a cycle ('r')",
    ]


def test_a_delay_moves_only_the_stages_after_the_due_date_and_adds_up_along_extends():
    policy = parse_policy(textwrap.dedent("""
        policies:
          default:
            stages:
              - {name: before, days: -1, action: email, tone: polite}
              - {name: on_the_day, days: 0, action: email, tone: polite, label: Due today}
              - {name: after, days: 1, action: call, tone: firm}
          late:
            extends: default
            delay_days: 3
            manual_only: true
          later:
            extends: late
            delay_days: 2
        """))
    days = {name: [s.days for s in ladder.stages] for name, ladder in policy.ladders.items()}
    assert days == {"default": [-1, 0, 1], "late": [-1, 0, 4], "later": [-1, 0, 6]}
    later = policy.ladders["later"]
    assert [(s.name, s.rank, s.action, s.tone, s.label) for s in later.stages] == [
        ("before", 0, "email", "polite", "Before"), ("on_the_day", 1, "email", "polite", "Due today"),
        ("after", 2, "call", "firm", "After")]
    assert (policy.ladders["late"].manual_only, later.manual_only) == (True, False)


def test_without_a_default_policy_the_message_lists_the_policies_found():
    two = "policies:\n  b: {stages: [{name: a, days: 1, action: email, tone: firm}]}\n  a: {extends: b}\n"
    assert _problems(two).splitlines()[1] == (
        "  p.yaml, line 1, policies: a policy named 'default' is required (found: a, b)")
    assert "policies: a policy named 'default' is required (found: none)" in _problems("policies: {}\n")


def test_unknown_policy_names_list_every_known_policy():
    message = _problems(MINIMAL + """
          gold: {extends: default}
        segments:
          - {name: vip, policy: silver, tags: [VIP]}
        companies:
          2: {policy: bronze}
        late_payment:
          policies:
            iron: {fee: {amounts: {EUR: 40}}}
        """.replace("\n        ", "\n"))
    assert "segments[0].policy: unknown policy 'silver'; expected one of: default, gold" in message
    assert "companies.2.policy: unknown policy 'bronze'; expected one of: default, gold" in message
    assert "late_payment.policies.iron: unknown policy 'iron'; expected one of: default, gold" in message


def test_a_zero_amount_is_allowed():
    policy = parse_policy(MINIMAL + "tolerance: {default: 0, currencies: {JPY: 0}}\n")
    assert policy.tolerance_units(pd.Series([1, 1]), pd.Series(["EUR", "JPY"])).tolist() == [0, 0]


def test_segment_and_late_payment_names_are_checked():
    message = _problems(MINIMAL + """
        segments:
          - {name: default, policy: default, tags: [A]}
          - {name: vip, policy: default, tags: [VIP]}
          - {name: vip, policy: default, partner_ids: [7]}
        companies:
          3: {policy: default}
        late_payment:
          policies:
            gold: {fee: {amounts: {EUR: 40}}}
            default: {fee: {amounts: {EUR: 40}}}
        """.replace("\n        ", "\n"))
    assert "segments[0].name: segment name 'default' must be unique and not 'default'" in message
    assert "segments[1].name: segment name 'vip' must be unique" in message
    assert "segments[2].name: segment name 'vip' must be unique" in message
    assert "late_payment.policies.gold: unknown policy 'gold'; expected one of: default" in message
    assert "companies" not in message and "late_payment.policies.default" not in message
    message = _problems(MINIMAL + """
        segments:
          - {name: vip, policy: default, tags: [VIP]}
        late_payment:
          segments:
            bronze: {fee: {amounts: {EUR: 40}}}
            vip: {fee: {amounts: {EUR: 40}}}
            default: {fee: {amounts: {EUR: 40}}}
        """.replace("\n        ", "\n"))
    assert message.splitlines()[1:] == [
        "  p.yaml, line 11, late_payment.segments.bronze: unknown segment 'bronze'; expected one of: default, vip"]


def test_an_empty_or_non_mapping_file_is_refused():
    with pytest.raises(PolicyError, match=r"^dunning policy p\.yaml is empty; it needs at least a 'policies' mapping$"):
        parse_policy("", source="p.yaml")
    with pytest.raises(PolicyError, match=r"^dunning policy p\.yaml, line 2: the file must be a mapping of keys"):
        parse_policy("\n- policies\n", source="p.yaml")
    with pytest.raises(PolicyError, match=r"policies\.default\.stages\[0\]\.name: 'none' is reserved for the history"):
        parse_policy("policies:\n  default:\n    stages: [{name: none, days: 1, action: email, tone: firm}]\n")


def test_numbers_with_underscores_are_decimals_and_infinity_is_not_a_number():
    policy = parse_policy(MINIMAL + "tolerance:\n  default: 0.000_5\n")
    assert policy.config.tolerance.default == Decimal("0.0005")
    message = _problems(MINIMAL.lstrip("\n") + "tolerance:\n  default: .inf\n")
    assert "line 7, tolerance.default: Input should be a valid decimal (got '.inf')" in message


def test_duplicate_keys_are_found_in_nested_mappings_and_lists():
    message = _problems("""
        policies:
          default:
            stages:
              - {name: a, days: 1, action: email, tone: polite, tone: firm}
              - {name: b, days: 2, action: email, tone: polite}
            delay_days: 1
            delay_days: 2
        """)
    assert message.splitlines() == [
        "dunning policy p.yaml is invalid:",
        "  p.yaml, line 4, policies.default.stages[0].tone: key 'tone' appears twice (first on line 4); keep one",
        "  p.yaml, line 7, policies.default.delay_days: key 'delay_days' appears twice (first on line 6); keep one",
    ]


def test_problems_in_mappings_by_key_name_the_keys_line():
    message = _problems(MINIMAL + """
        tolerance:
          currencies:
            eur: 0.01
        companies:
          2:
            tolerance: {default: 0.1, fraction: 2}
        """.replace("\n        ", "\n"))
    assert "line 9, tolerance.currencies.eur: String should match pattern '^[A-Z]{3}$' (got 'eur')" in message
    assert ("line 12, companies.2.tolerance.fraction: unknown key 'fraction'; expected one of: default, currencies"
            in message)
    message = _problems(MINIMAL + "late_payment:\n  segments:\n    vip: {fees: 1}\n")
    assert "late_payment.segments.vip.fees: unknown key 'fees'; expected one of: interest, fee" in message
    message = _problems(MINIMAL + "segments:\n  - {name: vip, policy: default, tags: [A], colour: red}\n")
    assert ("segments[0].colour: unknown key 'colour'; expected one of: name, policy, tags, partner_ids, companies"
            in message)
    assert "line 4, policies.default.stages[0].tone: required key 'tone' is missing" in _problems(
        "policies:\n  default:\n    stages:\n      - {name: a, days: 1, action: email}\n")
    message = _problems("policies:\n  default:\n    stages: [{name: a, days: 1, action: email, tone: firm}]\n"
                        "colour: red\nshape:\n  round\n")
    assert "line 4, colour: unknown key 'colour'; expected one of: version, tolerance, aging_buckets, policies" in message
    assert "line 5, shape: unknown key 'shape'" in message  # the key's line, not its value's


def test_a_wrong_value_is_reported_on_its_own_line_and_a_missing_key_on_its_parents():
    message = _problems(MINIMAL + "tolerance:\n  default:\n    -0.5\n")
    assert "line 8, tolerance.default: must not be negative (got -0.5)" in message
    assert _problems("version: 1\n").splitlines()[1:] == ["  p.yaml, line 1, policies: required key 'policies' is missing"]


def test_stage_lookups_by_rank_and_name():
    policy = load_policy(DEFAULT_POLICY_FILE)
    pol = pd.Series(["default", "key_accounts", "default", "key_accounts"], index=[5, 6, 7, 8])
    names = policy.stage_name(pol, pd.Series([0, 1, -1, 5], index=[5, 6, 7, 8]))
    assert names.tolist() == ["pre_due", "reminder_1", None, "collection"] and list(names.index) == [5, 6, 7, 8]
    attrs = policy.stage_attributes(pol, pd.Series(["call", "call", None, "no_such_stage"], index=[5, 6, 7, 8]))
    assert list(attrs.index) == [5, 6, 7, 8]
    assert attrs["action"].fillna("-").tolist() == ["call", "call", "-", "-"]
    assert attrs["tone"].fillna("-").tolist() == ["firm", "firm", "-", "-"]
    assert attrs["manual_only"].tolist() == [False, True, pd.NA, pd.NA]
    first = policy.stage_attributes(pol.iloc[:2], pd.Series(["pre_due", "pre_due"], index=[5, 6]))  # rank 0
    assert first.to_dict("list") == {"action": ["email", "email"], "tone": ["friendly", "friendly"],
                                     "manual_only": [False, True]}
    ranks = policy.rank_of_names(pol, pd.Series(["reminder_2", "collection", "none", "gone"], index=[5, 6, 7, 8]))
    assert ranks.tolist() == [2, 5, -1, pd.NA] and list(ranks.index) == [5, 6, 7, 8]
    assert policy.rank_of_names(pol.iloc[:2], pd.Series(["pre_due", "pre_due"], index=[5, 6])).tolist() == [0, 0]
    assert policy.rank_of_names(pol.iloc[:1], pd.Series([None], index=[5])).tolist() == [-1]


def test_display_stages_list_every_stage_name_once_the_default_ladder_first():
    policy = parse_policy(textwrap.dedent("""
        policies:
          b_first:
            stages:
              - {name: nudge, days: -1, action: email, tone: friendly}
              - {name: reminder, days: 2, action: call, tone: firm}
          default:
            stages:
              - {name: reminder, days: 1, action: email, tone: polite}
              - {name: final_notice, days: 30, action: letter, tone: formal}
        """))
    stages = policy.display_stages()
    assert [(s.name, s.days, s.action, s.display) for s in stages] == [
        ("reminder", 1, "email", "Reminder"), ("final_notice", 30, "letter", "Final notice"),
        ("nudge", -1, "email", "Nudge")]


def test_segments_pick_the_first_match_by_tag_partner_and_company():
    policy = parse_policy(MINIMAL + textwrap.dedent("""
          gold:
            extends: default
        companies:
          2: {policy: gold}
        segments:
          - {name: vip, policy: gold, tags: [' Very Important '], companies: [1]}
          - {name: listed, policy: default, partner_ids: [40, 41]}
          - {name: also_vip, policy: gold, tags: [vip]}
        """))
    customers = pd.DataFrame({
        "customer_id": [10, 40, 41, 50, 60, 70],
        "company_id": pd.array([1, 1, 2, 2, 1, None], dtype="Int64"),
        "tag_list": [["very important", "vip"], ["Very Important"], [], ["VIP", "x"], [], ["vip"]],
    }, index=[3, 4, 5, 6, 7, 8])
    seg = policy.segment_of(customers)
    assert list(seg.index) == [3, 4, 5, 6, 7, 8]
    assert seg["segment"].tolist() == ["vip", "vip", "listed", "also_vip", "default", "also_vip"]
    assert seg["policy"].tolist() == ["gold", "gold", "default", "gold", "default", "gold"]
    # no segment: the company's default policy (company 2: gold)
    plain = policy.segment_of(customers.assign(tag_list=[[]] * 6, customer_id=range(6)))
    assert plain["segment"].tolist() == ["default"] * 6
    assert plain["policy"].tolist() == ["default", "default", "gold", "gold", "default", "default"]
    assert policy.default_policy_for(None) == "default" and policy.default_policy_for(2) == "gold"


def test_buckets_of_invoices_without_company_and_labels_of_every_company():
    policy = parse_policy(MINIMAL + "aging_buckets: [30]\ncompanies:\n  2: {aging_buckets: [10, 20]}\n"
                          "  3: {tolerance: {default: 1}}\n")
    buckets = policy.aging_bucket(pd.Series([None, 2, 3, None], dtype="Int64"), pd.Series([31, 31, 15, 0]))
    assert buckets.tolist() == ["30+", "20+", "1-30", "current"]
    # a company on the default bounds seen before one with its own: no company still ages by default
    buckets = policy.aging_bucket(pd.Series([3, 2, None, 2, 3], dtype="Int64", index=[9, 8, 7, 6, 5]),
                                  pd.Series([31, 31, 31, 1, 1], index=[9, 8, 7, 6, 5]))
    assert buckets.tolist() == ["30+", "20+", "30+", "1-10", "1-30"] and list(buckets.index) == [9, 8, 7, 6, 5]
    assert policy.all_bucket_labels() == ("current", "1-30", "1-10", "11-20", "20+", "30+")  # ties: the file's order
    assert policy.bucket_bounds(None) == (30,) and policy.bucket_bounds(3) == (30,)
    # an open bucket after the closed one that starts on the same day
    overlapping = parse_policy(MINIMAL + "aging_buckets: [30]\ncompanies:\n  2: {aging_buckets: [30, 60]}\n")
    assert overlapping.all_bucket_labels() == ("current", "1-30", "31-60", "30+", "60+")
    tol = policy.tolerance_units(pd.Series([None, 3, 3], dtype="Int64"), pd.Series(["EUR", "EUR", None]))
    assert tol.tolist() == [100, 10_000, 10_000]


def test_stage_rank_of_a_missing_day_is_before_the_first_stage():
    policy = parse_policy(MINIMAL)
    ranks = policy.stage_rank(pd.Series(["default"] * 4, index=[4, 3, 2, 1]), pd.Series([0, 1, None, 30], dtype="Int64",
                                                                                       index=[4, 3, 2, 1]))
    assert ranks.tolist() == [-1, 0, -1, 1] and list(ranks.index) == [4, 3, 2, 1] and ranks.dtype == "int64"


def test_a_file_named_by_its_path_is_read_as_given(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as exc:
        load_policy(missing)
    assert str(exc.value) == f"dunning policy {missing} cannot be read: No such file or directory"
    assert policy_path({"DUNNING_POLICY_FILE": "  ~/p.yaml "}) == Path.home() / "p.yaml"
    assert policy_path({"DUNNING_POLICY_FILE": "  "}) == DEFAULT_POLICY_FILE
    path = _write(tmp_path, MINIMAL)
    assert load_policy(path).source == str(path)


def test_a_template_folder_is_found_next_to_the_policy_and_checked(tmp_path):
    assert parse_policy(MINIMAL).templates_dir is None
    source = tmp_path / "conf" / "policy.yaml"
    (tmp_path / "conf" / "mine").mkdir(parents=True)
    policy = parse_policy(MINIMAL + "drafts: {templates_dir: mine}\n", source=str(source))
    assert policy.templates_dir == tmp_path / "conf" / "mine"  # relative to the policy file, not the cwd
    absolute = parse_policy(MINIMAL + f"drafts: {{templates_dir: '{tmp_path / 'conf' / 'mine'}'}}\n", source="p.yaml")
    assert absolute.templates_dir == tmp_path / "conf" / "mine"
    home = os.path.relpath(tmp_path / "conf" / "mine", Path.home())
    if not home.startswith(".."):
        assert parse_policy(MINIMAL + f"drafts: {{templates_dir: '~/{home}'}}\n").templates_dir == tmp_path / "conf" / "mine"

    missing = _problems(MINIMAL.lstrip("\n") + "drafts:\n  templates_dir: nowhere\n").splitlines()[1:]
    assert missing == [f"  p.yaml, line 7, drafts.templates_dir: template folder {Path.cwd() / 'nowhere'} "
                       "does not exist or is not a folder"]
    mine = tmp_path / "conf" / "mine"
    (mine / "reminder_en.txt.j2").write_text("Dear {{ customer_name }}", encoding="utf-8")
    (mine / "reminder_de.txt.j2").write_text("Hallo {% if x %}", encoding="utf-8")
    (mine / "reminder_fr.txt.j2").write_bytes(b"\xff\xfe bonjour")
    (mine / "notes.txt").write_text("not a template", encoding="utf-8")
    (mine / "timeline.html.j2").mkdir()
    with pytest.raises(PolicyError) as exc:
        parse_policy(MINIMAL.lstrip("\n") + "drafts:\n  templates_dir: mine\n", source=str(source))
    lines = str(exc.value).splitlines()[1:]
    where = f"  {source}, line 7, drafts.templates_dir: "
    assert lines[0] == (f"{where}notes.txt in {mine} is not a template the drafts use; expected names: "
                        "reminder_de.txt.j2, reminder_en.txt.j2, reminder_fr.txt.j2, timeline.html.j2")
    assert lines[1].startswith(f"{where}{mine / 'reminder_de.txt.j2'}, line 1: template syntax error: Unexpected end")
    assert lines[2].startswith(f"{where}{mine / 'reminder_fr.txt.j2'} cannot be read: 'utf-8' codec can't decode")
    assert lines[3].startswith(f"{where}{mine / 'timeline.html.j2'} cannot be read: [Errno 21] Is a directory")
    assert len(lines) == 4
