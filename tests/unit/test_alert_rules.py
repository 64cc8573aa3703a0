"""The alert rules and the Grafana board, checked by Prometheus's own tool.

`promtool` comes from Debian's `prometheus` package: `make install` extracts it into the
virtualenv (the package's daemon is never installed nor started). These tests skip, saying
so, only where it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from monitored import PROMETHEUS, board_queries, metrics_named, rules

pytestmark = pytest.mark.unit


def promtool() -> str:
    """promtool on the PATH, or the one `make install` put beside this Python."""
    found = shutil.which("promtool") or shutil.which(
        "promtool", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.skip(
            "promtool is not installed: `make promtool` (run by `make install`) extracts it from "
            "Debian's prometheus package (or: apt-get install prometheus)"
        )
    return found


def run(*argv: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run([promtool(), *argv], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_are_valid() -> None:
    out = run("check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_the_rules_pass_their_unit_tests() -> None:
    out = run("test", "rules", "alerts_test.yml")
    assert "SUCCESS" in out


def test_every_alert_is_unit_tested_firing() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}


def test_the_prometheus_config_is_valid_and_loads_the_rules() -> None:
    out = run("check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out


def test_every_board_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool has no query checker: each board query becomes a recording rule it checks."""
    queries = board_queries()
    assert queries
    document = {
        "groups": [
            {
                "name": "board",
                "rules": [{"record": f"board:query{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    (tmp_path / "board.yml").write_text(yaml.safe_dump(document))
    out = run("check", "rules", "board.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(queries)} rules found" in out


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The check can fail: a rule whose query does not parse is refused."""
    (tmp_path / "bad.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]"}]}]})
    )
    done = subprocess.run(
        [promtool(), "check", "rules", "bad.yml"], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode != 0


def test_the_board_covers_throughput_lags_stalls_parked_relay_and_readiness() -> None:
    named = metrics_named()
    assert {
        "mandat_decisions_total",
        "mandat_rejections_total",
        "mandat_consumer_lag_messages",
        "mandat_relay_lag_events",
        "mandat_stalled_seconds",
        "mandat_parked_inputs",
        "mandat_parked_oldest_seconds",
        "mandat_ready",
        "mandat_chain_check_failed",
    } <= named
