"""RunConfig: one default per option, checked when built, the policy derived in one place."""
from __future__ import annotations

import dataclasses

import pytest

from smpframe.config import DEFAULT_PORT, RUN, SCHEDULER, WORKER, RunConfig, cli_fields
from smpframe.errors import InputError


def test_defaults_build_and_derive_the_worker_timings():
    config = RunConfig()
    assert config.worker_heartbeat_interval() == 0.5
    assert config.worker_scheduler_timeout() == 30.0
    slow = RunConfig(heartbeat_timeout=60.0)
    assert slow.worker_heartbeat_interval() == 0.5 and slow.worker_scheduler_timeout() == 180.0
    fast = RunConfig(heartbeat_timeout=1.0)
    assert fast.worker_heartbeat_interval() == pytest.approx(0.2)
    assert RunConfig(heartbeat_interval=0.1).worker_heartbeat_interval() == 0.1


def test_bind_defaults_to_loopback():
    assert RunConfig().scheduler_bind(local=False) == f"tcp://127.0.0.1:{DEFAULT_PORT}"
    assert RunConfig().scheduler_bind(local=True) == "tcp://127.0.0.1:0"
    assert RunConfig(bind="tcp://0.0.0.0:7000").scheduler_bind(local=True) == "tcp://0.0.0.0:7000"


@pytest.mark.parametrize("changes, option", [
    ({"workers": 0}, "--workers"),
    ({"pipeline_depth": -1}, "--pipeline-depth"),
    ({"seed": -1}, "--seed"),
    ({"heartbeat_timeout": 0}, "--heartbeat-timeout"),
    ({"heartbeat_timeout": float("inf")}, "--heartbeat-timeout"),
    ({"checkpoint_every": "5x", "output": "out"}, "--checkpoint-every"),
    ({"checkpoint_every": "0", "output": "out"}, "--checkpoint-every"),
    ({"checkpoint_every": "-3s", "output": "out"}, "--checkpoint-every"),
    ({"checkpoint_every": "5"}, "--checkpoint-every"),
    ({"slowdowns": [1.0]}, "--slowdowns"),
    ({"slowdowns": [0.5, 1.0]}, "--slowdowns"),
    ({"curve_allow": "keys"}, "--curve-allow"),
    ({"curve_server": "key"}, "--curve-server"),
    ({"bind": "garbage"}, "--bind"),
    ({"max_rounds": 0}, "--max-rounds"),
    ({"metrics_port": 70000}, "--metrics-port"),
    ({"metrics_host": "http://localhost"}, "--metrics-host"),
])
def test_bad_values_name_their_option(changes, option):
    with pytest.raises(InputError, match=option):
        RunConfig(**changes)


def test_checkpoint_schedules():
    assert RunConfig(checkpoint_every="5", output="o").checkpoint_schedule() == ("rounds", 5)
    assert RunConfig(checkpoint_every="2.5s", output="o").checkpoint_schedule() == ("seconds", 2.5)
    assert RunConfig().checkpoint_schedule() is None


def test_replace_checks_again():
    with pytest.raises(InputError):
        RunConfig().replace(workers=-2)
    assert RunConfig().replace(workers=3).n_workers == 3
    assert RunConfig(devices=["cpu", "cpu", "cpu"]).n_workers == 3


def test_every_option_belongs_to_a_command_and_has_help():
    for command in (RUN, SCHEDULER, WORKER):
        for f in cli_fields(command):
            assert f.metadata["help"], f.name
    options = {f.name for c in (RUN, SCHEDULER, WORKER) for f in cli_fields(c)}
    internal = {f.name for f in dataclasses.fields(RunConfig)} - options
    assert internal == {"rebalance_threshold", "rebalance_interval", "progress_interval",
                        "max_message_bytes", "worker_args"}
