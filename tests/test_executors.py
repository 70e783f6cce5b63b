"""Row isolation and executors: the persistent worker pool, a converter that aborts the process in a
pipeline run (its row is ``crashed``, the others pass), the serial / process / ray executors giving the same
rows and artifacts, a local Ray that ignores RAY_ADDRESS and leaves nothing running, and a multi-node Ray
cluster whose benchmarks never overlap on one node."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from xml.etree import ElementTree as ET

import pool_tasks
import pytest
from conftest import run_edgekit, strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.pipeline.executors import ExecutorKind, ExecutorOptions
from edgekit.pipeline.gate import parse_config
from edgekit.pipeline.report import PipelineReport, Row, RowStatus, junit_xml, markdown
from edgekit.toolkit.contract.errors import ExitCode, UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.safety.isolation import Limits
from edgekit.toolkit.safety.pool import Task, WorkerPool

TESTS = Path(__file__).resolve().parent
HAS_RAY = shutil.which("ray") is not None or __import__("importlib").util.find_spec("ray") is not None
runner = CliRunner()


def children() -> list[tuple[int, str]]:
    """This process's child processes (pid, state), zombies included; not the warm CLI server (``warm_cli``)."""
    from warm_cli import WARM

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and int(entry.name) != WARM.pid:
                found.append((int(entry.name), fields[0]))
    return found


def processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (what a run's workers inherit from it)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- the pool --------------------------------------------------------------------------------------------------


def test_pool_outcomes_and_a_crash_replaces_the_worker(tmp_path):
    tasks = [Task("a1", pool_tasks.pid, (1,), "a"), Task("b1", pool_tasks.pid, (2,), "b"),
             Task("refuse", pool_tasks.refuse, ("m.onnx",), "a"), Task("div", pool_tasks.divide, (0,), "b"),
             Task("abort", pool_tasks.abort_after_temp, (str(tmp_path),), "a"),
             Task("a2", pool_tasks.pid, (3,), "a"), Task("b2", pool_tasks.pid, (4,), "b")]
    with WorkerPool(jobs=2, limits=Limits(timeout=60)) as pool:
        finished = list(pool.run(tasks))
    outcomes = {o.task.key: o for o in finished}
    assert set(outcomes) == {t.key for t in tasks}
    assert outcomes["refuse"].error is not None and outcomes["refuse"].error.exit_code == ExitCode.INVALID_INPUT
    assert "refused on purpose" in outcomes["refuse"].error.message
    assert outcomes["div"].internal is not None and outcomes["div"].internal.name == "ZeroDivisionError"
    crash = outcomes["abort"].crash
    assert crash is not None and crash.kind == "signal" and crash.signal == "SIGABRT"
    assert crash.message == "the worker crashed with SIGABRT while writing half-written.tmp"
    assert not (tmp_path / "half-written.tmp").exists(), "the dead worker's announced temp file is removed"
    after = finished[finished.index(outcomes["abort"]) + 1:]
    assert all(o.worker != outcomes["abort"].worker for o in after), "nothing runs on a dead worker"
    assert children() == [], "no worker (or zombie) outlives close()"


def test_pool_keeps_each_family_on_its_warm_worker():
    tasks = [Task(f"{family}{i}", pool_tasks.pid_after, (i, 0.5), family) for i in range(3) for family in "ab"]
    with WorkerPool(jobs=2) as pool:
        outcomes = {o.task.key: o for o in pool.run(tasks)}
        assert pool.started == 2
    for family in "ab":
        assert len({outcomes[f"{family}{i}"].worker for i in range(3)}) == 1, family
    assert outcomes["a0"].worker != outcomes["b0"].worker


def test_pool_timeout_and_memory_limit_kill_the_worker_group():
    tasks = [Task("slow", pool_tasks.sleep, (30,)), Task("child", pool_tasks.spawn_child_then_sleep, (30,), "c"),
             Task("after", pool_tasks.pid, ("still serving",))]
    start = time.monotonic()
    with WorkerPool(jobs=2, limits=Limits(timeout=1.5)) as pool:
        outcomes = {o.task.key: o for o in pool.run(tasks)}
    assert time.monotonic() - start < 20
    assert outcomes["slow"].crash.kind == "timeout"
    assert outcomes["slow"].crash.message == "timed out after 1.5 s while sleeping 30 s"
    assert outcomes["child"].crash.kind == "timeout"
    assert outcomes["after"].value[0] == "still serving"
    time.sleep(0.2)
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_sleep_30(p)], \
        "the worker's own subprocess died with its process group"
    with WorkerPool(jobs=1, limits=Limits(timeout=60, memory_mb=200)) as pool:
        (outcome,) = list(pool.run([Task("grow", pool_tasks.grow, (600,))]))
    assert outcome.crash.kind == "memory" and re.search(r"used \d+ MiB, over the \S+ of 200 MiB", outcome.crash.message)
    assert children() == []


