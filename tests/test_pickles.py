import copyreg
import io
import os
import pickle
import pickletools
import random
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from edgekit.toolkit.contract.errors import ExitCode, InvalidInputError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.safety.pickles import (
    COMPUTED_GLOBAL,
    is_allowed_global,
    scan_pickle_bytes,
    scan_torch_pickle,
    torchscript_traced_inputs,
)


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


# -- crafted pickles ------------------------------------------------------------------------------------------
# Built opcode by opcode. Each makes the unpickler import os.system, while the two strings seen last (what the scan
# used to take STACK_GLOBAL's operands from) name an allowed global: only replaying the stack gets them right.

def _su(text: str) -> bytes:  # SHORT_BINUNICODE (protocol 4)
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _bu(text: str) -> bytes:  # BINUNICODE (protocol 1)
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _bu8(text: str) -> bytes:  # BINUNICODE8 (protocol 4)
    raw = text.encode()
    return b"\x8d" + struct.pack("<Q", len(raw)) + raw


def _uni(text: str) -> bytes:  # UNICODE (protocol 0 text)
    return b"V" + text.encode("raw-unicode-escape") + b"\n"


def _sbs(text: str) -> bytes:  # SHORT_BINSTRING (a Python 2 str; protocol 1)
    return b"U" + bytes([len(text)]) + text.encode("ascii")


def _framed(body: bytes) -> bytes:  # protocol 5 with a FRAME, as pickle.dumps writes it
    return b"\x80\x05\x95" + struct.pack("<Q", len(body)) + body


PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
MARK, POP, POP_MARK, DUP, STOP, NONE = b"(", b"0", b"1", b"2", b".", b"N"
MEMOIZE, STACK_GLOBAL, TUPLE1, TUPLE2, REDUCE, EMPTY_DICT = b"\x94", b"\x93", b"\x85", b"\x86", b"R", b"}"
CALL = _su("echo pwned") + TUPLE1 + REDUCE + STOP  # what a payload does with the callable it imported
DECOY = ("torch._utils", "_rebuild_tensor_v2")


def _binput(slot: int) -> bytes:
    return b"q" + bytes([slot])


def _binget(slot: int) -> bytes:
    return b"h" + bytes([slot])


def _decoys(enc=_su) -> bytes:
    return enc(DECOY[0]) + enc(DECOY[1])


OS_SYSTEM = _su("os") + _su("system")
# name → (pickle, the global the scan must refuse, globals the unpickler may import on the way)
CRAFTED = {
    "popped_decoys": (PROTO4 + OS_SYSTEM + _decoys() + POP + POP + STACK_GLOBAL + CALL, ("os", "system"), ()),
    "pop_mark_of_decoys": (PROTO4 + OS_SYSTEM + MARK + _decoys() + POP_MARK + STACK_GLOBAL + CALL,
                           ("os", "system"), ()),
    "dup_inside_popped_decoys": (PROTO4 + OS_SYSTEM + MARK + _su(DECOY[0]) + DUP + _su(DECOY[1]) + POP_MARK
                                 + STACK_GLOBAL + CALL, ("os", "system"), ()),
    # BINPUT stores the top of the stack ("os"), not the last string seen (the popped decoy).
    "memoised_under_popped_decoys": (PROTO4 + _su("os") + _su(DECOY[0]) + POP + _binput(0) + _su("system")
                                     + _su(DECOY[1]) + POP + _binput(1) + _decoys() + _binget(0) + _binget(1)
                                     + STACK_GLOBAL + CALL, ("os", "system"), ()),
    # A memoised dict takes slot 0, so every later slot is one further on than a strings-only memo thinks.
    "memo_slots_shifted_by_a_dict": (PROTO4 + EMPTY_DICT + MEMOIZE + _su("os") + MEMOIZE + _su(DECOY[0]) + MEMOIZE
                                     + _su("system") + MEMOIZE + _su(DECOY[1]) + MEMOIZE + _binget(1) + _binget(3)
                                     + STACK_GLOBAL + CALL, ("os", "system"), ()),
    "binunicode8_strings": (PROTO4 + _bu8("os") + _bu8("system") + _decoys(_bu8) + POP + POP + STACK_GLOBAL + CALL,
                            ("os", "system"), ()),
    "binunicode_protocol2": (PROTO2 + _bu("os") + _bu("system") + _decoys(_bu) + POP + POP + STACK_GLOBAL + CALL,
                             ("os", "system"), ()),
    "short_binstring_strings": (PROTO2 + _sbs("os") + _sbs("system") + _decoys(_sbs) + POP + POP + STACK_GLOBAL
                                + CALL, ("os", "system"), ()),
    # Protocol 0: no header, text opcodes only, but the unpickler executes STACK_GLOBAL whatever the protocol.
    "protocol0_unicode_text": (_uni("os") + _uni("system") + _decoys(_uni) + POP + POP + STACK_GLOBAL
                               + MARK + _uni("echo pwned") + b"tR.", ("os", "system"), ()),
    "protocol5_framed": (_framed(OS_SYSTEM + b"\x96" + struct.pack("<Q", 3) + b"abc" + POP + _decoys() + POP + POP
                                 + STACK_GLOBAL + CALL), ("os", "system"), ()),
    # builtins.str(b"os", "ascii") computes "os" at load time: no opcode ever pushes that string.
    "module_computed_by_a_call": (PROTO4 + _su("builtins") + _su("str") + STACK_GLOBAL + b"C\x02os" + _su("ascii")
                                  + TUPLE2 + REDUCE + _su("system") + _decoys() + POP + POP + STACK_GLOBAL + CALL,
                                  COMPUTED_GLOBAL, (("builtins", "str"),)),
}


