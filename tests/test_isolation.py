"""Crash isolation and no data loss: the worker crashes, times out, runs out of memory, is interrupted or
killed at random points — the parent reports it with the documented exit code, leaves no orphan and
no partial file, and an output it was replacing keeps its previous bytes."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import start_edgekit

from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.fsutil import TEMP_PREFIX


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    members.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return members


# `python -m edgekit` with Python's own Ctrl-C handler installed first. A shell starts a background job
# with SIGINT ignored, an ignored signal stays ignored across exec, and Python then installs no
# KeyboardInterrupt handler: this gives the command the disposition an interactive user's command has, so
# the Ctrl-C test does not depend on how pytest was launched. (Not preexec_fn: unsafe with threads.)
AS_INTERACTIVE = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv[0] = 'edgekit'; runpy.run_module('edgekit', run_name='__main__', alter_sys=True)")


def start(*args: str | os.PathLike[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", AS_INTERACTIVE, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env_extra or {})})


def wait_for_worker(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = children(proc.pid)
        if workers:
            return workers[0]
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before its worker started: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError("no worker appeared")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX))


# -- the isolation primitive, in a fresh interpreter (forking pytest, which has frameworks loaded, is not
#    what the CLI does) ---------------------------------------------------------------------------------------

PROBE = textwrap.dedent("""
    import os, signal, sys
    from edgekit.toolkit.safety.isolation import run_isolated, phase, WorkerCrashedError
    from edgekit.toolkit.contract.errors import UsageError, EdgekitError
    case = sys.argv[1]
    def work():
        phase("doing " + case)
        if case == "value":
            return {"answer": 42, "path": __import__("pathlib").Path("/x")}
        if case == "usage":
            raise UsageError("bad option", hint="use a good one")
        if case == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if case == "abort":
            os.abort()
        if case == "bug":
            raise KeyError("oops")
        if case == "evil-reply":  # what a compromised worker would write: a pickle whose dotted name is os.system
            from edgekit.toolkit.safety import isolation
            m, n, a = b"edgekit.toolkit.safety.isolation", b"os.system", b"touch EVILED"
            gadget = (b"\\x80\\x04\\x8c" + bytes([len(m)]) + m + b"\\x94\\x8c" + bytes([len(n)]) + n
                      + b"\\x94\\x93\\x8c" + bytes([len(a)]) + a + b"\\x94\\x85R.")
            isolation.write_frame(isolation._channel, gadget)
            os._exit(0)
    try:
        print("RESULT", run_isolated(work, phase_name="starting"))
    except EdgekitError as exc:
        print("ERROR", type(exc).__name__, int(exc.exit_code), exc.one_line())
    except Exception as exc:
        print("OTHER", type(exc).__name__, exc)
""")


@pytest.mark.parametrize(("case", "expected"), [
    ("value", "RESULT {'answer': 42, 'path': PosixPath('/x')}"),
    ("usage", "ERROR UsageError 2 bad option (fix: use a good one)"),
    ("segv", "ERROR WorkerCrashedError 5 the worker crashed with SIGSEGV while doing segv"),
    ("abort", "ERROR WorkerCrashedError 5 the worker crashed with SIGABRT while doing abort"),
    ("bug", "OTHER WorkerInternalError KeyError: 'oops'"),
    ("evil-reply", "ERROR WorkerCrashedError 5 unreadable reply from the worker"),
])
def test_run_isolated_reports_results_errors_and_crashes(case, expected, tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, case], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.stdout.strip().startswith(expected), (out.stdout, out.stderr[-2000:])
    assert not (tmp_path / "EVILED").exists()  # the parent ran nothing the reply named


ORPHAN_PROBE = textwrap.dedent("""
    import ctypes, os, subprocess
    from edgekit.toolkit.safety import isolation
    scan, parents = isolation._group_scan, set()
    def spy(pgid, *, with_parent=False):  # whose children the group's members are while it settles
        found = scan(pgid, with_parent=with_parent)
        parents.update(parent for _, parent in found if with_parent)
        return found
    isolation._group_scan = spy
    def work():  # a converter's subprocess in the worker's group, alive when the worker's group is killed
        return subprocess.Popen(["sleep", "60"]).pid
    sleeper = isolation.run_isolated(work, phase_name="sleeping")
    def subreaper():
        flag = ctypes.c_int(-1)
        ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
        return flag.value
    after_run = subreaper()
    import pool_tasks
    from edgekit.toolkit.safety.pool import Task, WorkerPool
    with WorkerPool(1) as pool:
        [outcome] = pool.run([Task("t", pool_tasks.pid, (1,))])
        during_pool = subreaper()
    ours = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    print("adopted", os.getpid() in parents, "sleeper", os.path.exists(f"/proc/{sleeper}"), "children", ours,
          "subreaper", after_run, during_pool, subreaper())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_the_worker_groups_orphans_are_reaped_here_not_left_to_init(tmp_path):
    """The worker's own children outlive it by a moment when its group is killed; the forking process adopts
    them and reaps them itself, so the command neither leaves a zombie nor waits for init (which, in some
    containers, reaps every 2 s: every command paid that). Afterwards the process is no subreaper again (a
    library caller's later orphans are not its to reap)."""
    here = Path(__file__).parent
    out = subprocess.run([sys.executable, "-c", ORPHAN_PROBE], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": f"{here.parent}{os.pathsep}{here}",
                                            "EDGEKIT_ISOLATION": "on"})
    assert out.stdout.strip() == "adopted True sleeper False children [] subreaper 0 1 0", \
        (out.stdout, out.stderr[-2000:])