def _is_sleep_30(proc: Path) -> bool:
    try:
        return (proc / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"30"]
    except OSError:
        return False


# -- options, config, reports ----------------------------------------------------------------------------------


def test_executor_options_and_config(tmp_path):
    assert ExecutorOptions.parse(None).kind is ExecutorKind.PROCESS
    with pytest.raises(UsageError, match="executor.*'threads'.*: not one of serial, process, ray"):
        ExecutorOptions.parse("threads")
    with pytest.raises(UsageError, match="ray.address.* needs .*executor.*ray"):
        ExecutorOptions.parse("process", ray_address="ray://head:10001")
    with pytest.raises(UsageError, match="jobs.*0.* must be from 1 to 1024"):
        ExecutorOptions.parse("process", jobs=0)
    config = parse_config({"pipeline": {"executor": "ray", "jobs": 3, "ray_address": "10.0.0.1:6379"}},
                          tmp_path / "edgekit.toml")
    assert (config.executor, config.jobs, config.ray_address) == ("ray", 3, "10.0.0.1:6379")
    with pytest.raises(UsageError, match="executor must be one of serial, process, ray"):
        parse_config({"pipeline": {"executor": "dask"}}, tmp_path / "edgekit.toml")
    with pytest.raises(UsageError, match="jobs must be an integer from 1 to 1024"):
        parse_config({"pipeline": {"jobs": 0}}, tmp_path / "edgekit.toml")


def test_a_crashed_row_fails_the_report_junit_and_the_gate(tmp_path):
    from edgekit.pipeline.gate import CheckConfig, Thresholds, judge

    rows = (Row("m", "onnx", "none", RowStatus.PASSED),
            Row("m", "tflite", "none", RowStatus.CRASHED, reason="the worker crashed with SIGSEGV while converting"))
    report = PipelineReport((), rows, (), {}, {}, 1.0, "2026-12-02T00:00:00+00:00", "0")
    assert not report.passed and report.counts()["crashed"] == 1
    again = PipelineReport.from_dict(strict_json(json.dumps(report.to_dict())))
    assert again.rows[1].status is RowStatus.CRASHED
    assert "💥 crashed" in markdown(report) and "1 crashed" in markdown(report)
    root = ET.fromstring(junit_xml(PipelineReport(
        (__import__("edgekit.pipeline.report", fromlist=["Source"]).Source("m", "m.onnx", "onnx"),), rows, (), {}, {},
        1.0, "x", "0")))
    (error,) = root.iter("error")
    assert error.get("type") == "crashed" and "SIGSEGV" in error.get("message") and root.get("errors") == "1"
    verdict = judge(report, CheckConfig(path=tmp_path / "edgekit.toml", thresholds=Thresholds(require_parity=False)))
    assert verdict.violations == ("m → tflite none: crashed: the worker crashed with SIGSEGV while converting",)


def test_ray_executor_without_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name.partition(".")[0] == "ray" else real(name, *a, **k))
    result = runner.invoke(app, ["pipeline", "--executor", "ray", "--out", str(tmp_path / "out"), "--no-bench"])
    assert result.exit_code == ExitCode.BACKEND_FAILURE, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("edgekit: error")]
    assert lines == ["edgekit: error: --executor ray needs ray, which is not installed (fix: pip install "
                     "'edgekit[ray]')"], result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists(), "refused before any work"


# -- a converter that aborts the process -------------------------------------------------------------------------


