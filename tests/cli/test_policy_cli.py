"""`desk policy check` and `desk policy show`, and `desk serve` / `desk demo` refusing an invalid DESK_POLICY_FILE."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest

from desk.fallback.policy_file import builtin_policy_text
from tests._support import CLI_TIMEOUT_S, DESK_BIN, ServerPool, desk_cli, desk_env, free_port

INVALID = """\
version = "shop-2"

[ai.primary]
timeout_s = "eight"

[[guardrails]]
name = "cards"
applies_to = ["customer"]
patterns = ['(\\d{16}']
action = "block"
"""

INVALID_LINES = [
    "{path}:4: ai.primary.timeout_s: expected a number, got a string",
    "{path}:9: guardrails[0].patterns[0]: not a valid regular expression: missing ), unterminated subpattern at "
    "position 0",
]


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'desk.db'}"


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def test_show_prints_the_built_in_file(tmp_path: Path) -> None:
    shown = desk_cli(sqlite_url(tmp_path), "policy", "show")
    assert shown.stdout == builtin_policy_text()
    assert shown.stdout.startswith("# Desk's built-in fallback policy.")
    assert shown.stderr == ""


def test_check_accepts_a_copy_of_the_built_in_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    shown = desk_cli(sqlite_url(tmp_path), "policy", "show").stdout
    text, labels = re.subn(r'(?m)^version = "[^"]*"', 'version = "shop-1"', shown)
    assert labels == 1
    path.write_text(text)
    checked = desk_cli(sqlite_url(tmp_path), "policy", "check", str(path))
    raw = tomllib.loads(text)
    counts = f"{len(raw['reasons'])} reasons, {len(raw['guardrails'])} guardrails, {len(raw['flows'])} flows"
    assert checked.stdout == f"{path}: ok, version shop-1+{short_hash(text.encode())} ({counts})\n"
    assert checked.stderr == ""


def test_check_counts_what_a_small_file_defines(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(
        '[[flows]]\nname = "hi"\nkeywords = ["hello"]\nanswer = "Hello!"\n\n[[guardrails]]\nname = "x"\n'
        'applies_to = ["ai"]\nkeywords = ["x"]\naction = "flag"\n'
    )
    checked = desk_cli(sqlite_url(tmp_path), "policy", "check", str(path))
    version = f"custom+{short_hash(path.read_bytes())}"
    assert checked.stdout == f"{path}: ok, version {version} (7 reasons, 1 guardrails, 1 flows)\n"


def test_check_prints_every_problem_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(INVALID)
    checked = desk_cli(sqlite_url(tmp_path), "policy", "check", str(path), check=False)
    assert checked.returncode == 1
    assert checked.stdout == ""
    assert checked.stderr.splitlines() == [line.format(path=path) for line in INVALID_LINES]


def test_check_reports_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[ai]\nbackoff_s = 0.2\n\n[ai.primary\ntimeout_s = 2\n")
    checked = desk_cli(sqlite_url(tmp_path), "policy", "check", str(path), check=False)
    assert (checked.returncode, checked.stdout) == (1, "")
    assert checked.stderr == f"{path}:4: (syntax): Expected ']' at the end of a table declaration\n"


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_check_of_a_file_it_cannot_read_fails_in_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "policy.toml"
    if kind == "directory":
        path.mkdir()
    checked = desk_cli(sqlite_url(tmp_path), "policy", "check", str(path), check=False)
    assert (checked.returncode, checked.stdout) == (1, "")
    reason = "No such file or directory" if kind == "missing" else "Is a directory"
    assert checked.stderr == f"error: cannot read {path}: {reason}\n"
    assert "Traceback" not in checked.stderr


def run_server_command(command: str, directory: Path, policy_file: Path) -> subprocess.CompletedProcess[str]:
    """Run `desk serve` or `desk demo` expecting it to exit: a timeout means it started serving."""
    env = desk_env(
        sqlite_url(directory), DESK_POLICY_FILE=str(policy_file), DESK_HOST="127.0.0.1", DESK_PORT=str(free_port())
    )
    return subprocess.run(
        [str(DESK_BIN), command],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        cwd=directory,
    )


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serving_refuses_an_invalid_policy_file(tmp_path: Path, command: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(INVALID)
    refused = run_server_command(command, tmp_path, path)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        "error: invalid policy file",
        *(line.format(path=path) for line in INVALID_LINES),
    ]
    assert not (tmp_path / "desk.db").exists()  # refused before migrating anything


def test_serving_refuses_a_policy_file_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "gone.toml"
    refused = run_server_command("serve", tmp_path, path)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == f"error: invalid policy file: cannot read {path}: No such file or directory\n"


def test_serving_starts_with_a_valid_policy_file(tmp_path: Path, server: ServerPool) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = "shop-3"\n[ai.primary]\ntimeout_s = 2\n')
    running = server(sqlite_url(tmp_path), env={"DESK_POLICY_FILE": str(path)})
    assert httpx.get(f"{running.url}/healthz", timeout=10).json()["status"] == "ok"
