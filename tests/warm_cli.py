"""A warm, forked ``edgekit`` for tests: ``python -m edgekit ARGS`` at the cost of a fork.

A cold ``python -m edgekit`` spends 3–10 s importing torch, TensorFlow and ExecuTorch before it does anything;
a suite that runs the CLI a few hundred times pays that again and again. Here one server per test process
imports edgekit and the frameworks once (and runs nothing with them, so a fork inherits no thread pool), and
each command runs in a fresh process forked from it.

What a command sees is what a cold process sees where the tests look: its own pid and process group, argv,
the caller's environment and working directory (also ``sys.path[0]``, as ``python -m`` sets it), stdin from
/dev/null, fds 1 and 2 captured, its own atexit handlers and non-daemon threads run at exit, and the real exit status
(a signal is a negative returncode, as ``subprocess`` reports it). With ``EDGEKIT_ISOLATION`` unset the command
forks its crash-isolation workers and pools as the installed CLI does (it is set to ``on``: the frameworks are
imported here, never used, so a fork inherits no thread pool).

What it cannot show: import-time behaviour (startup time, which modules get loaded, what a framework prints
while importing, environment variables read at import), and a worker's resident memory as a cold one has it
(a fork's counts the server's imported frameworks, about 1.4 GB, from its first moment). Tests of those run
cold (``run_edgekit(cold=True)``), and so does any command whose environment differs from the server's beyond
``RUN_TIME_ENV``.

Protocol (one Unix-socket connection per command): the client sends one JSON line (args, cwd, env, the two
capture files); the server's handler forks the command, answers ``{"pid": …}``, waits, answers
``{"returncode": …}``. A client that goes away (timeout, crash) gets its command's process group killed.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# What the commands' workers would import (module-level imports of edgekit's converters and runtimes included).
PRELOAD = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "onnxscript", "tf2onnx", "ai_edge_litert.interpreter",
           "executorch.exir", "executorch.runtime", "litert_torch", "ai_edge_quantizer")
EDGEKIT_SKIP = ("edgekit.__main__", "edgekit.pipeline.ray_executor")  # the CLI itself; ray only where asked
_PR_SET_PDEATHSIG = 1
ISOLATION_ENV = "EDGEKIT_ISOLATION"  # edgekit.toolkit.safety.isolation's switch
# Environment variables read only when a command runs (never while importing): these may differ per command.
RUN_TIME_ENV = ("EDGEKIT_", "PYTEST_CURRENT_TEST")  # not COLUMNS: the console reads it at import
_SET_BY_IMPORTS: dict[str, str] = {}  # environment variables the server's imports set or changed


# -- the server --------------------------------------------------------------------------------------------


def _preload() -> None:
    import importlib
    import pkgutil

    import edgekit

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for info in pkgutil.walk_packages(edgekit.__path__, "edgekit."):
        if not info.name.startswith(EDGEKIT_SKIP):
            with contextlib.suppress(ImportError):
                importlib.import_module(info.name)


def serve(sock_path: str, ready_fd: int) -> None:
    with contextlib.suppress(OSError):  # the kernel ends the server with the test process that started it
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    log = os.open(os.path.join(os.path.dirname(sock_path), "server.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    started_with = dict(os.environ)
    _preload()
    _SET_BY_IMPORTS.update({key: value for key, value in os.environ.items() if started_with.get(key) != value})
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    os.write(ready_fd, json.dumps({"env": started_with, "set_by_imports": _SET_BY_IMPORTS}).encode() + b"\n")
    os.close(ready_fd)
    while True:
        readable, _, _ = select.select([listener, 0], [], [])
        if 0 in readable and not os.read(0, 1):  # the lifeline: EOF when the test process is gone
            os._exit(0)
        if listener in readable:
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                try:
                    _handle(conn)
                finally:
                    os._exit(0)
            conn.close()


def _handle(conn: socket.socket) -> None:
    request = json.loads(conn.makefile("rb").readline())
    pid = os.fork()
    if pid == 0:
        conn.close()
        _command(request)  # never returns
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    exited = os.pidfd_open(pid)  # readable once the command has exited
    readable, _, _ = select.select([conn, exited], [], [])
    if exited not in readable and not conn.recv(1):  # the client is gone: so is its command
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps({"returncode": code}).encode() + b"\n")


def _command(request: dict) -> None:
    """Become ``python -m edgekit ARGS`` in the request's directory and environment; exit with its status."""
    code = 1
    try:
        os.setpgid(0, 0)
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                                (2, request["stderr"], os.O_WRONLY)):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**_SET_BY_IMPORTS, **request["env"]})  # as if the imports had run in this process
        # The installed CLI imports no framework, so it forks its workers; this process has them imported (unused),
        # which would keep the work in-process: isolation is forced on, as the installed CLI has it.
        os.environ.setdefault(ISOLATION_ENV, "on")
        sys.path[0] = os.getcwd()
        sys.argv = ["edgekit", *request["args"]]
        atexit._clear()  # the server's imports' exit handlers (0.1 s of framework clean-up a fork need not do)
        import runpy

        try:
            runpy.run_module("edgekit", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = _exit_status(exc.code)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]  # what interpreter exit does
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def _exit_status(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


# -- the client ---------------------------------------------------------------------------------------------


class WarmCli:
    """One server for this process, started on first use, ended with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: subprocess.Popen | None = None
        self._dir: str | None = None
        self._env: dict[str, str] = {}
        self._set_by_imports: dict[str, str] = {}
        self.pinned_env: dict[str, str] = {}  # over this process's environment when the server starts
        self.commands = 0
        self.cold_because: collections.Counter[str] = collections.Counter()  # variable → commands it sent cold
        self.seconds: collections.Counter[str] = collections.Counter()  # command → seconds its runs took here

    def _start(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="edgekit-warm-cli-")
        read_fd, write_fd = os.pipe()
        self._server = subprocess.Popen(
            [sys.executable, __file__, os.path.join(self._dir, "sock"), str(write_fd)],
            stdin=subprocess.PIPE, pass_fds=(write_fd,), cwd=self._dir, env={**os.environ, **self.pinned_env})
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            line = ready.readline()
        if not line:
            raise RuntimeError(f"the warm edgekit server did not start: see {self._dir}/server.log")
        ready = json.loads(line)
        self._env, self._set_by_imports = ready["env"], ready["set_by_imports"]
        atexit.register(self.close)

    def close(self) -> None:
        if self._server is not None:
            self._server.stdin.close()  # the lifeline
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)  # the socket, the server's log, capture files
            self._dir = None

    def accepts(self, env: dict[str, str]) -> bool:
        """Whether a command with ``env`` can run warm: it differs from the server's environment only in
        ``RUN_TIME_ENV`` (anything else could have been read while importing). Starts the server."""
        with self._lock:
            if self._server is None or self._server.poll() is not None:
                self._start()
        for key in env.keys() | self._env.keys():
            value = env.get(key)
            if value == self._env.get(key) or key.startswith(RUN_TIME_ENV):
                continue
            if key in self._set_by_imports and value in (None, self._set_by_imports[key]):
                continue  # set by the same imports here, or not yet
            self.cold_because[key] += 1
            return False
        return True

    @property
    def pid(self) -> int | None:
        """The server's pid (a child of this process), if it runs."""
        return self._server.pid if self._server is not None else None

    def start(self, args: list[str], *, cwd: str, env: dict[str, str]) -> WarmProcess:
        """The command, started: a ``subprocess.Popen(stdout=PIPE, stderr=PIPE, text=True)`` look-alike."""
        if not self.accepts(env):
            raise ValueError("this environment differs from the warm server's: run the command cold")
        self.commands += 1
        scratch = tempfile.mkdtemp(prefix="cmd-", dir=self._dir)
        out, err = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
        Path(out).touch()
        Path(err).touch()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(os.path.join(self._dir, "sock"))
            conn.sendall(json.dumps({"args": args, "cwd": cwd, "env": env, "stdout": out, "stderr": err}).encode()
                         + b"\n")
            replies = conn.makefile("rb")
            pid = json.loads(replies.readline())["pid"]
        except BaseException:
            conn.close()
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        command = next((arg for arg in args if not arg.startswith("-")), "--")
        return WarmProcess(["edgekit", *args], pid, conn, replies, scratch, self._dir,
                           on_exit=functools.partial(self._took, command, time.monotonic()))

    def _took(self, command: str, began: float) -> None:
        self.seconds[command] += time.monotonic() - began

    def run(self, args: list[str], *, cwd: str, env: dict[str, str], timeout: float | None
            ) -> subprocess.CompletedProcess:
        proc = self.start(args, cwd=cwd, env=env)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout, stdout, stderr) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


