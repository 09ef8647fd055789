"""The restricted unpickler loads numpy arrays and plain data and refuses every other global."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from wascompress.data.unpickle import load_pickle
from wascompress.errors import DataError


class _Exploit:
    """Pickles as a call of ``func(*args)``, the way a malicious file would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_refuses_os_system_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # protocol 0, GLOBAL opcode
    with pytest.raises(DataError, match=r"os\.system"):
        load_pickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_refuses_builtins_eval(protocol: int) -> None:
    payload = pickle.dumps({b"data": _Exploit(builtins.eval, "1 + 1")}, protocol=protocol)
    with pytest.raises(DataError, match=r"builtins\.eval"):
        load_pickle(payload)


def test_refuses_posix_system_as_pickled_by_python() -> None:
    payload = pickle.dumps(_Exploit(os.system, "true"), protocol=4)
    with pytest.raises(DataError, match=rf"{os.system.__module__}\.system"):
        load_pickle(payload)


def test_refuses_harmless_but_unlisted_classes() -> None:
    payload = pickle.dumps(collections.OrderedDict(a=1), protocol=2)
    with pytest.raises(DataError, match=r"collections\.OrderedDict"):
        load_pickle(payload)


def test_error_names_the_source_file(tmp_path: Path) -> None:
    path = tmp_path / "evil_batch"
    path.write_bytes(pickle.dumps(_Exploit(builtins.exec, "x = 1"), protocol=2))
    with pytest.raises(DataError, match=rf"{path}.*builtins\.exec"):
        load_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_loads_numpy_arrays_and_plain_data(protocol: int) -> None:
    data = {
        b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072),
        b"labels": [3, 7],
        b"floats": np.linspace(0, 1, 5),
        b"scalar": np.int64(42),
        b"name": b"batch 1 of 5",
        b"tags": {1, 2},
        b"frozen": frozenset({b"x"}),
        b"buffer": bytearray(b"\x00\x01"),
    }
    loaded = load_pickle(pickle.dumps(data, protocol=protocol))
    assert set(loaded) == set(data)
    np.testing.assert_array_equal(loaded[b"data"], data[b"data"])
    assert loaded[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(loaded[b"floats"], data[b"floats"])
    assert loaded[b"scalar"] == 42 and loaded[b"labels"] == [3, 7] and loaded[b"name"] == b"batch 1 of 5"
    assert loaded[b"tags"] == {1, 2} and loaded[b"frozen"] == frozenset({b"x"}) and loaded[b"buffer"] == b"\x00\x01"


def test_loads_arrays_pickled_by_numpy_1_under_numpy_core() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    modern = pickle.dumps(array, protocol=2)
    legacy = modern.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in legacy
    np.testing.assert_array_equal(load_pickle(legacy), array)


def test_python2_strings_stay_bytes() -> None:
    # SHORT_BINSTRING, as written by Python 2 for the CIFAR keys: must load as bytes, not str.
    assert load_pickle(b"\x80\x02}q\x00U\x06labelsq\x01]q\x02K\x06as.") == {b"labels": [6]}


def test_accepts_paths_and_file_objects(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    path.write_bytes(pickle.dumps({b"label_names": [b"cat"]}, protocol=2))
    assert load_pickle(path) == load_pickle(str(path)) == {b"label_names": [b"cat"]}
    assert load_pickle(io.BytesIO(path.read_bytes())) == {b"label_names": [b"cat"]}


def test_truncated_or_missing_pickle_is_a_data_error(tmp_path: Path) -> None:
    payload = pickle.dumps({b"data": np.zeros((4, 3072), np.uint8)}, protocol=2)
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_pickle(payload[: len(payload) // 2])
    with pytest.raises(DataError, match="not_there"):
        load_pickle(tmp_path / "not_there")
