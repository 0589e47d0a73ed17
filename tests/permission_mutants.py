"""Proof that every permission template.yaml grants is needed: remove one, and some test must fail.

    .venv/bin/python tests/permission_mutants.py [--only SUBSTRING] [--list] [--report FILE]

A permission is the smallest part of the template a role's rights are made of:
- an entry of a function's `Policies` that is a SAM policy template (`SQSPollerPolicy: ...`);
- in a policy document (a function's inline one, or a managed policy's), one action of a
  statement (a statement with one action goes whole), one of several resources, one of several
  values a condition allows.

For each permission the tool writes the template without it beside template.yaml (so CodeUri
paths resolve alike), checks that the copy parses and differs from the original by exactly that
permission, and runs the tests that host template.yaml on the local AWS with IAM enforced
(SIPREG_TEMPLATE names the copy; `pytest -x` stops at the first failure). A mutant is *killed*
when a test fails and the local AWS refused that permission's action to its holder during the run
(the refusal is in the run's logs or pytest's output; a test's deliberate refusal of another
principal does not count); a failure without that denial is reported as *failed
otherwise* (look at it: noise, or a test that fails for another reason); a run that passes is a
*survivor*: the template grants something no test needs. Writes a Markdown report.

Takes long (about 75 minutes for all): one run of those tests per permission, most stopped early
by a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from devstack.host.template import load_template  # noqa: E402

TEMPLATE = ROOT / "template.yaml"
MUTANT = ROOT / "template.mutant.yaml"  # gitignored
# The e2e stack runs every function with its role; its tests first, the ones that touch most at
# once leading (`pytest -x`: the first failure ends a run). Then the integration tests that host
# template.yaml's functions, for each resource those that use it.
E2E = tuple(
    f"tests/e2e/test_{name}.py"
    for name in (
        "mission_on_the_local_stack",
        "every_function_and_route",
        "operator_controls",
        "who_may_do_what",
        "dead_letter_path",
        "one_event_followed_end_to_end",
        "calls_reach_the_pbx",
        "pbx_outage",
        "consent_browser",
        "consent_certified_provider",
        "devstack_up",
        "chaos_small",
    )
)
_EVENTS_API = (
    "events_api/test_request_authentication",
    "events_api/test_events_api_http",
    "events_api/test_documented_signing_examples",
    "events_api/test_cli_send",
    "events_api/test_import_csv",
    "test_events_api_partial_failure",
    "test_queue_fifo_attributes",
)
_CONSENT = (
    "test_consent_walk_over_http",
    "test_consent_any_provider",
    "test_consent_without_refresh_token",
    "test_tokens_refresh_revoke",
)
_WORKER = ("test_function_roles", "test_keepalive_with_refresher")
INTEGRATION = {
    "OAuthStartFunction": _CONSENT,
    "OAuthCallbackFunction": _CONSENT,
    "EventsApiFunction": _EVENTS_API,
    "RegistrationWorkerFunction": _WORKER,
    "RefresherFunction": ("test_keepalive_with_refresher",),
    "OperatorPolicy": ("events_api/test_request_authentication",),
}


def tests_for(owner: str) -> tuple[str, ...]:
    return E2E + tuple(f"tests/integration/{name}.py" for name in INTEGRATION.get(owner, ()))


# A refusal names who was refused and what: the engine's `AccessDenied:` lines, the SDK's error
# messages in the functions' logs, the host's refused routes.
DENIAL = re.compile(r"(arn:aws:[^\s\"']+) is not authorized to perform:? ([a-z0-9-]+:[A-Za-z0-9]+)")
# Who holds a managed policy on the local stack (devstack/stack.py's IAM users); a function's
# principal is a session of its role `<stack>-<LogicalId>Role-<suffix>`.
POLICY_HOLDERS = {
    "OperatorPolicy": ":user/sipreg-local-operator",
    "ProducerPolicy": ":user/sipreg-local-producer",
}


@dataclass(frozen=True)
class Permission:
    """One removable part of a policy: `path` leads to it in the template's data."""

    owner: str  # the resource holding the policy
    label: str  # e.g. "Policies[4] Registrations: dynamodb:BatchGetItem"
    path: tuple[str | int, ...]  # keys from the template's root to the list item removed
    actions: tuple[str, ...]  # what the local AWS refuses without it ("" for a SAM policy template)

    def __str__(self) -> str:
        return f"{self.owner} {self.label}"