CRASH_SCRIPT = textwrap.dedent("""
    import sys
    import aborting_converter
    aborting_converter.register()
    from edgekit.cli import main
    sys.argv = ["edgekit", *sys.argv[1:]]
    main()
""")


@pytest.mark.slow
def test_an_aborting_converter_crashes_only_its_row(samples, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    torch_model = shutil.copy(samples[Format.TORCH_EXPORTED], models / "net.pt2")
    bomb = shutil.copy(samples[Format.ONNX], models / "bomb.onnx")
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    marker = f"EDGEKIT_TEST_RUN={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(scratch), marker.split("=")[0]: marker.split("=")[1]}
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, "pipeline", str(torch_model), str(bomb),
                             "--to", "onnx,executorch", "--quantize", "none,dynamic", "--out", str(out),
                             "--min-seconds", "0.05"], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    crashed = [r for r in report.rows if r.status is RowStatus.CRASHED]
    assert [(r.source, r.format, r.precision) for r in crashed] == [("bomb", "executorch", "none")]
    assert crashed[0].reason.startswith("the worker crashed with SIGABRT while converting bomb.onnx with test: "
                                        "aborts the process"), crashed[0].reason
    others = [r for r in report.rows if r.status is not RowStatus.CRASHED]
    # bomb.onnx's dynamic cell takes the ONNX importer's route (the aborting edge declares no quantization)
    assert sorted((r.source, r.format, r.precision) for r in others) == [
        ("bomb", "executorch", "dynamic"), ("bomb", "onnx", "dynamic"),
        ("net", "executorch", "dynamic"), ("net", "executorch", "none"),
        ("net", "onnx", "dynamic"), ("net", "onnx", "none")]
    assert all(r.status is RowStatus.PASSED for r in others), [r.reason for r in others]
    assert all(r.latency is not None for r in others)
    root = ET.fromstring((out / "junit.xml").read_text())
    errors = list(root.iter("error"))
    assert [e.get("type") for e in errors] == ["crashed"] and "SIGABRT" in errors[0].get("message")
    assert "crashed" in result.stdout and "Traceback" not in result.stderr
    # nothing half-written, no temp file, no process left behind
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == sorted(
        name for r in others for name in (Path(r.artifact).name, Path(r.artifact).name + ".edgekit.json"))
    # left alone: the node's bench-slot lock (empty, reused by every run) and LiteRT's own .ses session note
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("edgekit-bench-") and p.name != ".ses"] == []
    assert processes_with(marker) == []


# -- the same matrix on every executor -------------------------------------------------------------------------


def named(samples, directory: Path, *formats: Format) -> list[Path]:
    """The sample models under names of their own (the pipeline names artifacts after their source)."""
    directory.mkdir(exist_ok=True)
    return [Path(shutil.copy(samples[fmt], directory / f"{fmt.value.replace('-', '_')}{samples[fmt].suffix}"))
            for fmt in formats]


TIMING = {"convert_seconds", "latency", "speedup", "bench_node", "bench_window", "artifact", "notes"}


def _matrix(samples, tmp_path: Path, executor: str, *extra: str, env: dict | None = None):
    out = tmp_path / executor
    models = named(samples, tmp_path / "models", Format.TORCH_EXPORTED, Format.KERAS)
    result = run_edgekit("pipeline", *models, "--to",
                         "onnx,tflite,torchscript", "--quantize", "none,dynamic", "--no-bench", "--executor",
                         executor, *extra, "--out", out, env_extra=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    rows = [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in report.rows]
    digests = {Path(r.artifact).name: hashlib.sha256(Path(r.artifact).read_bytes()).hexdigest() for r in report.rows}
    return report, rows, digests


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'edgekit[ray]')")
def test_serial_process_and_ray_give_the_same_rows_and_artifacts(samples, tmp_path):
    results = {name: _matrix(samples, tmp_path, name) for name in ("serial", "process", "ray")}
    serial_report, serial_rows, serial_digests = results["serial"]
    assert len(serial_rows) == 9 and all(r["status"] == "passed" for r in serial_rows)
    for name in ("process", "ray"):
        report, rows, digests = results[name]
        assert rows == serial_rows, name
        assert digests == serial_digests, f"{name}: every artifact is byte-identical to serial's"
        assert report.options["executor"] == name
    assert results["process"][0].options["executor_run"].startswith("process: 1 crash-isolated worker(s)")
    assert results["ray"][0].options["executor_run"].startswith("ray: a local Ray started for this run")


