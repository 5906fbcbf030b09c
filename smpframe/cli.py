"""The ``smpframe`` command line: run an app locally, or start a scheduler/worker by hand.

Options come from two places only: the runtime's from :class:`smpframe.config.RunConfig`
fields, a program's from its ``__init__`` signature (:mod:`smpframe.params`). Every
option ``--foo-bar`` may also be set by the environment variable ``SMPFRAME_FOO_BAR``
(the flag wins). Errors a user can fix (bad files, bad options) print one line and
exit 2; a run the cluster or the program cannot finish prints one line and exits 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import typing
from typing import Any, Mapping, Sequence

from smpframe.config import ENV_PREFIX, RUN, SCHEDULER, WORKER, RunConfig, cli_fields
from smpframe.errors import ClusterError, InputError
from smpframe.params import add_program_arguments, program_from_args, scalar_kind
from smpframe.registry import BUILTIN_APPS, resolve_program

EXIT_INPUT = 2
EXIT_CLUSTER = 1
APP_HELP = (f"a built-in app ({', '.join(BUILTIN_APPS)}), module:Class, or path/to/file.py:Class "
            "(an SMPProgram subclass)")
WORKER_HELP = "Start a worker that joins a scheduler and serves its rounds."
PLOT = "plot"
PLOT_HELP = ("draw a run's progress (objective.png) and its workers' timeline (timeline.png) "
             "into its --output folder")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage is one ``--help`` away)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def env_name(flag: str) -> str:
    """``--pipeline-depth`` -> ``SMPFRAME_PIPELINE_DEPTH``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


class _Options:
    """Adds options to a parser with defaults from the environment; remembers their names."""

    def __init__(self, parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
        self.parser, self.env = parser, env
        self.env_names: set[str] = set()

    def add(self, flag: str, group: Any = None, **kwargs: Any) -> None:
        name = env_name(flag)
        self.env_names.add(name)
        if name in self.env:
            text = self.env[name]
            if kwargs.get("action") is argparse.BooleanOptionalAction:
                if text.lower() not in _TRUE | _FALSE:
                    self.parser.error(f"{name}={text!r}: expected 1/0, true/false, yes/no")
                text = text.lower() in _TRUE
            kwargs["default"] = text  # argparse converts string defaults with ``type``
        (group or self.parser).add_argument(flag, **kwargs)


def _add_config_options(options: _Options, command: str) -> None:
    """One option per RunConfig field of ``command``, typed by the field's annotation."""
    hints = typing.get_type_hints(RunConfig)
    group = options.parser.add_argument_group("runtime options")
    for f in cli_fields(command):
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        kind, _ = scalar_kind(hints[f.name])
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": f.metadata["help"]}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = f.metadata["parse"] or kind
            kwargs["metavar"] = f.name.upper()
            if f.default is not None:
                kwargs["help"] += f" (default {f.default})"
        options.add(flag, group, **kwargs)


def command_parser(command: str, app: type | None, env: Mapping[str, str]) -> _Options:
    """The parser of ``smpframe run APP``, ``smpframe scheduler APP`` or ``smpframe worker``."""
    prog = f"smpframe {command}" + (f" {app.name}" if app is not None else "")
    parser = _Parser(prog=prog, description=_first_line(app or WORKER_HELP))
    options = _Options(parser, env)
    if app is not None:
        options.add("--data", help="input file (default: the program's built-in data)")
    _add_config_options(options, command)
    if app is not None:
        add_program_arguments(parser, app, options.add)
    return options



def _first_line(obj: Any) -> str:
    doc = obj if isinstance(obj, str) else (obj.__doc__ or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _top_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smpframe", description=_first_line(__doc__))
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in ((RUN, "run a program on a local cluster (scheduler + workers)"),
                          (SCHEDULER, "start a scheduler and wait for workers")):
        p = sub.add_parser(command, help=text, description=text)
        p.add_argument("app", metavar="APP", help=APP_HELP)
        p.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                       help=f"options (smpframe {command} APP --help lists them)")
    sub.add_parser(WORKER, help=WORKER_HELP)  # parsed by its own parser (see parse_args)
    keys = sub.add_parser("keys", help="CURVE key management")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="make scheduler and worker key pairs")
    gen.add_argument("folder")
    gen.add_argument("--workers", type=int, default=1, help="worker key pairs to make")
    plot = sub.add_parser(PLOT, help=PLOT_HELP, description=PLOT_HELP)
    plot.add_argument("folder", metavar="RUN_DIR", help="a run's --output folder")
    return parser


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Parse a whole command line (``["worker", "--connect", ...]``).

    Raises SystemExit on unusable arguments (argparse's message and exit 2), and
    InputError for an unknown program.
    """
    env = os.environ if env is None else env
    argv = list(argv)
    if argv[:1] == [WORKER]:
        command, app, rest = WORKER, None, argv[1:]
    else:
        top = _top_parser().parse_args(argv)
        if top.command in ("keys", PLOT):
            return top
        command, app, rest = top.command, resolve_program(top.app), top.rest
    args = command_parser(command, app, env).parser.parse_args(rest)
    args.command, args.app_cls = command, app
    return args


def env_vars(argv: Sequence[str]) -> set[str]:
    """The ``SMPFRAME_*`` variables the command ``argv`` (``["worker"]``, ``["scheduler", APP]``) reads."""
    command = argv[0]
    app = resolve_program(argv[1]) if command in (RUN, SCHEDULER) else None
    return command_parser(command, app, {}).env_names


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of a parsed command line (checked: a bad value raises InputError)."""
    names = {f.name for f in cli_fields(args.command)}
    config = RunConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
                          if f.name in names})
    if args.command in (SCHEDULER, WORKER):
        config.check_security(args.command)
    if getattr(args, "data", None) and "://" not in args.data and not os.path.exists(args.data):
        raise InputError("no such file or folder", path=args.data)
    return config


