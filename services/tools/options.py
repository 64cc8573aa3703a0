"""Command-line options declared as data: one row per option, added by one function.

A command's options then read as a table (flag, default, help) instead of a column of
`add_argument` calls, and the options several commands share (`--json`) are one row.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One option. Its type is its default's (`int`, `float`); a `False` default makes a
    switch (`--json`); `type` is for a parser of one's own, `choices` for a closed set."""

    flag: str
    default: Any
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.default is False:
            parser.add_argument(self.flag, action="store_true", help=self.help)
            return
        parser.add_argument(
            self.flag, default=self.default, choices=self.choices, help=self.help, **self._typed()
        )

    @property
    def dest(self) -> str:
        """The attribute argparse stores the option's value under (`--write-batch`:
        `write_batch`)."""
        return self.flag.lstrip("-").replace("-", "_")

    def _typed(self) -> dict[str, Any]:
        """The `type` argparse converts the option with: none (the text as given) but for a
        parser of one's own or a number's."""
        if self.type is not None:
            return {"type": self.type}
        if type(self.default) in (int, float):
            return {"type": type(self.default)}
        return {}


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Add `options` to `parser`, in order (the order `--help` lists them in)."""
    for option in options:
        option.add_to(parser)


def option_values(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """What `args` holds for `options`, by attribute name: the keyword arguments of a
    function whose parameters are named after the options (a benchmark's `measure`)."""
    return {option.dest: getattr(args, option.dest) for option in options}


JSON = Option("--json", False, "print the results as JSON")


@dataclass(frozen=True)
class Command:
    """A subcommand declared as data: its name, help, description, options and what it runs.
    A module that adds one command declares it and exposes `register = COMMAND.register`."""

    name: str
    help: str
    description: str
    run: Callable[[argparse.Namespace], int]
    options: tuple[Option, ...]

    def register(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the command to `sub`."""
        parser = sub.add_parser(self.name, help=self.help, description=self.description)
        add_options(parser, self.options)
        parser.set_defaults(func=self.run)
