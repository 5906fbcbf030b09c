"""Program parameters read back by signature (scikit-learn's convention) and as CLI options."""
from __future__ import annotations

import argparse
from typing import Literal

import pytest

from smpframe import SMPProgram
from smpframe.params import add_program_arguments, parameter_help, program_from_args, program_options
from smpframe.registry import BUILTIN_APPS, resolve_program


class Toy(SMPProgram):
    """A toy.

    Parameters
    ----------
    rate : float
        How fast.
    mode : {"a", "b"}
        Which way,
        over two lines.
    flag : bool
        Whether to.
    """

    name = "toy"
    cli_flags = {"rate": "--speed"}

    def __init__(self, rate: float = 0.5, mode: Literal["a", "b"] = "a", flag: bool = True,
                 count: int | None = None, table: dict | None = None) -> None:
        self.rate = rate
        self.mode = mode
        self.flag = flag
        self.count = count
        self.table = table


def parse(cls, argv):
    parser = argparse.ArgumentParser()
    add_program_arguments(parser, cls)
    return program_from_args(cls, parser.parse_args(argv))


def test_get_params_reads_the_signature():
    assert Toy(rate=2.0).get_params() == {"rate": 2.0, "mode": "a", "flag": True, "count": None,
                                          "table": None}
    assert Toy().params == Toy().get_params()


def test_a_parameter_that_is_not_stored_is_named():
    class Forgetful(SMPProgram):
        def __init__(self, k: int = 1) -> None:
            pass

    with pytest.raises(TypeError, match="k"):
        Forgetful().get_params()


def test_varargs_are_refused():
    class Loose(SMPProgram):
        def __init__(self, **kwargs) -> None:
            pass

    with pytest.raises(TypeError, match="by name"):
        Loose().get_params()


def test_cli_options_come_from_the_signature():
    options = {o.name: o for o in program_options(Toy)}
    assert set(options) == {"rate", "mode", "flag", "count"}  # a dict has no CLI form
    assert options["rate"].flag == "--speed" and options["mode"].choices == ("a", "b")
    assert options["count"].kind is int and options["mode"].help == "Which way, over two lines."
    toy = parse(Toy, ["--speed", "3", "--mode", "b", "--no-flag", "--count", "7"])
    assert toy.get_params() == {"rate": 3.0, "mode": "b", "flag": False, "count": 7, "table": None}
    assert parse(Toy, []).get_params() == Toy().get_params()
    with pytest.raises(SystemExit):
        parse(Toy, ["--mode", "c"])


def test_help_is_inherited_from_base_classes():
    from smpframe.apps.lasso import Lasso
    assert "L1 strength" in parameter_help(Lasso)["lam"]


@pytest.mark.parametrize("app", list(BUILTIN_APPS))
def test_every_builtin_app_round_trips_its_defaults_through_the_cli(app):
    cls = resolve_program(app)
    assert parse(cls, []).get_params() == cls().get_params()
    for option in program_options(cls):
        assert option.help, f"{app} --{option.name} has no help text"
