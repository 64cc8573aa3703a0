"""Options declared as data give the parser what `add_argument` written out would."""

from __future__ import annotations

import argparse

import pytest

from services.tools.options import JSON, Command, Option, add_options, option_values


def _parser(*options: Option) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x")
    add_options(parser, options)
    return parser


def test_a_number_default_gives_its_type_and_a_false_default_a_switch() -> None:
    parser = _parser(Option("--events", 200_000, "how many"), Option("--rate", 2.0, "r"), JSON)
    assert parser.parse_args([]) == argparse.Namespace(events=200_000, rate=2.0, json=False)
    given = parser.parse_args(["--events", "7", "--rate", "3", "--json"])
    assert given == argparse.Namespace(events=7, rate=3.0, json=True)
    assert type(given.rate) is float
    with pytest.raises(SystemExit):
        parser.parse_args(["--events", "many"])


def test_text_none_choices_and_a_parser_of_ones_own() -> None:
    parser = _parser(
        Option("--host", "127.0.0.1", "h"),
        Option("--port", None, "p", type=int),
        Option("--tag", None, "t"),
        Option("--service", "both", "s", choices=("a", "both")),
        Option("--pair", (1, 2), "two", type=lambda text: tuple(map(int, text.split(",")))),
    )
    assert parser.parse_args([]) == argparse.Namespace(
        host="127.0.0.1", port=None, tag=None, service="both", pair=(1, 2)
    )
    given = parser.parse_args(["--port", "80", "--tag", "7", "--pair", "3,4", "--service", "a"])
    assert (given.port, given.tag, given.pair, given.service) == (80, "7", (3, 4), "a")
    with pytest.raises(SystemExit):
        parser.parse_args(["--service", "c"])


def test_the_help_is_the_one_add_argument_gives() -> None:
    written = argparse.ArgumentParser(prog="x")
    written.add_argument("--events", type=int, default=5, help="how many (default 5)")
    written.add_argument("--service", choices=("a", "b"), default="a", help="which")
    written.add_argument("--json", action="store_true", help="print the results as JSON")
    declared = _parser(
        Option("--events", 5, "how many (default 5)"),
        Option("--service", "a", "which", choices=("a", "b")),
        JSON,
    )
    assert declared.format_help() == written.format_help()


def test_a_command_runs_its_function_with_its_options() -> None:
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="command", required=True)
    Command(
        "go", help="go somewhere", description="Go.", run=lambda args: 3, options=(JSON,)
    ).register(sub)
    args = parser.parse_args(["go", "--json"])
    assert args.json is True and args.func(args) == 3
    assert "go somewhere" in parser.format_help()


def test_option_values_are_the_parsed_options_by_the_names_argparse_gives_them() -> None:
    options = (Option("--write-batch", 5, "w"), Option("--kill-at", 0.5, "k"), JSON)
    args = _parser(*options, Option("--other", 1, "o")).parse_args(["--write-batch", "9"])
    assert [option.dest for option in options] == ["write_batch", "kill_at", "json"]
    assert option_values(args, options) == {"write_batch": 9, "kill_at": 0.5, "json": False}
