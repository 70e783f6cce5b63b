import os
import zipfile
from pathlib import Path

import pytest

from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.formats import Format, sniff


@pytest.mark.parametrize("fmt", [f for f in Format if f is not Format.TORCH_MODULE], ids=str)
def test_each_sample_is_sniffed_as_its_format(samples, fmt):
    sniffed = sniff(samples[fmt])
    assert sniffed.format is fmt
    assert sniffed.extension_warning is None


def test_sniffing_ignores_the_extension_and_reports_disagreement(samples, tmp_path):
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(samples[Format.TFLITE].read_bytes())
    sniffed = sniff(disguised)
    assert sniffed.format is Format.TFLITE
    assert "suggests onnx" in sniffed.extension_warning and "content is tflite" in sniffed.extension_warning


def test_state_dict_and_whole_model_are_both_torch_pickles(samples, whole_model_pickle):
    assert sniff(samples[Format.TORCH_PICKLE]).kind == "zip-pickle"
    assert sniff(whole_model_pickle).format is Format.TORCH_PICKLE


def _expect_invalid(path: Path, *fragments: str) -> str:
    with pytest.raises(InvalidInputError) as excinfo:
        sniff(path)
    message = excinfo.value.one_line()
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_path(tmp_path):
    _expect_invalid(tmp_path / "nope.onnx", "no such file")


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.tflite"
    empty.touch()
    _expect_invalid(empty, "empty")


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".pte", ".pt2", ".keras", ".bin"])
def test_random_bytes_are_refused(tmp_path, suffix):
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(os.urandom(4096))
    _expect_invalid(junk, str(junk))


def test_directory_without_saved_model_pb(tmp_path):
    (tmp_path / "variables").mkdir()
    _expect_invalid(tmp_path, "saved_model.pb")


@pytest.mark.parametrize(
    "fmt",
    [Format.TORCH_EXPORTED, Format.TORCHSCRIPT, Format.TORCH_PICKLE, Format.KERAS, Format.ONNX, Format.EXECUTORCH],
    ids=str,
)
def test_files_truncated_to_half_fail_sniffing(samples, tmp_path, fmt):
    source = samples[fmt]
    truncated = tmp_path / source.name
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    _expect_invalid(truncated, str(truncated))


def test_zip_that_is_no_model(tmp_path):
    path = tmp_path / "archive.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    _expect_invalid(path, "neither a Keras")


def test_onnx_walker_requires_graph_and_ir_version(tmp_path):
    # A valid protobuf with only producer_name (field 2) is not an ONNX model.
    path = tmp_path / "partial.onnx"
    path.write_bytes(b"\x12\x07pytorch")
    _expect_invalid(path, "not a valid onnx")