# --- finding permissions ------------------------------------------------------------------------


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _statement_permissions(
    owner: str, where: str, path: tuple[str | int, ...], document: dict[str, Any]
) -> list[Permission]:
    statements = document["Statement"]
    found: list[Permission] = []
    for index, statement in enumerate(statements):
        actions = _actions(statement)
        name = f"{where} {statement.get('Sid', index)}"
        here = (*path, "Statement", index)
        if len(actions) == 1 and len(statements) > 1:
            found.append(Permission(owner, f"{name}: {actions[0]}", here, tuple(actions)))
        elif len(actions) == 1:
            found.append(Permission(owner, f"{name}: {actions[0]} (the whole policy)", path, tuple(actions)))
        else:
            found += [
                Permission(owner, f"{name}: {action}", (*here, "Action", position), (action,))
                for position, action in enumerate(actions)
            ]
        resources = statement.get("Resource")
        if isinstance(resources, list) and len(resources) > 1:
            found += [
                Permission(
                    owner,
                    f"{name}: resource {position + 1} of {len(resources)}",
                    (*here, "Resource", position),
                    tuple(actions),
                )
                for position in range(len(resources))
            ]
        for operator, conditions in (statement.get("Condition") or {}).items():
            for key, values in conditions.items():
                if isinstance(values, list) and len(values) > 1:
                    found += [
                        Permission(
                            owner,
                            f"{name}: {key} value {position + 1} of {len(values)}",
                            (*here, "Condition", operator, key, position),
                            tuple(actions),
                        )
                        for position in range(len(values))
                    ]
    return found


def permissions(template: dict[str, Any]) -> list[Permission]:
    found: list[Permission] = []
    path: tuple[str | int, ...]
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function":
            for index, entry in enumerate(properties.get("Policies") or []):
                path = ("Resources", logical_id, "Properties", "Policies", index)
                if isinstance(entry, dict) and "Statement" in entry:
                    found += _statement_permissions(logical_id, f"Policies[{index}]", path, entry)
                else:
                    name = entry if isinstance(entry, str) else next(iter(entry))
                    found.append(Permission(logical_id, f"Policies[{index}] {name}", path, ()))
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            path = ("Resources", logical_id, "Properties", "PolicyDocument")
            found += _statement_permissions(logical_id, "PolicyDocument", path, properties["PolicyDocument"])
    return found


# --- removing one -------------------------------------------------------------------------------


def _node_at(root: yaml.Node | None, path: tuple[str | int, ...]) -> tuple[yaml.SequenceNode, yaml.Node]:
    """(parent sequence, item) of the YAML node `path` names."""
    assert root is not None, "an empty template"
    parent, node = root, root
    for step in path:
        parent = node
        if isinstance(step, int):
            node = node.value[step]
        else:
            node = next(value for key, value in node.value if key.value == step)
    assert isinstance(parent, yaml.SequenceNode), f"{path} is not a list item"
    return parent, node


def without(text: str, path: tuple[str | int, ...]) -> str:
    """The template's text with the list item at `path` removed, comments and layout kept."""
    sequence, item = _node_at(yaml.compose(text, Loader=yaml.CSafeLoader), path)
    if sequence.flow_style:  # [a, b, c] on one line
        kept = [
            text[node.start_mark.index : node.end_mark.index] for node in sequence.value if node is not item
        ]
        start, end = sequence.start_mark.index, sequence.end_mark.index
        return text[:start] + "[" + ", ".join(kept) + "]" + text[end:]
    lines = text.splitlines(keepends=True)
    first = item.start_mark.line
    # A block item ends where the next token starts: a line of its own (or the item's last line)
    last = item.end_mark.line if item.end_mark.column > item.start_mark.column - 2 else item.end_mark.line - 1
    while last > first and not lines[last].strip():
        last -= 1
    return "".join(lines[:first] + lines[last + 1 :])


def _remove(data: Any, path: tuple[str | int, ...]) -> Any:
    copy = json.loads(json.dumps(data))
    node = copy
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return copy


@cache
def _original_text() -> str:
    return TEMPLATE.read_text()


@cache
def _original() -> dict[str, Any]:
    return load_template(TEMPLATE)


class MutantError(RuntimeError):
    """Removing a permission's text changed something else too."""


def write_mutant(permission: Permission, into: Path = MUTANT) -> None:
    """template.yaml without `permission`, written to `into` and checked: it parses to the
    original less exactly that permission."""
    into.write_text(without(_original_text(), permission.path))
    if load_template(into) != _remove(_original(), permission.path):
        raise MutantError(f"removing {permission} changed more than it: see {into}")


# --- running ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    permission: Permission
    result: str  # killed / failed otherwise / survived
    test: str
    seconds: float


def _first_failure(junit: Path) -> str:
    if not junit.exists():
        return "(no test report: pytest did not finish)"
    text = junit.read_text()
    for case in re.finditer(
        r'<testcase classname="([^"]*)" name="([^"]*)"[^>]*?(?:/>|>(.*?)</testcase>)', text, re.S
    ):
        if case.group(3) and ("<failure" in case.group(3) or "<error" in case.group(3)):
            return f"{case.group(1)}::{case.group(2)}"
    return ""


