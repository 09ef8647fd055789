"""User-facing errors (``wascompress/errors.py``): every mistake a user can make is a WascompressError, which the
CLI reports as one line with exit code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse

import pytest

from wascompress import cli
from wascompress.errors import CheckpointError, ConfigError, DataError, WascompressError


def test_the_error_classes():
    for cls in (ConfigError, DataError, CheckpointError):
        assert issubclass(cls, WascompressError)
    assert issubclass(ConfigError, ValueError)  # a bad setting is also a ValueError, for callers of the API
    assert not issubclass(WascompressError, (ValueError, OSError, RuntimeError))


@pytest.fixture
def command(monkeypatch):
    """``wascompress demo`` whose run raises the exception handed to the returned function."""
    raised: list[BaseException] = []

    def run(args: argparse.Namespace) -> int:
        raise raised[0]

    parser = argparse.ArgumentParser(prog="wascompress")
    parser.set_defaults(command="demo", verbose=False, run=run)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)

    def main_raising(error: BaseException) -> int:
        raised[:] = [error]
        return cli.main([])

    return main_raising


@pytest.mark.parametrize("error", [ConfigError("lr must be > 0"), DataError("no images in\n  /data/train"),
                                   CheckpointError("best.pt is not a wascompress checkpoint")])
def test_a_user_mistake_is_one_line_and_exit_code_2(command, capsys, error):
    assert command(error) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wascompress demo: error: ")
    assert " ".join(str(error).split()) in err  # a message over several lines comes out as one


def test_an_unreadable_path_is_one_line_and_exit_code_2(command, capsys):
    assert command(FileNotFoundError(2, "No such file or directory", "/no/such/file.onnx")) == 2
    assert capsys.readouterr().err == "wascompress demo: error: No such file or directory: /no/such/file.onnx\n"


def test_anything_else_is_a_bug_and_keeps_its_traceback(command):
    with pytest.raises(ZeroDivisionError):
        command(ZeroDivisionError("division by zero"))
    with pytest.raises(KeyError):
        command(KeyError("state_dict"))
