"""The Prometheus alerting rules rhid ships: valid for promtool, each alert unit-tested by promtool,
and reading only metrics that exist (rhid's own, bird_exporter's, Prometheus' `up`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.metric_names import exported, names_in

ROOT = Path(__file__).parents[2]
RULES = ROOT / "packaging/prometheus/rhid-alerts.yml"
TESTS = ROOT / "tests/unit/data/rhid-alerts.test.yml"
# bird_exporter's series the cross-check reads (its default format), and Prometheus' own.
OTHERS = frozenset({"bird_protocol_prefix_import_count", "up"})


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is missing: install Debian's prometheus package (scripts/install.sh --tests does)"
        )
    return found


def rules() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts the file."""
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules`: each alert fires when it should, with its labels and annotations, and
    not before or after."""
    result = subprocess.run(
        [promtool(), "test", "rules", str(TESTS)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """Every alert of the file has a promtool case where it fires and one where it does not."""
    cases: dict[str, Any] = yaml.safe_load(TESTS.read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test["alert_rule_test"]:
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - fired == set(), "never seen firing"
    assert names - quiet == set(), "never seen quiet"


def test_the_rules_read_only_metrics_that_exist() -> None:
    """Each metric an expression reads is on rhid's page, or is bird_exporter's or Prometheus' own."""
    for rule in rules():
        unknown = names_in(rule["expr"]) - exported() - OTHERS
        assert unknown == set(), (rule["alert"], unknown)


def test_the_name_reader_finds_names_and_skips_the_rest() -> None:
    """names_in reads metric names only: not functions, aggregations, labels, strings or numbers."""
    expr = (
        'max by (host) (label_replace(rhid_a{x="y"}, "host", "$1", "instance", "(.*):[0-9]+")) '
        "!= on (host) rate(rhid_b_total[5m]) > 1e3 unless rhid_c offset 5m or time() - rhid_d > 30"
    )
    assert names_in(expr) == {"rhid_a", "rhid_b_total", "rhid_c", "rhid_d"}
