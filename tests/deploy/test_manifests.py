"""The deployable services (servers/, workers/) agree with the smpframe command line.

Manifests, Dockerfiles and Slurm scripts spell options, environment variables and the
port by hand. These tests read each of them through the real CLI, so a renamed option
or a new default port fails here instead of on a cluster.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from smpframe import cli
from smpframe.config import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]
SERVERS, WORKERS = ROOT / "servers", ROOT / "workers"
ENV_NAME = re.compile(r"\bSMPFRAME_[A-Z0-9_]+")
#: set by Kubernetes itself in an Indexed Job's Pods, not an smpframe option
INDEX_VAR = "JOB_COMPLETION_INDEX"
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


# ---- reading the files ------------------------------------------------------------------

def manifest(path: Path) -> list[dict[str, Any]]:
    """The documents of a multi-document YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The only document of ``kind``."""
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def only_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec["containers"]
    return container


def container_env(container: dict[str, Any], index: str = "0") -> dict[str, str]:
    """The container's environment as Kubernetes builds it for completion index ``index``.

    ``$(NAME)`` expands only to variables listed before it, as in Kubernetes.
    """
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]),
                                       str(item["value"]))
        elif "job-completion-index" in str(item.get("valueFrom", "")):
            env[item["name"]] = index
    return env


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not (pending or line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_entrypoint(path: Path) -> list[str]:
    """The last ENTRYPOINT, which must be in exec (JSON) form."""
    entrypoints = [rest for keyword, rest in dockerfile(path) if keyword == "ENTRYPOINT"]
    assert entrypoints, f"{path.name}: no ENTRYPOINT"
    return json.loads(entrypoints[-1])


def dockerfile_expose(path: Path) -> list[int]:
    return [int(port.split("/")[0]) for keyword, rest in dockerfile(path)
            if keyword == "EXPOSE" for port in rest.split()]


def dockerfile_env(path: Path) -> dict[str, str]:
    """Variables the image sets (``ENV A=1 B=2`` and the old ``ENV A 1`` form)."""
    env: dict[str, str] = {}
    for keyword, rest in dockerfile(path):
        if keyword != "ENV":
            continue
        words = shlex.split(rest)
        if "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


# ---- the services -----------------------------------------------------------------------

SCHEDULER_DOCS = manifest(SERVERS / "kubernetes.yaml")
WORKER_DOCS = manifest(WORKERS / "kubernetes.yaml")
SCHEDULER_POD = one(SCHEDULER_DOCS, "Pod")
WORKER_JOB = one(WORKER_DOCS, "Job")


def container_argv(container: dict[str, Any], image_dockerfile: Path) -> list[str]:
    """The container's command line without the leading ``smpframe``."""
    argv = container.get("command") or dockerfile_entrypoint(image_dockerfile)
    argv = [*argv, *container.get("args", [])]
    assert argv[0] == "smpframe", argv
    return argv[1:]


def scheduler_argv() -> list[str]:
    """The scheduler Pod's command line (the image's ENTRYPOINT, then the Pod's args)."""
    return container_argv(only_container(SCHEDULER_POD["spec"]), SERVERS / "Dockerfile")


def scheduler_command() -> list[str]:
    """``["scheduler", APP]`` with the APP the scheduler Pod runs."""
    argv = scheduler_argv()
    assert argv[0] == "scheduler" and not argv[1].startswith("-"), argv
    return argv[:2]


def parse(argv: list[str], image: Path,
          container: dict[str, Any] | None = None) -> argparse.Namespace:
    """``argv`` parsed with the image's ENV plus the container's env on top."""
    env = dockerfile_env(image)
    if container is not None:
        env.update(container_env(container))
    return cli.parse_args(argv, env=env)


@pytest.mark.parametrize("path", [SERVERS / "kubernetes.yaml", WORKERS / "kubernetes.yaml"],
                         ids=["scheduler", "worker"])
def test_manifest_documents_are_complete(path: Path) -> None:
    docs = manifest(path)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]