def test_in_process_when_frameworks_are_loaded(monkeypatch):
    """pytest has torch loaded: forking would inherit its thread pools, so work runs in-process."""
    import torch  # noqa: F401

    from edgekit.toolkit.safety.isolation import run_isolated, should_fork

    monkeypatch.delenv("EDGEKIT_ISOLATION", raising=False)
    assert not should_fork()
    assert run_isolated(lambda: os.getpid(), phase_name="x") == os.getpid()


# -- through the CLI ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_a_crashing_worker_exits_5_naming_signal_and_phase(samples, tmp_path, sig):
    out = tmp_path / "model.pte"
    proc = start("convert", samples[Format.TORCH_EXPORTED], "--to", "executorch", "-o", out)
    worker = wait_for_worker(proc)
    time.sleep(0.5)
    os.kill(worker, sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 5, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("edgekit:")]
    assert len(lines) == 1 and f"crashed with {sig.name} while converting" in lines[0], stderr[-1500:]
    assert "Traceback" not in stderr
    assert not out.exists() and leftovers(tmp_path) == []
    assert not alive(worker) and group_members(worker) == []


@pytest.mark.slow
def test_a_crash_while_localizing_exits_5_and_writes_no_report(samples, tmp_path):
    """localize runs every instrument in the worker: an ExecuTorch debug buffer that overflows aborts it, and the
    CLI reports that in one line instead of dying with it."""
    report = tmp_path / "localize.json"
    proc = start("localize", samples[Format.TORCH_EXPORTED], samples[Format.ONNX], "--json-out", report)
    worker = wait_for_worker(proc)
    time.sleep(0.5)
    os.kill(worker, signal.SIGABRT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 5, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("edgekit:")]
    assert len(lines) == 1 and "crashed with SIGABRT while localiz" in lines[0], stderr[-1500:]
    assert "Traceback" not in stderr and not report.exists() and leftovers(tmp_path) == []
    assert not alive(worker)


