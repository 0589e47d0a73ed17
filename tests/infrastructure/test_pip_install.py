"""`pip install .` in a fresh venv on Python 3.12 gives a working `sipreg` command without any dev
package (issue 12): `sipreg --help`, `send --help`, `status --help` and every other subcommand's
help, devstack never imported, `sipreg devstack up` naming the extra it needs instead of a
traceback, and a runtime package complete down to the gRPC code the build generates.

It installs a copy of what a clone holds (tracked files and new ones git does not ignore: no
.venv, no generated code), so the build's by-products (build/, *.egg-info, the gRPC code) never
land in this tree. The wheels come from a wheelhouse that `pip download` fills from PyPI for that
copy, kept under ~/.cache/sipreg-tests/ per version of pyproject.toml and the layer's
requirements.txt: the first run downloads (~45 MB), later ones install offline (--no-index).
`rm -r ~/.cache/sipreg-tests` forces a new download.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from sipreg_cli.devstack import EXTRA_HINT

ROOT = Path(__file__).resolve().parents[2]
# Subcommands there today (the test asks the parser for all of them, so newer ones count too).
SOME_SUBCOMMANDS = ("send", "import", "status", "revoke", "disable", "refresh", "redrive", "devstack")
# Packages only the extras bring: none may be in the fresh venv.
NOT_INSTALLED = ("flask", "yaml", "samtranslator", "moto", "pytest", "mypy")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sipreg-tests"

pytestmark = pytest.mark.timeout(600)  # the first run downloads every wheel


def run(*command: str | Path, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    # Nothing of this tree on the path, and no stack could start should `devstack up` get that far.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(SIPREG_AWS_ENGINE_PYTHON="/nonexistent/python", **extra_env)
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )


def pip(*args: str | Path, cwd: Path) -> None:
    done = run(sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr


def clone_like_copy(target: Path) -> Path:
    """The files a fresh clone would have (plus new, not ignored ones), copied to `target`."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not there to copy
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def wheelhouse(source: Path) -> Path:
    """The wheels `pip install source` needs, its build's too (setuptools, grpcio-tools), downloaded
    once per version of the files that name them. Concurrent runs each fill their own; one stays."""
    named = b"".join((source / f).read_bytes() for f in ("pyproject.toml", "layers/common/requirements.txt"))
    folder = CACHE / f"wheelhouse-{hashlib.sha256(named).hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    filling = Path(tempfile.mkdtemp(dir=CACHE, prefix=".filling-"))
    build_requires = tomllib.loads((source / "pyproject.toml").read_text())["build-system"]["requires"]
    pip("download", "--dest", filling, source, *build_requires, cwd=CACHE)
    try:
        filling.rename(folder)
    except OSError:  # another run got there first: its wheels are the same
        shutil.rmtree(filling)
    return folder


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding `pip install <copy of this tree>` and nothing else; its bin/ folder."""
    scratch = tmp_path_factory.mktemp("pip-install")
    source = clone_like_copy(scratch / "src")
    wheels = wheelhouse(source)
    base_python = getattr(sys, "_base_executable", sys.executable)  # 3.12, as the suite's venv
    # No pip of its own: this pip installs into it (--python), so it holds the project and its
    # dependencies, nothing else.
    made = run(base_python, "-m", "venv", "--without-pip", scratch / "venv", cwd=scratch)
    assert made.returncode == 0, made.stderr
    bin_dir = scratch / "venv" / "bin"
    # --no-compile: bytecode for botocore's thousands of modules would be most of the time; Python
    # writes it for what the commands import.
    pip("--python", bin_dir / "python", "install", "--no-index", "--find-links", wheels, "--no-compile",
        source, cwd=scratch)  # fmt: skip
    return bin_dir


def pins(lines: list[str]) -> dict[str, str]:
    """name (normalized, extras dropped) -> version, of `name==version` requirement lines."""
    found = {}
    for line in lines:
        text = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in text:
            name, version = text.split("==", 1)
            found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version.strip()
    return found


def test_every_pin_pyproject_declares_is_the_one_constraints_txt_freezes() -> None:
    # pyproject names what each extra (and the build: grpcio-tools) needs; constraints.txt, the dev
    # venv's freeze, has the versions. Equal, or `make venv` could not install them together, and
    # a wheel's gRPC code would come from another protoc than `make proto`'s.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"].values()
    declared = pins([*(r for required in extras for r in required), *pyproject["build-system"]["requires"]])
    frozen = pins((ROOT / "constraints.txt").read_text().splitlines())
    assert declared, "no pins read"
    assert {name: v for name, v in declared.items() if frozen.get(name) != v} == {}


def test_the_fresh_venv_is_python_3_12_without_any_extra(venv: Path) -> None:
    probe = (
        "import importlib.metadata, importlib.util, json, sys; print(json.dumps([sys.version_info[:2], "
        f"[n for n in {NOT_INSTALLED!r} if importlib.util.find_spec(n)], "
        "[r for r in importlib.metadata.requires('sipreg') if 'extra ==' not in r]]))"
    )
    answer = run(venv / "python", "-c", probe, cwd=venv)
    assert answer.returncode == 0, answer.stderr
    version, extras_found, required = json.loads(answer.stdout)
    assert (version, extras_found) == ([3, 12], [])
    # The installed package requires exactly the layer's pins: one list for Lambda and for pip
    layer = (ROOT / "layers" / "common" / "requirements.txt").read_text().splitlines()
    assert pins(required) == pins(layer)


@pytest.mark.parametrize("argv", [(), ("send",), ("status",)], ids=["sipreg", "send", "status"])
def test_the_installed_command_answers_help(venv: Path, argv: tuple[str, ...]) -> None:
    answer = run(venv / "sipreg", *argv, "--help", cwd=venv)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith(" ".join(("usage: sipreg", *argv)))


def test_every_subcommand_answers_help_and_none_imports_devstack(venv: Path) -> None:
    # One interpreter for them all (each start of the command costs a second or two of imports);
    # the subcommands are the parser's own, so a new one is covered as it is registered.
    probe = """
