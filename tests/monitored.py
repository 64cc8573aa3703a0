"""What the alert rules and the Grafana board read: their queries and the metrics they name
(shared by the promtool tests and the test that a running service exports every one)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "infra" / "prometheus"
BOARD = REPO / "infra" / "grafana" / "mandat.json"
_METRIC = re.compile(r"\b(mandat_[a-z_]+)")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def board_queries() -> list[str]:
    board = json.loads(BOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def metrics_named() -> set[str]:
    """Every mandat_* metric the rules and the board read, as a service exports it (a
    histogram's `_bucket` series by the histogram's name)."""
    queries = [rule["expr"] for rule in rules()] + board_queries()
    return {re.sub(r"_bucket$", "", m) for q in queries for m in _METRIC.findall(q)}
