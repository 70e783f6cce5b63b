"""``--executor ray``: each cell of the matrix is one Ray task (no automatic retries).

Without ``--ray-address`` a local Ray is started for this run (``address="local"``: whatever ``RAY_ADDRESS``
points at is never attached to silently) and shut down at the end, so no Ray process outlives the run.
With ``--ray-address`` the run joins that cluster and only disconnects at the end.

Files: every node reads the sources and writes the artifacts at the driver's paths, so ``--out`` and the
models must be on a filesystem each node mounts at the same path (the usual NFS/EFS setup of a Ray
cluster; on one machine it is simply true). Each task first checks that it sees this run's token file in
``--out`` (else its row says the node cannot see ``--out``) and that it runs the driver's edgekit version;
the sha256 of each artifact a task wrote is checked by the driver on arrival. A row's latency comes from the
node that ran it, which the row names (``bench_node``); benchmarks on one node take turns (``nodes.bench_slot``).

A task's reply travels as bytes in the same data-only encoding as a forked worker's (``toolkit.safety.replies``,
no pickle), so nothing edgekit reads from a node can make the driver run code. Ray's own transport is another
matter: Ray moves task arguments and results between its processes with pickle, so joining a cluster
(``--ray-address``) trusts every node of it at the Ray level (Ray's security model); edgekit adds no way in.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.pipeline.executors import Executor, ExecutorKind, ExecutorOptions, OnStart
from edgekit.toolkit.contract.errors import EdgekitError, UsageError, option
from edgekit.toolkit.safety.isolation import WorkerInternalError, read_reply, rebuild_error
from edgekit.toolkit.safety.policy.trust import trusted
from edgekit.toolkit.safety.pool import Crashed, Outcome, Task

TOKEN_PREFIX = ".edgekit-ray-run-"


class RayExecutor(Executor):
    kind = ExecutorKind.RAY

    def __init__(self, options: ExecutorOptions) -> None:  # ExecutorOptions has checked that Ray is installed
        self.options = options
        self.limits = options.limits()
        self._ray: Any = None
        self._token: Path | None = None
        self._secret = secrets.token_hex(16)
        self.description = "ray"

    def prepare(self, out: Path) -> None:
        import ray

        from edgekit.toolkit.sysinfo import usable_cpu_count

        self._token = Path(out) / f"{TOKEN_PREFIX}{self._secret[:12]}"
        self._token.write_text(self._secret, encoding="utf-8")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.options.ray_address is None:
            cpus = self.options.jobs or usable_cpu_count()
            ray.init(address="local", num_cpus=cpus, **kwargs)
            where = f"a local Ray started for this run ({cpus} CPU(s))"
        else:
            try:
                ray.init(address=self.options.ray_address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"{option('ray_address', self.options.ray_address)}: cannot connect: "
                                 f"{str(exc).splitlines()[0][:200]}",
                                 hint="give the head's address (ray status prints it), or drop --ray-address "
                                      "for a local Ray") from None
            where = f"the Ray cluster at {self.options.ray_address}"
        self._ray = ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.description = f"ray: {where}, {len(nodes)} node(s)"

    def run(self, tasks: Iterable[Task], on_start: OnStart | None = None) -> Iterator[Outcome]:
        ray = self._ray
        assert ray is not None and self._token is not None, "prepare() first"
        remote = ray.remote(_ray_cell).options(num_cpus=1, max_retries=0)
        context = {"version": __version__, "token": str(self._token), "secret": self._secret,
                   "timeout": self.limits.timeout, "trust": trusted()}
        pending: dict[Any, Task] = {}
        for task in tasks:
            if on_start is not None:
                on_start(task)
            pending[remote.remote(task.call, task.args, context)] = task
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    task = pending.pop(ref)
                    yield self._outcome(task, ref)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise

    def _outcome(self, task: Task, ref: Any) -> Outcome:
        ray = self._ray
        try:
            data = ray.get(ref)
        except ray.exceptions.OutOfMemoryError as exc:
            return Outcome(task, crash=Crashed(f"Ray's memory monitor killed the worker: {_first(exc)}", "memory",
                                               task.phase))
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.TaskCancelledError) as exc:
            timeout = f" or passed the --timeout of {self.limits.timeout:g} s" if self.limits.timeout else ""
            return Outcome(task, crash=Crashed(
                f"the Ray worker died while {task.phase} (a native crash{timeout}; Ray does not report the signal: "
                f"see the node's python-core-worker log): {type(exc).__name__}", "signal", task.phase))
        except ray.exceptions.RayError as exc:
            return Outcome(task, crash=Crashed(f"Ray failed the task: {type(exc).__name__}: {_first(exc)}", "exit",
                                               task.phase))
        try:
            if not isinstance(data, bytes):
                raise EdgekitError(f"the Ray task returned a {type(data).__name__}, not a reply")
            kind, value, digests = read_reply(data)
        except (EdgekitError, TypeError, ValueError) as exc:  # a reply the decoder refuses: not to be trusted
            message = exc.message if isinstance(exc, EdgekitError) else f"a malformed reply ({exc})"
            return Outcome(task, crash=Crashed(message, "exit", task.phase))
        if not isinstance(digests, dict):
            return Outcome(task, crash=Crashed("a malformed reply (its digests are not a mapping)", "exit",
                                               task.phase))
        if kind == "error":
            name, code, text, hint = value
            return Outcome(task, error=rebuild_error(name, int(code), str(text), hint))
        if kind == "internal":
            name, line, trace = value
            return Outcome(task, internal=WorkerInternalError(name, line, trace))
        from edgekit.toolkit.fsutil import sha256_of

        for path, digest in digests.items():  # what the node wrote is what arrived here
            if not Path(path).is_file() or sha256_of(Path(path)) != digest:
                return Outcome(task, crash=Crashed(
                    f"{path}: the artifact the Ray node wrote (sha256 {digest[:12]}…) is not what arrived in --out",
                    "exit", task.phase))
        return Outcome(task, value=value)

    def close(self) -> None:
        if self._ray is not None:
            with contextlib.suppress(Exception):
                self._ray.shutdown()  # a local Ray: its processes end; a cluster: we disconnect
            self._ray = None
        if self._token is not None:
            self._token.unlink(missing_ok=True)
            self._token = None


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _ray_cell(call: Any, args: tuple[Any, ...], context: dict[str, Any]) -> bytes:
    """Inside a Ray worker: check the node can serve this run, run the cell, reply as bytes."""
    import faulthandler

    import ray

    from edgekit.toolkit.contract.errors import EdgekitError, InvalidInputError, first_line
    from edgekit.toolkit.nodes import NODE_ENV
    from edgekit.toolkit.safety.policy import trusting
    from edgekit.toolkit.safety.replies import encode

    os.environ[NODE_ENV] = ray.get_runtime_context().get_node_id()
    timeout = context.get("timeout")
    try:
        if __version__ != context["version"]:
            raise InvalidInputError(f"this Ray node runs edgekit {__version__}, the driver {context['version']}",
                                    hint="give the cluster a runtime environment with the driver's edgekit")
        token = Path(context["token"])
        try:
            seen = token.read_text(encoding="utf-8")
        except OSError:
            seen = None
        if seen != context["secret"]:
            import socket

            raise InvalidInputError(f"the Ray node {socket.gethostname()} cannot see --out ({token.parent})",
                                    hint="put --out and the models on a filesystem every node mounts at the same path")
        if timeout:  # native code cannot be interrupted: the watchdog ends the worker, Ray reports it dead
            faulthandler.dump_traceback_later(timeout, exit=True)
        try:
            with trusting(bool(context.get("trust"))):
                value = call(*args)
        finally:
            if timeout:
                faulthandler.cancel_dump_traceback_later()
        return encode(("ok", value, _digests(value)))
    except EdgekitError as exc:
        reply: tuple[Any, ...] = ("error", (type(exc).__name__, int(exc.exit_code), exc.message, exc.hint), {})
    except Exception as exc:
        import traceback

        reply = ("internal", (type(exc).__name__, first_line(exc), traceback.format_exc()), {})
    return encode(reply)


def _digests(value: Any) -> dict[str, str]:
    """The sha256 of each artifact the cell wrote (a row's), checked again where it lands."""
    from edgekit.toolkit.fsutil import sha256_of

    path = getattr(value, "artifact", None)
    if isinstance(path, str) and Path(path).is_file():
        return {path: sha256_of(Path(path))}
    return {}
