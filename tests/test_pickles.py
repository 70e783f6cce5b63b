import os
import pickle
import zipfile
from pathlib import Path

import pytest

from edgekit.toolkit.errors import InvalidInputError
from edgekit.toolkit.formats import Format
from edgekit.toolkit.pickles import scan_pickle_bytes, scan_torch_pickle, torchscript_traced_inputs


class _Canary:
    """Unpickling this would run os.system: the scanner must flag it without running it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_state_dict_is_not_code_bearing(samples):
    scan = scan_torch_pickle(samples[Format.TORCH_PICKLE])
    assert not scan.is_code_bearing
    assert ("torch._utils", "_rebuild_tensor_v2") in scan.globals


def test_whole_model_is_code_bearing(whole_model_pickle):
    scan = scan_torch_pickle(whole_model_pickle)
    assert scan.is_code_bearing
    assert any(module.startswith("torch.nn.modules") for module, _ in scan.disallowed)


def test_reduce_payload_is_flagged_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Canary(marker), protocol=4)
    scan = scan_pickle_bytes(data, origin="canary")
    assert scan.is_code_bearing
    assert any(name == "system" for _, name in scan.disallowed)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_all_protocols_are_scanned(tmp_path, protocol):
    data = pickle.dumps(_Canary(tmp_path / "x"), protocol=protocol)
    assert scan_pickle_bytes(data, origin="p").is_code_bearing


def test_legacy_torch_save_is_scanned_past_the_magic_number(tmp_path):
    import torch

    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, str(path), _use_new_zipfile_serialization=False)
    scan = scan_torch_pickle(path)
    assert ("collections", "OrderedDict") in scan.globals or ("torch", "FloatStorage") in scan.globals
    assert not scan.is_code_bearing


def test_truncated_pickle_is_invalid():
    data = pickle.dumps({"a": list(range(100))}, protocol=4)
    with pytest.raises(InvalidInputError, match="malformed pickle"):
        scan_pickle_bytes(data[: len(data) // 2], origin="half")


def test_traced_inputs_are_read_from_torchscript(samples):
    traced = torchscript_traced_inputs(samples[Format.TORCHSCRIPT])
    assert [(t.shape, t.dtype) for t in traced["forward"]] == [((1, 1, 8, 8), "float32")]


def test_traced_inputs_reader_refuses_foreign_globals(tmp_path, samples):
    # Swap traced_inputs.pkl for a payload: the reader returns nothing and runs nothing.
    marker = tmp_path / "pwned"
    source = samples[Format.TORCHSCRIPT]
    tampered = tmp_path / "tampered.pt"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item.endswith("/traced_inputs.pkl"):
                data = pickle.dumps({"forward": [_Canary(marker)]}, protocol=2)
            zout.writestr(item, data)
    assert torchscript_traced_inputs(tampered) == {}
    assert not marker.exists()