import argparse, contextlib, io, json, sys
from sipreg_cli import build_parser, main
[commands] = [a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
codes = {}
for name in commands:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main([name, "--help"])
    except SystemExit as stop:
        codes[name] = stop.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"devstack", "flask", "yaml"})
print(json.dumps([codes, loaded]))
"""
    answer = run(venv / "python", "-c", probe, cwd=venv)
    assert answer.returncode == 0, answer.stderr
    codes, loaded = json.loads(answer.stdout)
    assert set(codes) >= set(SOME_SUBCOMMANDS)
    assert (set(codes.values()), loaded) == ({0}, [])


def test_the_whole_runtime_package_imports_with_the_declared_dependencies(venv: Path) -> None:
    # Every module of the installed sipreg, the generated gRPC code too (`sipreg redrive` reaches
    # the worker and the core client), with only what `dependencies` brought
    probe = """
import importlib, pkgutil, sipreg
names = [m.name for m in pkgutil.walk_packages(sipreg.__path__, "sipreg.")]
for name in names:
    importlib.import_module(name)
print(sum(name.startswith("sipreg.proto.wgtwo.") for name in names))
"""
    answer = run(venv / "python", "-c", probe, cwd=venv)
    assert answer.returncode == 0, answer.stderr
    assert int(answer.stdout) >= 6  # v0 and v1 of sipbreakout (messages, stubs) and phonenumber


def test_send_refuses_invalid_events_before_any_request(venv: Path, tmp_path: Path) -> None:
    # Given an invalid event (the installed CLI checks it with the API's own model)
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"id": "e-1", "type": "registration.upsert", "msisdn": "47999"}))
    api = "http://127.0.0.1:9"  # the discard port, closed: no request may get that far
    answer = run(venv / "sipreg", "send", events, "--api", api, cwd=tmp_path, SIPREG_WEBHOOK_SECRET="s")
    # Then nothing is sent and it says why
    assert answer.returncode == 2, answer.stderr
    assert "invalid events, nothing sent" in answer.stderr


def test_devstack_up_names_the_extra_it_needs(venv: Path) -> None:
    answer = run(venv / "sipreg", "devstack", "up", cwd=venv)
    assert answer.returncode == 2
    assert EXTRA_HINT in answer.stderr
    assert "Traceback" not in answer.stderr
