"""Every option of every command, given a bad value, fails when parsed: one line, exit 2.

The walk covers each option the parsers have (runtime options and every built-in app's
parameters); a new option without a bad value here fails the completeness test.
"""
from __future__ import annotations

import argparse

import pytest

from smpframe.cli import command_parser, config_from_args, parse_args
from smpframe.errors import InputError
from smpframe.params import program_from_args
from smpframe.registry import BUILTIN_APPS, resolve_program

COMMANDS = [("run", app) for app in BUILTIN_APPS] + [("scheduler", "lasso"), ("worker", None)]
#: bad values for options that are not plain numbers
BAD_TEXT = {
    "--checkpoint-every": ["5x", "0", "-2s"], "--bind": ["garbage"], "--connect": ["garbage"],
    "--devices": ["tpu:0", "gpu:x", ","], "--device": ["tpu", "cpu:x"], "--slowdowns": ["abc,1", "0.5,1"],
    "--max-memory": ["lots", "-1G"], "--log-level": ["LOUD"], "--launcher": ["mars"],
    "--read-on": ["everyone"], "--metrics-port": ["0", "65536", "x"],
    "--metrics-host": ["tcp://127.0.0.1", "two words", ""],
}
#: options whose every value is acceptable text (names and paths; missing files are
#: reported when read, with their name)
FREE_TEXT = {"--data", "--output", "--resume", "--name", "--curve-secret", "--curve-allow",
             "--curve-server", "--labels", "--test", "--vocab", "--init", "--scheduler-host",
             "--key-dir", "--ray-address"}
NUMBERS = {int: ["-7", "x", "1.5"], float: ["nan", "-1", "inf", "x"]}


def options(command, app):
    parser = command_parser(command, resolve_program(app) if app else None, {}).parser
    for action in parser._actions:
        if not action.option_strings or action.option_strings[0] in ("-h", "--help"):
            continue
        yield action.option_strings[0], action


def bad_values(flag, action):
    if isinstance(action, argparse.BooleanOptionalAction):
        return []
    if action.choices is not None:
        return ["no-such-choice"]
    if flag in BAD_TEXT:
        return BAD_TEXT[flag]
    if action.type in NUMBERS:  # every number option is a finite count, size or rate >= 0
        return NUMBERS[action.type]
    return None


CASES = [(command, app, flag, value) for command, app in COMMANDS
         for flag, action in options(command, app) for value in (bad_values(flag, action) or [])]


def test_every_option_has_bad_values_or_is_free_text():
    for command, app in COMMANDS:
        for flag, action in options(command, app):
            assert bad_values(flag, action) is not None or flag in FREE_TEXT, (command, app, flag)


@pytest.mark.parametrize("command, app, flag, value", CASES)
def test_a_bad_value_fails_when_parsed(command, app, flag, value):
    argv = [command] + ([app] if app else []) + [f"{flag}={value}"]
    with pytest.raises((SystemExit, InputError)) as err:
        args = parse_args(argv, env={})
        config_from_args(args)
        if args.app_cls is not None:
            program_from_args(args.app_cls, args).check_params()
    if err.type is SystemExit:
        assert err.value.code == 2
