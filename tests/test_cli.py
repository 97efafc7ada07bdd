"""The ``minigptv2`` command's parser: what ``--help`` tells a user."""

import argparse

from minigptv2.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "minigptv2"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child, subparser in action.choices.items():
                yield from _parsers(subparser, f"{name} {child}")


def test_help_shows_every_default():
    checked = 0
    for name, parser in _parsers(build_parser()):
        text = " ".join(parser.format_help().split())  # argparse wraps lines anywhere
        for action in parser._actions:
            default = action.default
            if default is None or isinstance(default, bool) or default == argparse.SUPPRESS:
                continue  # nothing to show: no value, or an on/off flag
            assert f"(default: {default}" in text, f"{name} {action.option_strings}"
            checked += 1
    assert checked > 20  # generate's, serve's, data shapes' ...