def test_service_reaches_the_scheduler_pod() -> None:
    service = one(SCHEDULER_DOCS, "Service")
    (port,) = service["spec"]["ports"]
    assert port["name"] == "smpframe"
    assert port["port"] == port["targetPort"] == DEFAULT_PORT
    (container_port,) = only_container(SCHEDULER_POD["spec"])["ports"]
    assert container_port["containerPort"] == DEFAULT_PORT
    labels = SCHEDULER_POD["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_worker_job_is_indexed() -> None:
    spec = WORKER_JOB["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= 1
    assert isinstance(spec["backoffLimit"], int)
    assert spec["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_scheduler_container_parses() -> None:
    container = only_container(SCHEDULER_POD["spec"])
    args = parse(scheduler_argv(), SERVERS / "Dockerfile", container)
    assert args.bind == f"tcp://0.0.0.0:{DEFAULT_PORT}"
    # The scheduler waits for exactly the workers the Job starts.
    assert int(args.workers) == WORKER_JOB["spec"]["completions"]


@pytest.mark.parametrize("image", ["Dockerfile", "Dockerfile.cuda"])
def test_worker_container_parses(image: str) -> None:
    container = only_container(WORKER_JOB["spec"]["template"]["spec"])
    args = parse(container_argv(container, WORKERS / image), WORKERS / image, container)
    service = one(SCHEDULER_DOCS, "Service")["metadata"]["name"]
    assert args.connect == f"tcp://{service}:{DEFAULT_PORT}"
    assert args.name == "worker-0"
    assert args.device == ("gpu" if image == "Dockerfile.cuda" else "cpu")


@pytest.mark.parametrize("path, kind", [(SERVERS / "kubernetes.yaml", "Pod"),
                                        (WORKERS / "kubernetes.yaml", "Job")],
                         ids=["scheduler", "worker"])
def test_manifest_env_is_options_only(path: Path, kind: str) -> None:
    doc = one(manifest(path), kind)
    pod_spec = doc["spec"] if kind == "Pod" else doc["spec"]["template"]["spec"]
    command = scheduler_command() if kind == "Pod" else ["worker"]
    names = {item["name"] for item in only_container(pod_spec).get("env", [])}
    assert names - {INDEX_VAR} <= cli.env_vars(command)


@pytest.mark.parametrize("path", [
    SERVERS / "kubernetes.yaml", SERVERS / "Dockerfile",
    WORKERS / "kubernetes.yaml", WORKERS / "Dockerfile", WORKERS / "Dockerfile.cuda",
], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_named_variable_is_an_option(path: Path) -> None:
    """Commented-out variables count too: they are meant to be uncommented."""
    command = scheduler_command() if path.parent == SERVERS else ["worker"]
    named = set(ENV_NAME.findall(path.read_text()))
    assert named <= cli.env_vars(command), named - cli.env_vars(command)


def test_dockerfile_scheduler() -> None:
    path = SERVERS / "Dockerfile"
    assert dockerfile_entrypoint(path) == ["smpframe", "scheduler"]
    assert dockerfile_expose(path) == [DEFAULT_PORT]
    # Run as the image is, with no manifest, the scheduler must still be reachable.
    args = cli.parse_args(scheduler_command(), env=dockerfile_env(path))
    assert args.bind == f"tcp://0.0.0.0:{DEFAULT_PORT}"


@pytest.mark.parametrize("image", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_worker(image: str) -> None:
    assert dockerfile_entrypoint(WORKERS / image) == ["smpframe", "worker"]


# ---- Slurm ------------------------------------------------------------------------------

SBATCH = [SERVERS / "slurm.sbatch", WORKERS / "slurm.sbatch"]
#: a three-node allocation, as Slurm describes it to the batch script
SLURM_ENV = {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "3", "SLURM_JOB_NODELIST": "node[1-3]", "SLURM_JOB_NUM_NODES": "3",
             "SLURM_CPUS_PER_TASK": "8", "SCHEDULER_HOST": "sched-host"}
# srun drops its own options (written --opt=value) and runs the rest; smpframe records
# its arguments, one NUL-separated file per call; scontrol names the nodes.
STUBS = r"""
srun() { while [[ $# -gt 0 && $1 == -* ]]; do shift; done; "$@"; }
scontrol() { [[ "$1 $2" == "show hostnames" ]] && printf 'node1\nnode2\nnode3\n'; }
smpframe() { printf '%s\0' "$@" > "$(mktemp "$STUB_DIR/call.XXXXXX")"; }
"""


def sbatch_calls(path: Path, tmp_path: Path) -> tuple[list[list[str]], dict[str, str]]:
    """Run the script with srun/scontrol/smpframe stubbed: the smpframe argvs, and the env.

    Letting bash expand the variables and strip ``srun ...`` checks the exact words the
    real command would get, quoting included.
    """
    (tmp_path / "stubs.sh").write_text(STUBS)
    calls = tmp_path / "calls"
    calls.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "BASH_ENV": str(tmp_path / "stubs.sh"), "STUB_DIR": str(calls), **SLURM_ENV}
    done = subprocess.run(["bash", str(path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    argvs = [call.read_text().split("\0")[:-1] for call in sorted(calls.iterdir())]
    return argvs, env


@needs_bash
@pytest.mark.parametrize("path", SBATCH, ids=lambda p: p.parent.name)
def test_sbatch_syntax(path: Path) -> None:
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@needs_bash
@pytest.mark.parametrize("path", SBATCH, ids=lambda p: p.parent.name)
def test_sbatch_command_lines_parse(path: Path, tmp_path: Path) -> None:
    argvs, env = sbatch_calls(path, tmp_path)
    # Every smpframe command in the script ran: none hides in an untested branch.
    written = re.findall(r"^[ \t]*(?:srun [^#\n]*)?smpframe (?:scheduler|worker|run)\b",
                         path.read_text(), re.M)
    assert len(argvs) == len(written) >= 1
    for argv in argvs:
        args = cli.parse_args(argv, env=env)
        if argv[0] == "run":
            assert args.launcher == "slurm"  # smpframe starts the workers as an srun step
        elif argv[0] == "scheduler":
            assert args.bind == f"tcp://0.0.0.0:{DEFAULT_PORT}"
            assert int(args.workers) == int(SLURM_ENV["SLURM_JOB_NUM_NODES"])
        else:
            host = "node1" if path.parent == SERVERS else SLURM_ENV["SCHEDULER_HOST"]
            assert args.connect == f"tcp://{host}:{DEFAULT_PORT}"


@needs_bash
@pytest.mark.parametrize("path", SBATCH, ids=lambda p: p.parent.name)
def test_sbatch_variables_are_options(path: Path, tmp_path: Path) -> None:
    argvs, _ = sbatch_calls(path, tmp_path)
    allowed = set().union(*(cli.env_vars(argv[:2] if argv[0] in ("scheduler", "run") else argv[:1])
                            for argv in argvs))
    named = set(ENV_NAME.findall(path.read_text()))
    assert named <= allowed, named - allowed