def cmd_run(args: argparse.Namespace, config: RunConfig) -> int:
    from smpframe.launch import launchers
    from smpframe.launch.local import run_local

    program = program_from_args(args.app_cls, args)
    program.check_params()
    if config.launcher == launchers.ENV and launchers.rank_and_size()[0] != 0:
        return launchers.serve_env_worker(config)  # rank 0 schedules; this rank works
    if config.path is not None:
        from smpframe.launch.local import write_outputs
        from smpframe.launch.path import run_path
        result = run_path(program, args.data, config)
        if config.output:
            write_outputs(config.output, result)
    else:
        result = run_local(program, data=args.data, config=config)
    _print_summary(result.summary)
    return 0


def cmd_scheduler(args: argparse.Namespace, config: RunConfig) -> int:
    from smpframe.launch.local import write_outputs
    from smpframe.scheduler.outputs import check_output_folder
    from smpframe.scheduler.server import SchedulerServer

    program = program_from_args(args.app_cls, args)
    program.check_params()
    if config.output:
        check_output_folder(config.output)
    server = SchedulerServer(program, args.data, config)
    metrics = "" if server.exporter is None else f"; metrics at {server.exporter.url}"
    print(f"scheduler listening on {server.address}; waiting for {config.n_workers} worker(s)"
          f"{metrics}", file=sys.stderr, flush=True)
    result = server.run()
    if config.output:
        write_outputs(config.output, result)
    _print_summary(result.summary)
    return 0


def cmd_worker(args: argparse.Namespace, config: RunConfig) -> int:
    from smpframe.worker.loop import Worker

    return Worker(config).run()


def cmd_keys(args: argparse.Namespace) -> int:
    from smpframe.security import generate_keys

    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be >= 1")
    names = ["scheduler"] + [f"worker{i}" for i in range(args.workers)]
    for path in generate_keys(args.folder, names):
        print(path)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from smpframe.plot import plot_run

    for path in plot_run(args.folder):
        print(path)
    return 0


def _print_summary(summary: dict) -> None:
    """The scalar figures as one JSON line (lists such as histories stay in result.json)."""
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))},
                     default=str))


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``scancel``, a pod's stop) raised in the main thread, so that the
    run unwinds as on Ctrl-C: workers stopped, sockets and their folders removed."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smpframe`` command."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.command == "keys":
            return cmd_keys(args)
        if args.command == PLOT:
            return cmd_plot(args)
        config = config_from_args(args)
        logging.basicConfig(level=getattr(logging, str(config.log_level).upper(), logging.WARNING),
                            format=f"%(asctime)s %(name)s[{os.getpid()}] %(levelname)s %(message)s")
        commands = {RUN: cmd_run, SCHEDULER: cmd_scheduler, WORKER: cmd_worker}
        if args.command != WORKER:  # (a worker's own exit paths stay as they are)
            signal.signal(signal.SIGTERM, _terminate)
        return commands[args.command](args, config)
    except InputError as exc:
        print(f"smpframe: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ClusterError as exc:
        print(f"smpframe: run failed: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"smpframe: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:  # stdout closed by its reader (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def exit_now(code: int) -> typing.NoReturn:
    """End the process with ``code`` once its output is flushed, skipping the interpreter's
    teardown (a tenth of a second or more with numba loaded, paid by every worker and then
    by the scheduler waiting for them). Every file is written and closed by then, and
    every socket with its queue flushed (the ZeroMQ contexts are terminated)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)


def entry() -> typing.NoReturn:
    """The ``smpframe`` command."""
    exit_now(main())


if __name__ == "__main__":
    entry()