def _denials(*places: Path) -> set[tuple[str, str]]:
    """(principal ARN, action) of every refusal found in these files."""
    seen: set[tuple[str, str]] = set()
    for place in places:
        files = [place] if place.is_file() else [path for path in place.rglob("*") if path.is_file()]
        for path in files:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            seen.update((match.group(1), match.group(2)) for match in DENIAL.finditer(text))
    return seen


def refused_for(permission: Permission, denials: set[tuple[str, str]]) -> bool:
    """Whether the holder of `permission` was refused its action (any action, for a SAM policy
    template): a refusal of someone else (a test's deliberate one) is no evidence."""
    holder = POLICY_HOLDERS.get(permission.owner, f"-{permission.owner}Role-")
    return any(
        holder in principal and (not permission.actions or action in permission.actions)
        for principal, action in denials
    )


def run(permission: Permission, *, tests: tuple[str, ...]) -> Verdict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        base = Path(scratch)
        junit, output = base / "junit.xml", base / "pytest.out"
        environment = {**os.environ, "SIPREG_TEMPLATE": str(MUTANT)}
        with output.open("w") as out:
            code = subprocess.call(  # our own pytest on our own tests
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                 f"--basetemp={base / 'tmp'}", f"--junitxml={junit}", *tests],
                cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        test = _first_failure(junit)
        denials = _denials(base) if code else set()  # this run's logs and output only
    if code == 0:
        result = "survived"
    elif refused_for(permission, denials):
        result = "killed"
    else:
        result = "failed otherwise"
    return Verdict(permission, result, test, time.monotonic() - started)


Row = tuple[str, str, str, str, str, str]  # resource, permission, result, first failing test, s, date
_HEADER = ("resource", "permission", "result", "first failing test", "s", "run")


def row_of(verdict: Verdict) -> Row:
    permission = verdict.permission
    test = f"`{verdict.test}`" if verdict.test else ""
    return (
        permission.owner,
        permission.label,
        verdict.result,
        test,
        f"{verdict.seconds:.0f}",
        time.strftime("%Y-%m-%d"),
    )


def read_report(path: Path) -> dict[tuple[str, str], Row]:
    """The rows of an earlier report, by (resource, permission)."""
    rows: dict[tuple[str, str], Row] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        cells = tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        if len(cells) == len(_HEADER) and cells != _HEADER and not cells[0].startswith("---"):
            rows[cells[0], cells[1]] = cells  # type: ignore[assignment]
    return rows


def write_report(rows: list[Row], path: Path) -> None:
    killed = sum(row[2] == "killed" for row in rows)
    lines = [
        "# Every permission is needed: one removed, a test fails",
        "",
        f"`tests/permission_mutants.py` (`make permission-mutants`): {killed} of {len(rows)} permissions "
        "of template.yaml, each removed alone, made a test fail with the local AWS refusing that "
        "permission's action (IAM enforced). *killed*: a test failed and its holder's refusal is in "
        "the logs; "
        "*failed otherwise*: a test failed without that refusal; *survived*: every test passed.",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="the permissions whose description contains this")
    parser.add_argument("--list", action="store_true", help="list the permissions and stop")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "permission-mutants.md")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the report's killed rows of permissions the template still grants; run the rest",
    )
    parser.add_argument(
        "--tests",
        nargs="*",
        help="what each mutant runs (default: the e2e tests, then the integration tests of its resource)",
    )
    args = parser.parse_args()
    chosen = [p for p in permissions(load_template(TEMPLATE)) if args.only is None or args.only in str(p)]
    if args.list:
        for permission in chosen:
            write_mutant(permission)  # each one checked
            print(permission)
        MUTANT.unlink(missing_ok=True)
        print(f"{len(chosen)} permissions")
        return 0
    earlier = read_report(args.report) if args.update else {}
    rows: dict[tuple[str, str], Row] = {}
    for permission in chosen:
        kept = earlier.get((permission.owner, permission.label))
        if kept is not None and kept[2] == "killed":
            rows[permission.owner, permission.label] = kept
    to_run = [p for p in chosen if (p.owner, p.label) not in rows]
    try:
        for number, permission in enumerate(to_run, 1):
            write_mutant(permission)
            verdict = run(permission, tests=tuple(args.tests or tests_for(permission.owner)))
            rows[permission.owner, permission.label] = row_of(verdict)
            seconds = f"{verdict.seconds:.0f} s"
            print(
                f"[{number}/{len(to_run)}] {verdict.result:16} {permission} ({seconds}) {verdict.test}",
                flush=True,
            )
            write_report([rows[p.owner, p.label] for p in chosen if (p.owner, p.label) in rows], args.report)
    finally:
        MUTANT.unlink(missing_ok=True)
    return 0 if all(row[2] == "killed" for row in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