def _ray_processes() -> list[int]:
    names = (b"raylet", b"gcs_server", b"ray::", b"default_worker.py", b"ray/dashboard")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if any(name in cmdline for name in names):
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'edgekit[ray]')")
def test_ray_ignores_a_bogus_ray_address_and_leaves_no_process(samples, tmp_path):
    before = set(_ray_processes())
    out = tmp_path / "out"
    result = run_edgekit("pipeline", samples[Format.ONNX], "--to", "onnx", "--quantize", "dynamic", "--executor",
                         "ray", "--jobs", "1", "--min-seconds", "0.05", "--out", out,
                         env_extra={"RAY_ADDRESS": "203.0.113.1:6379"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    assert report.options["executor_run"] == "ray: a local Ray started for this run (1 CPU(s)), 1 node(s)"
    (row,) = report.rows
    assert row.status is RowStatus.PASSED and row.bench_node and "node " in row.bench_node
    assert not list(out.glob(".edgekit-ray-run-*")), "the run's token file is removed"
    deadline = time.monotonic() + 15
    while set(_ray_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert set(_ray_processes()) - before == set(), "no Ray process outlives the run"


CLUSTER_SCRIPT = textwrap.dedent("""
    import json, subprocess, sys
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        result = subprocess.run([sys.executable, "-m", "edgekit", "pipeline", *sys.argv[1:],
                                 "--ray-address", cluster.address], capture_output=True, text=True)
        print(json.dumps({"rc": result.returncode, "stderr": result.stderr[-3000:]}))
    finally:
        cluster.shutdown()
""")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'edgekit[ray]')")
def test_a_multi_node_ray_cluster_never_overlaps_benchmarks_on_a_node(samples, tmp_path):
    out = tmp_path / "out"
    models = named(samples, tmp_path / "models", Format.ONNX, Format.TORCH_EXPORTED)
    result = subprocess.run([sys.executable, "-c", CLUSTER_SCRIPT, *map(str, models), "--to", "onnx,torchscript",
                             "--quantize", "none,fp16,dynamic", "--executor", "ray", "--min-seconds", "0.3",
                             "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["rc"] == 0, run["stderr"]
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    assert report.options["executor_run"].endswith("2 node(s)")
    windows: dict[str, list[tuple[float, float]]] = {}
    for row in report.rows:
        assert row.status is RowStatus.PASSED, f"{row.label}: {row.reason}"
        assert row.bench_node and row.bench_window, row.label
        windows.setdefault(row.bench_node, []).append(row.bench_window)
    assert len(report.rows) >= 6 and len(windows) == 2, "both nodes timed rows"
    assert "Warning: latency was measured on 2 machines" in (out / "report.md").read_text()
    for node, spans in windows.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start, f"two benchmarks overlapped on {node}"


@pytest.mark.slow
@pytest.mark.parametrize(("source", "to"), [(Format.KERAS, "onnx"), (Format.TORCH_EXPORTED, "torchscript"),
                                            (Format.TORCH_EXPORTED, "executorch")])
def test_a_conversion_gives_the_same_bytes_in_two_fresh_processes(samples, tmp_path, source, to):
    """What makes executors comparable: tf2onnx's generated names and TorchScript's archive folder used to
    vary from run to run (process-wide counters, object-identity order, the staging file's name)."""
    digests = []
    for attempt in range(2):
        out = tmp_path / f"{attempt}" / f"model{Format(to).spec.suffix}"
        out.parent.mkdir()
        result = run_edgekit("convert", samples[source], "--to", to, "-o", out, "--no-validate")
        assert result.returncode == 0, result.stderr[-2000:]
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_canonical_onnx_names_and_dims_do_not_depend_on_counters(tmp_path):
    """Two graphs that differ only in tf2onnx's counters (and which of two equal constants survived) are the
    same bytes once canonical; names without a counter are kept."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.converters._onnx import canonical_dim_params, canonical_generated_names

    def graph(const_name: str, counter: int, dim: str) -> Path:
        one = numpy_helper.from_array(np.array([1], dtype=np.int64), const_name)
        nodes = [helper.make_node("Shape", ["x"], [f"Shape__{counter}:0"], name=f"Shape__{counter}"),
                 helper.make_node("Slice", [f"Shape__{counter}:0", const_name, const_name], ["layer/slice:0"],
                                  name="layer/slice")]
        model = helper.make_model(helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 3])],
            [helper.make_tensor_value_info("layer/slice:0", TensorProto.INT64, [1])], [one]))
        path = tmp_path / f"{const_name}-{counter}.onnx"
        onnx.save(model, str(path))
        return path

    first, second = graph("const_axes__19", 14, "unk__71"), graph("const_starts__15", 9, "unk__36")
    assert canonical_generated_names(first) and canonical_generated_names(second)
    assert first.read_bytes() == second.read_bytes()
    model = onnx.load(str(first))
    assert [n.name for n in model.graph.node] == ["Shape__1", "layer/slice"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "unk__1"
    assert [t.name for t in model.graph.initializer] == ["const__2"]
    onnx.checker.check_model(model)
    third = graph("const_axes__2", 4, "unk__99")
    assert canonical_dim_params(third) == 1
    assert onnx.load(str(third)).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "unk__1"


@pytest.mark.slow
def test_check_runs_on_the_executor_its_config_names(samples, tmp_path):
    models = named(samples, tmp_path / "models", Format.ONNX)
    config = tmp_path / "edgekit.toml"
    config.write_text(f'[pipeline]\nmodels = ["{models[0].relative_to(tmp_path)}"]\nto = ["onnx"]\n'
                      'quantize = ["dynamic"]\nexecutor = "serial"\n\n[thresholds]\nrequire_parity = true\n')
    result = run_edgekit("check", "--config", config)
    assert result.returncode == 0, result.stderr[-2000:]
    report = PipelineReport.from_dict(strict_json((tmp_path / "edgekit-check" / "report.json").read_text()))
    assert report.options["executor"] == "serial" and report.options["executor_run"] == "serial: in this process"
    result = run_edgekit("check", "--config", config, "--executor", "process", "--jobs", "2", "--force")
    assert result.returncode == 0, result.stderr[-2000:]
    report = PipelineReport.from_dict(strict_json((tmp_path / "edgekit-check" / "report.json").read_text()))
    assert report.options["executor_run"].startswith("process: 2 crash-isolated worker(s)")
    bad = run_edgekit("check", "--config", config, "--executor", "threads", "--force")
    assert bad.returncode == 2 and "--executor threads: not one of serial, process, ray" in bad.stderr


NODE_CHECK_SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from edgekit import __version__
    from edgekit.pipeline.ray_executor import _ray_cell
    from edgekit.toolkit.safety.isolation import read_reply
    import pool_tasks
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        token = sys.argv[1]
        context = {"version": __version__, "token": token, "secret": "s3cret", "timeout": None, "trust": False}
        results = {"blind": read_reply(_ray_cell(pool_tasks.pid, (1,), {**context, "token": token + ".gone"})),
                   "other": read_reply(_ray_cell(pool_tasks.pid, (1,), {**context, "version": "0.0.1"})),
                   "fine": read_reply(_ray_cell(pool_tasks.pid, (1,), context))}
        print(json.dumps({k: [v[0], list(v[1]) if v[0] == "error" else None] for k, v in results.items()}))
    finally:
        ray.shutdown()
""")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'edgekit[ray]')")
def test_a_ray_node_that_cannot_serve_the_run_fails_its_rows_by_name(tmp_path):
    token = tmp_path / ".edgekit-ray-run-test"
    token.write_text("s3cret")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", NODE_CHECK_SCRIPT, str(token)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    replies = json.loads(result.stdout.strip().splitlines()[-1])
    assert replies["fine"] == ["ok", None]
    kind, (name, code, message, hint) = replies["blind"]
    assert (kind, name, code) == ("error", "InvalidInputError", int(ExitCode.INVALID_INPUT))
    assert "cannot see --out" in message and "same path" in hint
    kind, (name, _, message, hint) = replies["other"]
    assert kind == "error" and "runs edgekit" in message and "the driver 0.0.1" in message
