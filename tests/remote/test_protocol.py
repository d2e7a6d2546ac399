from __future__ import annotations

from typing import Any

import pytest

from framekit.remote._protocol import (
    BadRequest,
    ErrorCode,
    FileRequest,
    RunRequest,
    check_mac,
    compute_mac,
    error_header,
    new_nonce,
    parse_request,
    validate_name,
)


def parse(**fields: Any) -> RunRequest | FileRequest:
    return parse_request(fields, max_timeout=60)


def test_run_request_with_argv() -> None:
    req = parse(type="run", id=7, argv=["ls", "-la"], timeout=5, size=3)
    assert req == RunRequest(id=7, argv=("ls", "-la"), shell=None, timeout=5.0, stdin_size=3)
    assert req.program == "ls"


def test_run_request_timeout_is_capped_by_server() -> None:
    req = parse(type="run", argv=["x"], timeout=10_000)
    assert isinstance(req, RunRequest) and req.timeout == 60


def test_shell_request_program_is_first_word() -> None:
    req = parse(type="run", shell="  echo hi | wc")
    assert isinstance(req, RunRequest) and req.program == "echo"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"type": "launch"}, "unknown request type 'launch'"),
        ({}, "unknown request type None"),
        ({"type": "run"}, "exactly one of 'argv'"),
        ({"type": "run", "argv": ["a"], "shell": "a"}, "exactly one of 'argv'"),
        ({"type": "run", "argv": "ls -la"}, "non-empty list of strings"),
        ({"type": "run", "argv": []}, "non-empty list of strings"),
        ({"type": "run", "argv": ["ls", 3]}, "non-empty list of strings"),
        ({"type": "run", "argv": ["ls\x00"]}, "without NUL"),
        ({"type": "run", "argv": [""]}, "must not be empty"),
        ({"type": "run", "shell": "  "}, "non-empty string"),
        ({"type": "run", "argv": ["a"], "timeout": "5"}, "number of seconds"),
        ({"type": "run", "argv": ["a"], "timeout": True}, "number of seconds"),
        ({"type": "run", "argv": ["a"], "timeout": -1}, "positive number"),
        ({"type": "run", "argv": ["a"], "timeout": float("inf")}, "positive number"),
        ({"type": "run", "argv": ["a"], "id": [1]}, "'id' must be an integer or a string"),
        ({"type": "run", "argv": ["a"], "id": "x" * 201}, "at most 200"),
        ({"type": "get", "name": "a", "size": 3}, "has no body"),
    ],
)
def test_bad_requests(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        parse_request(fields, max_timeout=60)
    assert info.value.code == ErrorCode.BAD_REQUEST


def test_file_requests() -> None:
    put = parse(type="put", id="u1", name="dir/a.txt", size=10, sha256="ab" * 32)
    assert put == FileRequest(id="u1", kind="put", name="dir/a.txt", size=10, sha256="ab" * 32)
    get = parse(type="get", name="a.txt")
    assert isinstance(get, FileRequest) and get.kind == "get"


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\..\\b", "a\x00b", 5, None],
)
def test_unsafe_names_rejected(name: object) -> None:
    with pytest.raises(BadRequest):
        validate_name(name)


@pytest.mark.parametrize("name", ["a.txt", "dir/sub/file.bin", "..hidden", "名前.txt"])
def test_safe_names_accepted(name: str) -> None:
    assert validate_name(name) == name


def test_mac_roundtrip_and_constant_time_check() -> None:
    nonce = new_nonce()
    assert len(nonce) == 64 and nonce != new_nonce()
    mac = compute_mac("secret", nonce)
    assert check_mac("secret", nonce, mac)
    assert not check_mac("other", nonce, mac)
    assert not check_mac("secret", new_nonce(), mac)
    assert not check_mac("secret", nonce, None)
    assert "secret" not in mac


def test_error_header() -> None:
    assert error_header(ErrorCode.BUSY, "later", 3) == {
        "type": "error",
        "code": "busy",
        "message": "later",
        "id": 3,
    }
    assert "id" not in error_header(ErrorCode.INTERNAL, "x")