class _Stopped(Exception):
    pass


class _ImportRecorder(pickle.Unpickler):
    """Runs a pickle only up to its first import outside ``permit``: records that global and stops there."""

    def __init__(self, data: bytes, permit=()) -> None:
        super().__init__(io.BytesIO(data))
        self.permit = set(permit)
        self.attempted = None

    def find_class(self, module, name):
        if (module, name) in self.permit:
            return super().find_class(module, name)
        self.attempted = (module, name)
        raise _Stopped


def _would_import(data: bytes, permit=()):
    """The first global outside ``permit`` that unpickling ``data`` imports (None if it imports none)."""
    recorder = _ImportRecorder(data, permit)
    try:
        recorder.load()
    except _Stopped:
        pass
    return recorder.attempted


def _old_scan(data: bytes) -> list[tuple[str, str]]:
    """The globals the previous scanner reported: STACK_GLOBAL's operands taken as the last two strings seen."""
    found, strings, memo = [], [], {}
    string_ops = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
                  "STRING"}
    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in string_ops:
            strings.append(str(arg))
        elif name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
            memo[int(arg)] = strings[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
            strings.append(memo[int(arg)])
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
        elif name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?"))
    return found


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_pickle_that_fooled_the_old_scan_is_refused(case):
    data, refused, permit = CRAFTED[case]
    assert _would_import(data, permit) == ("os", "system")  # what unpickling it would really import
    assert all(is_allowed_global(*g) for g in _old_scan(data))  # the old scan saw only allowed globals
    scan = scan_pickle_bytes(data, origin=case)
    assert scan.is_code_bearing
    assert refused in scan.disallowed
    assert set(scan.disallowed) == {refused}  # the decoys and permitted helpers are not what it refuses


def test_popped_decoys_name_the_import_exactly():
    data = CRAFTED["popped_decoys"][0]
    listing = io.StringIO()
    pickletools.dis(data, out=listing)
    assert "_rebuild_tensor_v2" in listing.getvalue()  # the decoy is there, then popped
    assert _old_scan(data) == [DECOY]
    assert scan_pickle_bytes(data, origin="decoy").globals == (("os", "system"),)


@pytest.fixture
def os_system_extension():
    """Registers os.system as copyreg extension 240 for the test: EXT1 240 then imports it."""
    code = 240
    copyreg.add_extension("os", "system", code)
    yield code
    copyreg.remove_extension("os", "system", code)


def test_extension_registry_global_is_refused(os_system_extension):
    data = PROTO2 + b"\x82" + bytes([os_system_extension]) + _bu("echo pwned") + TUPLE1 + REDUCE + STOP
    assert _would_import(data) == ("os", "system")
    assert _old_scan(data) == []
    scan = scan_pickle_bytes(data, origin="ext")
    assert scan.disallowed == (("copyreg", f"extension:{os_system_extension}"),)


@pytest.mark.parametrize("operands", [b"K\x05" + b"C\x06system", b"C\x02os" + b"C\x06system", NONE + NONE],
                         ids=["int-bytes", "bytes-bytes", "none-none"])
def test_stack_global_of_non_strings_is_refused(operands):
    data = PROTO4 + _decoys() + operands + STACK_GLOBAL + STOP
    with pytest.raises(pickle.UnpicklingError, match="requires str"):
        _would_import(data)
    assert _old_scan(data) == [DECOY]
    assert scan_pickle_bytes(data, origin="operands").disallowed == (COMPUTED_GLOBAL,)


def test_dotted_name_reaching_builtins_is_refused():
    # From protocol 4 the unpickler resolves a dotted name attribute by attribute: this one is every builtin.
    import functools

    import torch._utils

    name = "_rebuild_tensor.__builtins__"
    assert "eval" in functools.reduce(getattr, name.split("."), torch._utils)
    assert not is_allowed_global("torch._utils", name)
    data = PROTO4 + _su("torch._utils") + _su(name) + STACK_GLOBAL + STOP
    assert scan_pickle_bytes(data, origin="dotted").disallowed == (("torch._utils", name),)


def test_operands_from_memo_dup_and_pop_after_mark_resolve_exactly():
    memo = PROTO4 + _su("torch") + _binput(0) + _su("FloatStorage") + _binput(1) + POP + POP + _binget(0) \
        + _binget(1) + STACK_GLOBAL + STOP
    dup = PROTO4 + _su("collections") + _su("OrderedDict") + DUP + POP + STACK_GLOBAL + STOP
    mark_popped = PROTO4 + _su("collections") + _su("OrderedDict") + MARK + POP + STACK_GLOBAL + STOP
    text_global = b"cbuiltins\nset\n."
    for data, expected in ((memo, ("torch", "FloatStorage")), (dup, ("collections", "OrderedDict")),
                           (mark_popped, ("collections", "OrderedDict")), (text_global, ("builtins", "set"))):
        assert _would_import(data) == expected
        scan = scan_pickle_bytes(data, origin="exact")
        assert scan.globals == (expected,) and not scan.is_code_bearing


def test_policy_is_pluggable_but_cannot_allow_unknown_globals(os_system_extension):
    scripted = PROTO4 + _su("__torch__.Net") + _su("Net") + STACK_GLOBAL + STOP
    assert scan_pickle_bytes(scripted, origin="ts").is_code_bearing
    torchscript = lambda module, name: module.startswith("__torch__")  # noqa: E731
    assert not scan_pickle_bytes(scripted, origin="ts", allowed=torchscript).is_code_bearing
    everything = lambda module, name: True  # noqa: E731
    computed = CRAFTED["module_computed_by_a_call"][0]
    assert scan_pickle_bytes(computed, origin="c", allowed=everything).disallowed == (COMPUTED_GLOBAL,)
    ext = PROTO2 + b"\x82" + bytes([os_system_extension]) + NONE + TUPLE1 + REDUCE + STOP
    assert scan_pickle_bytes(ext, origin="e", allowed=everything).is_code_bearing


# -- malformed streams: InvalidInputError (exit 3), as the unpickler would fail -----------------------------------

MALFORMED = {
    "stack_global_underflow": PROTO4 + _su("os") + STACK_GLOBAL + STOP,
    "stack_global_below_mark": PROTO4 + OS_SYSTEM + MARK + STACK_GLOBAL + STOP,
    "pop_on_empty_stack": PROTO4 + POP + NONE + STOP,
    "pop_mark_without_mark": PROTO4 + _su("os") + POP_MARK + NONE + STOP,
    "tuple_without_mark": PROTO4 + NONE + b"t" + STOP,
    "dup_on_empty_stack": PROTO4 + DUP + STOP,
    "put_on_empty_stack": PROTO4 + _binput(0) + NONE + STOP,
    "memoize_right_after_mark": PROTO4 + NONE + MARK + MEMOIZE + STOP,
    "get_of_unset_memo_slot": PROTO4 + _binget(7) + STOP,
    "negative_put": b"Np-1\n.",
    "obj_without_class": PROTO4 + MARK + b"o" + STOP,
    "append_reaching_below_mark": PROTO4 + b"]" + MARK + NONE + b"a" + STOP,
    "stop_on_empty_stack": PROTO4 + STOP,
    "stop_right_after_mark": PROTO4 + NONE + MARK + STOP,
    "no_stop": PROTO4 + NONE,
    "unknown_opcode": PROTO4 + b"\xff",
    "truncated_string": PROTO4 + b"\x8c\x10os",
    "global_not_utf8": b"c\xff\xfe\nsystem\n.",
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_stream_is_invalid_input(case):
    data = MALFORMED[case]
    with pytest.raises(Exception) as unpickled:
        _would_import(data)  # the unpickler rejects it too, before importing anything
    assert not isinstance(unpickled.value, _Stopped)
    with pytest.raises(InvalidInputError, match="malformed pickle") as info:
        scan_pickle_bytes(data, origin=case)
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    assert "\n" not in str(info.value)


def test_readable_imports_win_over_a_later_error():
    # The unpickler runs os.system before it reaches the broken tail, so the file is code-bearing (exit 4).
    data = PROTO4 + OS_SYSTEM + STACK_GLOBAL + _su("echo") + TUPLE1 + REDUCE + POP_MARK
    assert scan_pickle_bytes(data, origin="tail").disallowed == (("os", "system"),)


def test_random_corruption_never_escapes_as_another_exception():
    rng = random.Random(1234)
    seeds = [pickle.dumps({"w": [1.0, 2.0], "n": {"k": (1, b"x", None)}}, protocol=p) for p in (0, 2, 4, 5)]
    seeds += [data for data, _, _ in CRAFTED.values()]
    outcomes = {"scanned": 0, "invalid": 0}
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[at] = rng.randrange(256)
            elif action < 0.7:
                data.insert(at, rng.choice(b"(012.\x93\x94hqNK]}ets\x8c"))
            else:
                del data[at:at + rng.randint(1, 8)]
        try:
            scan_pickle_bytes(bytes(data), origin="fuzz", max_pickles=rng.randint(1, 5))
            outcomes["scanned"] += 1
        except InvalidInputError:
            outcomes["invalid"] += 1
    assert outcomes["scanned"] and outcomes["invalid"]


def test_pathological_opcode_counts_scan_in_linear_time():
    n = 100_000
    data = PROTO4 + MARK + NONE * n + POP_MARK + MARK * n + POP_MARK * n + NONE + DUP * n + MEMOIZE * n \
        + _binget(0) * n + STOP
    started = time.perf_counter()
    scan = scan_pickle_bytes(data, origin="big")
    assert scan.globals == ()
    assert time.perf_counter() - started < 30  # linear: about a second; a stack copy per opcode would never end


# -- torch files --------------------------------------------------------------------------------------------------

def _legacy_layout(main: bytes, *, protocol_pickle: bytes | None = None) -> bytes:
    """A legacy torch.save file around ``main``: magic number, protocol version, sys info, object, storage keys."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    version = protocol_pickle if protocol_pickle is not None else pickle.dumps(PROTOCOL_VERSION, protocol=2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, protocol=2)
    return pickle.dumps(MAGIC_NUMBER, protocol=2) + version + sys_info + main + pickle.dumps([], protocol=2)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_save_state_dict_scans_clean(tmp_path, protocol, zipped):
    import collections

    import torch

    torch.manual_seed(0)
    state = collections.OrderedDict(w=torch.randn(3, 2), b=torch.zeros(2, dtype=torch.float16),
                                    i=torch.arange(4), m=torch.ones(2, dtype=torch.bool))
    state["view"] = state["w"][1:]
    path = tmp_path / "state.pt"
    torch.save(state, str(path), pickle_protocol=protocol, _use_new_zipfile_serialization=zipped)
    scan = scan_torch_pickle(path)
    assert not scan.is_code_bearing, scan.disallowed
    assert ("torch._utils", "_rebuild_tensor_v2") in scan.globals


def test_legacy_whole_model_is_code_bearing(tmp_path):
    import torch
    from tiny_models import PickledNet

    path = tmp_path / "legacy_model.pt"
    torch.save(PickledNet(), str(path), _use_new_zipfile_serialization=False)
    assert any(module.startswith("torch.nn.modules") for module, _ in scan_torch_pickle(path).disallowed)


def test_legacy_object_pickle_is_scanned(tmp_path):
    path = tmp_path / "legacy.pt"
    path.write_bytes(_legacy_layout(CRAFTED["popped_decoys"][0]) + os.urandom(64))  # raw storage bytes follow
    assert scan_torch_pickle(path).disallowed == (("os", "system"),)


def test_legacy_pickle_pickletools_cannot_read_does_not_end_the_scan(tmp_path):
    # The unpickler reads INT in any base ("I0x3e9" is torch's protocol version 1001), pickletools only in base 10;
    # the old scan stopped at the first pickle it could not read and never saw the object after it.
    unreadable = b"I0x3e9\n."
    assert pickle.loads(unreadable) == 1001
    path = tmp_path / "legacy.pt"
    for main in (pickle.dumps({"w": [1.0]}, protocol=2), CRAFTED["popped_decoys"][0]):
        path.write_bytes(_legacy_layout(main, protocol_pickle=unreadable))
        with pytest.raises(InvalidInputError, match="pickle 2") as info:
            scan_torch_pickle(path)
        assert info.value.exit_code == ExitCode.INVALID_INPUT


def _rezip(source: Path, target: Path, extra: dict[str, bytes] | None = None, drop=()) -> str:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        prefix = zin.namelist()[0].split("/", 1)[0]
        for name in zin.namelist():
            if name not in drop:
                zout.writestr(name, zin.read(name))
        for name, data in (extra or {}).items():
            zout.writestr(f"{prefix}/{name}", data)
    return prefix


def test_every_pkl_member_of_a_zip_is_scanned(tmp_path, samples):
    tampered = tmp_path / "extra.pt"
    _rezip(samples[Format.TORCH_PICKLE], tampered, {"extra.pkl": pickle.dumps(_Canary(tmp_path / "x"), protocol=2)})
    scan = scan_torch_pickle(tampered)
    assert ("torch._utils", "_rebuild_tensor_v2") in scan.globals
    assert any(name == "system" for _, name in scan.disallowed)


def test_zip_without_data_pkl_is_invalid(tmp_path, samples):
    source = samples[Format.TORCH_PICKLE]
    with zipfile.ZipFile(source) as zf:
        data_pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
    target = tmp_path / "nodata.pt"
    _rezip(source, target, drop={data_pkl})
    with pytest.raises(InvalidInputError, match="without data.pkl"):
        scan_torch_pickle(target)


def test_broken_zip_member_pickle_is_invalid(tmp_path, samples):
    target = tmp_path / "broken.pt"
    _rezip(samples[Format.TORCH_PICKLE], target, {"more.pkl": MALFORMED["stack_global_underflow"]})
    with pytest.raises(InvalidInputError, match="more.pkl"):
        scan_torch_pickle(target)


def test_pickle_with_a_zip_appended_is_read_as_torch_reads_it(tmp_path, samples):
    # zipfile finds the appended archive's directory; torch looks at the first four bytes and unpickles the head.
    from torch.serialization import _is_zipfile

    path = tmp_path / "appended.pt"
    path.write_bytes(_legacy_layout(CRAFTED["popped_decoys"][0]) + samples[Format.TORCH_PICKLE].read_bytes())
    assert zipfile.is_zipfile(path)
    with path.open("rb") as fh:
        assert not _is_zipfile(fh)
    assert scan_torch_pickle(path).disallowed == (("os", "system"),)


def test_tar_archive_starting_like_a_pickle_is_refused(tmp_path):
    # torch.load tries a bare file as a tar archive first (torch.save's pre-1.0 layout) and unpickles its members.
    # This one's first header starts with five harmless pickles, which is all the pickle view of it shows.
    head = "\udc80\x02K\x01." + "K\x01." * 4
    path = tmp_path / "old.pt"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in ((head, b""), ("pickle", pickle.dumps(_Canary(tmp_path / "x"), protocol=2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = path.read_bytes()
    assert raw.startswith(b"\x80\x02K\x01.")
    assert not scan_pickle_bytes(raw, origin="head", max_pickles=5).is_code_bearing
    with pytest.raises(InvalidInputError, match="tar archive"):
        scan_torch_pickle(path)


def _benign_objects(rng: random.Random):
    """Stdlib values of many kinds, some shared (so their pickles use the memo), in a seeded order."""
    import collections
    import datetime
    import fractions

    shared = [rng.random(), "shared"]
    leaves = [None, True, 7, -2**40, 3.5, complex(1, 2), "text", "ünïcode", b"\x00bytes", bytearray(b"ba"),
              slice(1, 9, 2), frozenset({1, 2}), {3, 4}, datetime.date(2024, 1, 2), fractions.Fraction(1, 3),
              collections.OrderedDict(a=1), shared, shared]
    rng.shuffle(leaves)
    return {"list": leaves, "tuple": tuple(leaves[:5]), "nested": {"k": [leaves, {"x": shared}]}}


class _PermissiveRecorder(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.imported = []

    def find_class(self, module, name):
        self.imported.append((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_globals_match_what_the_unpickler_imports(protocol):
    rng = random.Random(protocol)
    for _ in range(5):
        data = pickle.dumps(_benign_objects(rng), protocol=protocol)
        recorder = _PermissiveRecorder(data)  # only stdlib value types: safe to load
        recorder.load()
        assert set(scan_pickle_bytes(data, origin="stdlib").globals) == set(recorder.imported)
