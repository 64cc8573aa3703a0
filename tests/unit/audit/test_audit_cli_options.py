"""The audit's options on the `mandat` command line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.tools.cli import build_parser

pytestmark = pytest.mark.unit


def test_a_date_range_is_inclusive_of_the_until_day_and_utc() -> None:
    args = build_parser().parse_args(
        [
            "replay",
            "verify",
            "--since",
            "2017-01-01",
            "--until",
            "2017-01-31",
            "--service",
            "collection",
        ]
    )
    assert args.since == datetime(2017, 1, 1, tzinfo=UTC)
    assert args.until == datetime(2017, 2, 1, tzinfo=UTC)  # exclusive bound
    assert args.service == "collection" and not args.json


def test_date_times_keep_their_offset() -> None:
    args = build_parser().parse_args(
        [
            "replay",
            "what-if",
            "--since",
            "2017-01-01T10:00:00+02:00",
            "--until",
            "2017-01-02T00:00:00Z",
        ]
    )
    assert args.since == datetime(2017, 1, 1, 8, tzinfo=UTC)
    assert args.until == datetime(2017, 1, 2, tzinfo=UTC)


def test_a_bad_date_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "verify", "--since", "yesterday"])


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "republish", "--include-inputs", "--from-position", "10", "--topic", "t"],
        ["audit", "chain", "--json"],
        ["audit", "trail", "COT-1", "--service", "benefits"],
        ["projections", "rebuild", "--repair"],
    ],
)
def test_every_command_is_registered(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.func)


@pytest.mark.parametrize(
    "command", [["replay", "verify"], ["audit", "chain"], ["audit", "trail", "X"]]
)
def test_jobs_are_shards_at_a_time_one_by_default(command: list[str]) -> None:
    assert build_parser().parse_args(command).jobs == 1
    assert build_parser().parse_args([*command, "--jobs", "4"]).jobs == 4
    for bad in ("0", "-2", "many"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--jobs", bad])