@pytest.mark.slow
def test_timeout_exits_6_and_leaves_no_orphan(samples, tmp_path):
    proc = start("--timeout", "1", "convert", samples[Format.TORCH_EXPORTED], "--to", "executorch",
                 "-o", tmp_path / "model.pte")
    worker = wait_for_worker(proc)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 6, stderr
    assert "timed out after 1 s while converting" in stderr and "--timeout" in stderr
    assert not alive(worker) and group_members(worker) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_memory_limit_exits_6(samples, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgekit", "--memory-limit", "64", "inspect",
                             samples[Format.TORCH_EXPORTED]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 6, result.stderr[-1500:]
    assert "over the --memory-limit of 64 MiB" in result.stderr


@pytest.mark.slow
def test_ctrl_c_kills_the_worker_and_cleans_up(samples, tmp_path):
    proc = start("convert", samples[Format.TORCH_EXPORTED], "--to", "executorch", "-o", tmp_path / "model.pte")
    worker = wait_for_worker(proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr
    assert not alive(worker) and group_members(worker) == []
    assert list(tmp_path.iterdir()) == []


CONVERT_FP16 = ("--to", "onnx", "--quantize", "fp16", "--force", "--no-validate")


def kill_trial(source: Path, out: Path, previous: bytes, complete: bytes, rng: random.Random, window: float) -> str:
    """Run a conversion that replaces ``out`` and SIGKILL its worker after a random delay. The output path
    must then hold the previous bytes or the complete new artifact (the worker had renamed it into place
    before the kill) — never anything else. The command is forked warm (``start_edgekit``): what is killed is its
    worker, which the command forks as a cold one does."""
    proc = start_edgekit("convert", source, "-o", out, *CONVERT_FP16)
    worker = wait_for_worker(proc)
    time.sleep(rng.uniform(0, window))
    killed = alive(worker)
    if killed:
        os.kill(worker, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not alive(worker) and group_members(worker) == []
    assert leftovers(out.parent) == [], "temp files left behind"
    data = out.read_bytes() if out.exists() else None
    if killed and proc.returncode != 0:
        assert proc.returncode == 5
    if data == previous:
        assert killed, "the run was not killed, yet the output was not replaced"
        return "previous"
    assert data == complete, "a partial or foreign file at the output path"
    return "new"


def run_kill_trials(source: Path, directory: Path, trials: int, seed: int) -> dict[str, int]:
    """Kill delays are drawn uniformly over one uninterrupted run's time from its worker's start (shared with
    benchmarks/kill_trials.py)."""
    out = directory / "model.fp16.onnx"
    reference = directory / "reference.fp16.onnx"
    start_edgekit("--version").communicate(timeout=600)  # the warm server's start is not part of the window
    finished = start_edgekit("convert", source, "-o", reference, *CONVERT_FP16)
    wait_for_worker(finished)
    began = time.monotonic()  # the window: from the worker's start (where trials start their delay) to the end
    _, stderr = finished.communicate(timeout=120)
    assert finished.returncode == 0, stderr[-1500:]
    window = time.monotonic() - began
    complete = reference.read_bytes()
    previous = b"previous artifact bytes " * 100
    rng = random.Random(seed)
    outcomes = {"previous": 0, "new": 0}
    for _ in range(trials):
        out.write_bytes(previous)
        outcomes[kill_trial(source, out, previous, complete, rng, window)] += 1
    return outcomes


@pytest.mark.slow
def test_kill_the_worker_at_random_points_never_leaves_a_partial_file(samples, tmp_path):
    outcomes = run_kill_trials(samples[Format.ONNX], tmp_path, trials=50, seed=7)
    print(f"kill trials: {outcomes}")
    assert sum(outcomes.values()) == 50
    assert outcomes["previous"] >= 10  # most kills land mid-run


# -- no orphan, whatever ends the CLI -------------------------------------------------------------------------

SLEEPY_FACTORY = textwrap.dedent("""
    import os, subprocess, time
    from pathlib import Path

    def make():
        child = subprocess.Popen(["sleep", "300"])  # a converter-like subprocess in the worker's group
        Path("worker.pids").write_text(f"{os.getpid()} {child.pid}")
        time.sleep(300)
""")


def _sleepy_import(tmp_path: Path, *wrapper: str) -> tuple[subprocess.Popen, list[int]]:
    """`edgekit import sleepy:make`: the worker sleeps in the factory with a `sleep` child of its own."""
    (tmp_path / "sleepy.py").write_text(SLEEPY_FACTORY)
    proc = subprocess.Popen([*wrapper, sys.executable, "-m", "edgekit", "import", "sleepy:make", "-o",
                             tmp_path / "model.pt2", "--input-shape", "x=1,4"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = tmp_path / "worker.pids"
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, [int(p) for p in pids.read_text().split()]


def _gone(pids: list[int], within: float = 10.0) -> bool:
    """Every pid has ended, and the group of the first (the worker's) is empty (zombies reaped by init)."""
    deadline = time.monotonic() + within
    while (any(alive(pid) for pid in pids) or group_members(pids[0])) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids) and group_members(pids[0]) == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_end_the_worker_group_like_ctrl_c(tmp_path, sig, code):
    proc, (worker, child) = _sleepy_import(tmp_path)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-1500:]
    assert f"edgekit: terminated by {sig.name} (outputs in progress were removed)" in stderr
    assert "Traceback" not in stderr
    assert _gone([worker, child])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["sleepy.py", "worker.pids"]


def test_a_parent_killed_outright_takes_its_worker_group_with_it(tmp_path):
    """SIGKILL cannot be handled: the worker's own guard (parent-death signal, lifeline watchdog) ends it and
    its subprocess."""
    proc, (worker, child) = _sleepy_import(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert _gone([worker, child]), "the worker outlived its parent"


def test_timeout_s_term_leaves_no_process_behind(tmp_path):
    """What CI cancellation and `timeout` do: SIGTERM to the command, nothing left afterwards."""
    proc, (worker, child) = _sleepy_import(tmp_path, "timeout", "-s", "TERM", "3")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 124  # timeout's own code: the command ended on its SIGTERM
    assert "terminated by SIGTERM" in stderr
    assert _gone([worker, child])


@pytest.mark.parametrize("limit", ["timeout", "memory"])
def test_a_worker_whose_parent_stopped_answering_ends_itself_at_its_limits(limit):
    """The parent enforces --timeout and --memory-limit; if it cannot (stopped, starved), the worker's watchdog
    does, once the limit has been passed for longer than the parent would take."""
    probe = textwrap.dedent("""
        import os, signal, sys, time
        from edgekit.toolkit.safety import isolation
        isolation.GRACE_SECONDS = 0.5
        def work():
            block = bytearray(256 << 20) if sys.argv[1] == "memory" else b""
            for index in range(0, len(block), 4096):
                block[index] = 1
            time.sleep(300)
        limits = isolation.Limits(1.0, None) if sys.argv[1] == "timeout" else isolation.Limits(None, 64)
        pid = os.fork()
        if pid == 0:  # stands in for a worker the CLI forked, with the CLI's limits, whose CLI never looks again
            r, w = os.pipe()
            isolation.worker_process(w, work, guard=isolation.Guard(os.getppid(), r, limits))
        _, status = os.waitpid(pid, 0)
        print(os.WIFSIGNALED(status) and os.WTERMSIG(status))
    """)
    # the work sleeps 300 s: only the watchdog ends it inside the subprocess timeout
    out = subprocess.run([sys.executable, "-c", probe, limit], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(int(signal.SIGKILL)), out


def _sleeping(pid: int) -> list[int]:
    """The `sleep` children of ``pid`` (not its sentinel shell)."""
    found = []
    for child in children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep"):
                found.append(child)
    return found


def test_a_pool_worker_ends_with_its_parent_killed_outright(tmp_path):
    probe = textwrap.dedent("""
        import sys
        import pool_tasks
        from edgekit.toolkit.safety.pool import Task, WorkerPool
        pool = WorkerPool(1)
        for outcome in pool.run([Task("k", pool_tasks.spawn_child_then_sleep, (300,))]):
            pass
    """)
    proc = subprocess.Popen([sys.executable, "-c", probe], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (children(proc.pid) and _sleeping(children(proc.pid)[0])):
        time.sleep(0.05)
    worker = children(proc.pid)[0]
    child = _sleeping(worker)[0]
    proc.kill()
    proc.wait(timeout=60)
    assert _gone([worker, child]), "a pool worker outlived its parent"


SLOW_PARSE = textwrap.dedent("""
    # Loaded at interpreter start (sitecustomize): compat's .tflite reader takes 300 s in the worker.
    import os, time
    from pathlib import Path
    import edgekit.targets.compat.tflite as tflite

    def slow(data, origin="model"):
        Path(os.environ["SLOW_PARSE_PIDS"]).write_text(str(os.getpid()))
        time.sleep(300)

    tflite.parse_flatbuffer = slow
""")


def test_timeout_s_term_on_a_slow_compat_leaves_no_process_behind(tmp_path):
    """The red team's case: `timeout -s TERM 20 edgekit compat FILE` on a 24 KB file of shared tables, which once
    parsed for minutes; then the same with a parse made to sleep, so the SIGTERM lands while the worker works."""
    from test_compat import crafted_tflite

    model = tmp_path / "shared.tflite"
    model.write_bytes(crafted_tflite(subgraphs=2000, tensors=2000, operators=2000))
    before = set(children(os.getpid()))
    done = subprocess.run(["timeout", "-s", "TERM", "20", sys.executable, "-m", "edgekit", "compat", model],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr[-1500:]  # refused in seconds now, well inside the 20 s
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_PARSE)
    pids = tmp_path / "worker.pid"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]),
           "SLOW_PARSE_PIDS": str(pids)}
    proc = subprocess.Popen(["timeout", "-s", "TERM", "5", sys.executable, "-m", "edgekit", "compat", model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 124 and "terminated by SIGTERM" in stderr, stderr[-1500:]
    assert pids.exists(), "the worker never reached the parse"
    assert _gone([int(pids.read_text())])
    assert set(children(os.getpid())) <= before