class WarmProcess:
    """A command forked by the warm server, seen as ``subprocess.Popen`` shows a child: ``pid`` (its own process
    group's leader), ``poll``, ``wait``, ``communicate`` (stdout and stderr as text), ``send_signal``, ``kill``."""

    def __init__(self, args: list[str], pid: int, conn: socket.socket, replies, scratch: str, server_dir: str,
                 on_exit=None) -> None:
        self.args, self.pid, self.returncode = args, pid, None
        self._conn, self._replies, self._scratch, self._server_dir = conn, replies, scratch, server_dir
        self._on_exit = on_exit

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._conn], [], [], 0)[0]:
            self.wait()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                line = self._replies.readline()
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            if not line:
                raise RuntimeError(f"the warm edgekit server lost the command {self.args}: see "
                                   f"{self._server_dir}/server.log")
            self.returncode = json.loads(line)["returncode"]
            self._conn.close()
            if self._on_exit is not None:
                self._on_exit()
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            exc.output, exc.stderr = self._read("stdout"), self._read("stderr")
            raise
        stdout, stderr = self._read("stdout"), self._read("stderr")
        shutil.rmtree(self._scratch, ignore_errors=True)
        return stdout, stderr

    def send_signal(self, number: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, number)

    def kill(self) -> None:
        """The command's whole process group (its workers too), as a client that gives up does."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def _read(self, name: str) -> str:
        return _read(os.path.join(self._scratch, name))


WARM = WarmCli()


def _read(path: str) -> str:
    """What ``subprocess.run(text=True)`` would have returned: the locale's encoding, universal newlines."""
    import locale

    text = Path(path).read_bytes().decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
