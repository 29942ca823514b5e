"""The Grafana dashboard rhid ships: it parses, it is whole, it shows route states over time, and
every query reads only metrics rhid exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.unit.metric_names import exported, names_in

DASHBOARD = Path(__file__).parents[2] / "packaging/grafana/rhid-dashboard.json"


def load() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = variable["query"]["query"].removeprefix("label_values(").rsplit(",", 1)[0]
            yield f"${variable['name']}", inner


def test_the_dashboard_is_a_whole_grafana_dashboard() -> None:
    """Title, uid, schema version; every panel has a unique id, a place on the grid, and queries a
    Prometheus chosen by the $datasource variable."""
    dashboard = load()
    assert dashboard["title"]
    assert dashboard["uid"] == "rhid-routes"
    assert dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names == ["datasource", "instance"]
    for panel in panels(dashboard):
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert target["refId"]


def test_route_states_are_shown_over_time() -> None:
    """A state timeline of every route's announced state per node, named as such."""
    timelines = [
        panel
        for panel in panels(load())
        if panel["type"] == "state-timeline"
        and any("rhid_route_announced" in target["expr"] for target in panel["targets"])
    ]
    assert [panel["title"] for panel in timelines] == ["Route states over time"]
    mappings = timelines[0]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {mappings["0"]["text"], mappings["1"]["text"]} == {"withdrawn", "announced"}


def test_every_query_reads_only_metrics_rhid_exports() -> None:
    """Each metric a panel or variable reads is on the page the real exporter renders."""
    seen = set()
    for where, expr in queries(load()):
        found = names_in(expr)
        assert found, (where, expr)
        assert found <= exported(), (where, found - exported())
        seen |= found
    assert {"rhid_route_announced", "rhid_proxy_health", "rhid_cycle_duration_seconds_bucket"} <= seen
