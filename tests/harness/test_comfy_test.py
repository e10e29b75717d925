"""comfy-test, the ComfyUI ecosystem's install test, at its offline levels: `comfy-test run --level hazards`.

With the repo's comfy-test.toml that runs SYNTAX (fails the run: project
files, cp1252-safe source, no hardcoded CUDA devices, no autocast, no raw
torch layers where ComfyUI's ops belong), WARNINGS and HAZARDS (reports that
never fail it; here HAZARDS is held to no finding in the code ComfyUI loads).
No ComfyUI install, no server, no network.

comfy-test scans the folder it runs in: it runs on a copy of the checkout's
files (tracked and untracked, not ignored: what a clone puts in custom_nodes),
so nothing is written into the repo and the scan does not walk .venv and
.comfyui. Its logs and workspace folders go to tmp dirs, as the two
environment variables it would otherwise ask for on stdin say.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# Folders ComfyUI never imports: tests and benchmarks may choose precisions and free memory as they like.
NOT_LOADED = ("tests/", "benchmarks/")


def _checkout_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def _run_comfy_test(root: pathlib.Path, files: list[str]) -> tuple[subprocess.CompletedProcess, str]:
    """Copy `files` into root/comfyui-exvideo and run comfy-test there: (the process, its session log)."""
    pack = root / "comfyui-exvideo"
    for name in files:
        (pack / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, pack / name)
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMFY_TEST_")}
    env.update(COMFY_TEST_LOGS_DIR=str(root / "logs"), COMFY_TEST_WORKSPACE_DIR=str(root / "workspaces"))
    done = subprocess.run([sys.executable, "-P", "-m", "comfy_test", "run", "--level", "hazards"], cwd=pack,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    logs = sorted((root / "logs").glob("*/*/*/session.log"))
    assert len(logs) == 1, f"no session log from comfy-test:\n{done.stdout}\n{done.stderr}"
    # The session log is comfy-test's report: stdout's lines, each message stamped with the elapsed [mm:ss].
    return done, re.sub(r"^\[\d+:\d\d\] ", "", logs[0].read_text(encoding="utf-8"), flags=re.M)


def _section(log: str, level: str) -> str:
    """What comfy-test logged for one level, from its header to its verdict."""
    match = re.search(rf"^\[\d+/\d+\] {level}\n(.*?)^\[{level}\] PASSED$", log, re.M | re.S)
    assert match, f"{level} did not pass:\n{log}"
    return match.group(1)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return _run_comfy_test(tmp_path_factory.mktemp("comfy_test_checkout"), _checkout_files())


@pytest.fixture(scope="module")
def pack_code(tmp_path_factory):
    files = [name for name in _checkout_files() if not name.startswith(NOT_LOADED)]
    return _run_comfy_test(tmp_path_factory.mktemp("comfy_test_pack_code"), files)


def test_the_checkout_passes_the_offline_levels(checkout):
    done, log = checkout
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert re.search(r"^\s+linux: PASS$", done.stdout, re.M), done.stdout
    assert "Levels: syntax, warnings, hazards" in done.stdout
    syntax = _section(log, "SYNTAX")
    assert "Unicode check: OK" in syntax and "Forbidden patterns check: OK" in syntax
    _section(log, "WARNINGS")
    assert "linux: PASSED" in log


def test_hazards_are_judgement_calls_outside_the_loaded_code_at_most(checkout):
    """Band A-C findings (crashes, shared-object writes, import-time side effects) nowhere in the checkout."""
    hazards = _section(checkout[1], "HAZARDS")
    bands = re.findall(r"^=== ([A-D]) -- ", hazards, re.M)
    assert set(bands) <= {"D"}, hazards
    sites = re.findall(r"^\s+(\S+\.py):\d+", hazards, re.M)
    assert all(site.startswith(NOT_LOADED) for site in sites), hazards


def test_the_code_comfyui_loads_is_hazard_clean(pack_code):
    """The pack without tests/ and benchmarks/: not one finding (the reports list at most 10 sites each,
    so a finding in the loaded code could hide behind benchmark sites in the full run)."""
    done, log = pack_code
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Hazards check: clean" in _section(log, "HAZARDS"), log
