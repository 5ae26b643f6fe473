"""Offline checks of infra/bicep: every file parses, checkov finds nothing, and the conventions hold.

No Bicep CLI installs on these machines, so the parser is pycep-parser and the policy scanner is
checkov, both from `.venv-infra` (checkov pins its own pycep-parser and many libraries, so they live
apart from `.venv`). `make test` builds that venv; without it these tests fail, never skip.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workers.sinks.firehose.durable import CUTS_PREFIX
from workers.sinks.lake.lake import EVENTS

ROOT = Path(__file__).resolve().parents[2]
BICEP = ROOT / "infra" / "bicep"
INFRA_BIN = ROOT / ".venv-infra" / "bin"
BICEP_FILES = sorted(BICEP.rglob("*.bicep"))
BICEP_IDS = [str(p.relative_to(BICEP)) for p in BICEP_FILES]

# Runs inside .venv-infra: parses each path given on the command line (or, for "-", stdin) and prints
# {path: {"ok": parsed JSON} | {"error": message}}.
PARSE_SCRIPT = """
import json, pathlib, sys
from pycep import BicepParser
parser = BicepParser()
out = {}
for arg in sys.argv[1:]:
    try:
        text = sys.stdin.read() if arg == "-" else pathlib.Path(arg).read_text()
        out[arg] = {"ok": parser.parse(text=text)}
    except Exception as exc:
        out[arg] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out, default=str))
"""


def infra_tool(name: str) -> Path:
    tool = INFRA_BIN / name
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run `make install-infra` (requirements-infra.txt)")
    return tool


def parse_bicep(paths: list[str], stdin: str = "") -> dict[str, Any]:
    done = subprocess.run(
        [str(infra_tool("python")), "-c", PARSE_SCRIPT, *paths],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    """Every .bicep file under infra/bicep, parsed once, keyed by its path relative to infra/bicep."""
    results = parse_bicep([str(p) for p in BICEP_FILES])
    return {str(Path(k).relative_to(BICEP)): v for k, v in results.items()}


def tree(parsed: dict[str, Any], name: str) -> dict[str, Any]:
    result = parsed[name]
    assert "ok" in result, f"{name} does not parse: {result.get('error')}"
    value: dict[str, Any] = result["ok"]
    return value


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """checkov over infra/bicep. --skip-download keeps it offline (otherwise it calls a cloud API)."""
    done = subprocess.run(
        [
            str(infra_tool("checkov")),
            "--directory",
            str(BICEP),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    # Exit code 1 means failed checks, which the tests below report one by one.
    assert done.returncode in (0, 1), f"checkov crashed ({done.returncode}): {done.stderr[-2000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_there_are_bicep_files() -> None:
    assert {"main.bicep", "modules/functionapp.bicep", "modules/rbac.bicep"} <= set(BICEP_IDS)


@pytest.mark.parametrize("name", BICEP_IDS)
def test_bicep_file_parses(parsed: dict[str, Any], name: str) -> None:
    assert "ok" in parsed[name], f"{name}: {parsed[name].get('error')}"


def test_parser_rejects_broken_bicep() -> None:
    result = parse_bicep(["-"], stdin="resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n")
    assert "error" in result["-"]


@pytest.mark.parametrize("name", BICEP_IDS)
def test_every_parameter_is_described(parsed: dict[str, Any], name: str) -> None:
    undescribed = [
        param
        for param, spec in tree(parsed, name).get("parameters", {}).items()
        if not any(d.get("type") == "description" and d.get("argument") for d in spec["decorators"])
    ]
    assert undescribed == []


def test_parameters_file_sets_exactly_the_template_parameters(parsed: dict[str, Any]) -> None:
    text = (BICEP / "main.bicepparam").read_text()
    assert text.count("using './main.bicep'") == 1
    in_file = set(re.findall(r"^param (\w+) =", text, flags=re.MULTILINE))
    assert in_file == set(tree(parsed, "main.bicep")["parameters"])


def test_checkov_parses_every_file(checkov_report: dict[str, Any]) -> None:
    assert checkov_report["summary"]["parsing_errors"] == 0


def test_checkov_scans_resources(checkov_report: dict[str, Any]) -> None:
    assert checkov_report["summary"]["passed"] > 0


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']} {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []


def test_every_skipped_check_gives_a_reason(checkov_report: dict[str, Any]) -> None:
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in checkov_report["results"]["skipped_checks"]
        if len(c["check_result"].get("suppress_comment", "")) < 30
    ]
    assert unexplained == []


def inline_skips() -> set[tuple[str, str]]:
    """(file relative to infra/bicep, check id) for every `checkov:skip=` comment in the Bicep."""
    return {
        (str(path.relative_to(BICEP)), check)
        for path in BICEP_FILES
        for check in re.findall(r"checkov:skip=([A-Z0-9_]+):", path.read_text())
    }


def test_every_skip_comment_is_inside_a_resource_and_used(checkov_report: dict[str, Any]) -> None:
    """checkov honours a skip only inside the resource's lines: a stray comment would not skip."""
    used = {(c["file_path"].lstrip("/"), c["check_id"]) for c in checkov_report["results"]["skipped_checks"]}
    assert inline_skips() == used


def test_no_checkov_config_skips_checks_globally() -> None:
    configs = [ROOT / ".checkov.yaml", ROOT / ".checkov.yml", BICEP / ".checkov.yaml", BICEP / ".checkov.yml"]
    assert [str(c) for c in configs if c.exists()] == []


def resources(parsed: dict[str, Any], name: str) -> dict[str, Any]:
    """A module's resources with any `if (...)` condition unwrapped."""
    out = {}
    for symbol, spec in tree(parsed, name).get("resources", {}).items():
        config = spec["config"]
        if set(config) == {"condition", "config"}:
            config = config["config"]
        out[symbol] = {**spec, "config": config}
    return out


def dig(value: Any, path: str) -> Any:
    for key in path.split("."):
        value = value[key]
    return value


# Secure settings the deployment depends on; checkov covers some, not all, of them.
SECURE_SETTINGS = [
    ("modules/storage.bicep", "account", "properties.allowSharedKeyAccess", False),
    ("modules/storage.bicep", "account", "properties.allowBlobPublicAccess", False),
    ("modules/storage.bicep", "account", "properties.minimumTlsVersion", "TLS1_2"),
    ("modules/lake.bicep", "account", "properties.isHnsEnabled", True),
    ("modules/lake.bicep", "account", "properties.allowSharedKeyAccess", False),
    ("modules/lake.bicep", "account", "properties.allowBlobPublicAccess", False),
    ("modules/lake.bicep", "account", "properties.minimumTlsVersion", "TLS1_2"),
    ("modules/salts.bicep", "account", "properties.allowSharedKeyAccess", False),
    ("modules/salts.bicep", "account", "properties.allowBlobPublicAccess", False),
    ("modules/salts.bicep", "account", "properties.minimumTlsVersion", "TLS1_2"),
    # A destroyed salt must be gone: nothing in the salt account keeps deleted or overwritten blobs.
    ("modules/salts.bicep", "blobService", "properties.deleteRetentionPolicy.enabled", False),
    ("modules/salts.bicep", "blobService", "properties.containerDeleteRetentionPolicy.enabled", False),
    ("modules/salts.bicep", "blobService", "properties.isVersioningEnabled", False),
    ("modules/salts.bicep", "blobService", "properties.changeFeed.enabled", False),
    ("modules/salts.bicep", "blobService", "properties.restorePolicy.enabled", False),
    ("modules/eventhubs.bicep", "namespace", "properties.disableLocalAuth", True),
    ("modules/eventhubs.bicep", "namespace", "properties.minimumTlsVersion", "1.2"),
    ("modules/keyvault.bicep", "vault", "properties.enableRbacAuthorization", True),
    ("modules/keyvault.bicep", "vault", "properties.enablePurgeProtection", True),
    ("modules/monitoring.bicep", "appInsights", "properties.DisableLocalAuth", True),
    ("modules/functionapp.bicep", "plan", "sku.name", "FC1"),
    ("modules/functionapp.bicep", "site", "identity.type", "UserAssigned"),
    ("modules/functionapp.bicep", "site", "properties.httpsOnly", True),
    ("modules/functionapp.bicep", "site", "properties.functionAppConfig.runtime.name", "python"),
    ("modules/functionapp.bicep", "site", "properties.functionAppConfig.runtime.version", "3.11"),
    (
        "modules/functionapp.bicep",
        "site",
        "properties.functionAppConfig.deployment.storage.authentication.type",
        "UserAssignedIdentity",
    ),
    ("modules/functionapp.bicep", "ftpCredentials", "properties.allow", False),
    ("modules/functionapp.bicep", "scmCredentials", "properties.allow", False),
]


@pytest.mark.parametrize(("name", "symbol", "path", "expected"), SECURE_SETTINGS)
def test_secure_setting(parsed: dict[str, Any], name: str, symbol: str, path: str, expected: Any) -> None:
    assert dig(resources(parsed, name)[symbol]["config"], path) == expected


def test_event_expiry_takes_the_firehose_cut_records_along_after_the_hubs_retention() -> None:
    """A cut record is read again when the hub redelivers its messages or a replay re-sends their
    events, so the rule that expires events/ (eventRetentionDays) has a twin for the prefix the
    firehose writes its records under, kept past the hub's retention, and both only when set."""
    text = (BICEP / "modules" / "lake.bicep").read_text()
    rules = text[text.index("var eventRules") : text.index("resource lifecycle")]
    events, cuts = rules.split("name: 'expire-cuts'")
    assert rules.startswith("var eventRules = eventRetentionDays > 0 ? [")
    assert rules.rstrip().endswith("] : []")
    assert f"'${{lakeFilesystemName}}/{EVENTS}/'" in events
    assert "daysAfterModificationGreaterThan: eventRetentionDays" in events
    assert f"'${{lakeFilesystemName}}/{CUTS_PREFIX}'" in cuts
    assert "daysAfterModificationGreaterThan: cutRetentionDays" in cuts
    assert "], eventRules)" in text
    main = (BICEP / "main.bicep").read_text()
    cut_days = "max(eventRetentionDays, eventHubRetentionHours / 24 + 2)"
    assert f"cutRetentionDays: eventRetentionDays == 0 ? 0 : {cut_days}" in main


# Each resource the issue asks diagnostics for, by module and symbol.
DIAGNOSED = [
    ("modules/eventhubs.bicep", "namespace"),
    ("modules/storage.bicep", "blobService"),
    ("modules/lake.bicep", "blobService"),
    ("modules/lake.bicep", "tableService"),
    ("modules/salts.bicep", "blobService"),
    ("modules/functionapp.bicep", "site"),
    ("modules/keyvault.bicep", "vault"),
]


@pytest.mark.parametrize(("name", "symbol"), DIAGNOSED)
def test_resource_sends_diagnostics_to_log_analytics(parsed: dict[str, Any], name: str, symbol: str) -> None:
    settings = [
        spec["config"]
        for spec in resources(parsed, name).values()
        if spec["type"] == "Microsoft.Insights/diagnosticSettings" and spec["config"].get("scope") == symbol
    ]
    assert [s["properties"]["workspaceId"] for s in settings] == ["workspaceId"]


def role_assignments(parsed: dict[str, Any]) -> dict[str, Any]:
    return {
        symbol: spec["config"]
        for symbol, spec in resources(parsed, "modules/rbac.bicep").items()
        if spec["type"] == "Microsoft.Authorization/roleAssignments"
    }


# Every role assignment of rbac.bicep and the resource it is scoped to: an assignment missing here (or
# scoped elsewhere) fails, so a new grant is reviewed rather than left at resource-group scope.
ROLE_SCOPES = {
    "collectorSends": "hub",
    "captureReceives": "hub",
    "hostOwnsStorage": "hostStorage",
    "captureWritesLake": "lakeContainer",
    "collectorKeepsSalts": "saltContainer",
    "captureKeepsState": "stateTable",
    "metricsKeepsCounters": "metricsTable",
    "linksKeepsRegistry": "linksTable",
    "linksSpoolsClicks": "linksSpoolContainer",
    "firehoseKeepsRetries": "lakeQueueService",
    "appPublishesTelemetry": "appInsights",
    "appReadsRegistry": "vault",
    "operatorManagesRegistry": "vault",
    "operatorReadsLake": "lakeContainer",
}


@pytest.mark.parametrize(("symbol", "scope"), ROLE_SCOPES.items())
def test_role_assignment_is_scoped_to_the_resource(parsed: dict[str, Any], symbol: str, scope: str) -> None:
    assert role_assignments(parsed)[symbol].get("scope") == scope


def test_every_role_assignment_is_in_the_scope_table(parsed: dict[str, Any]) -> None:
    assert sorted(role_assignments(parsed)) == sorted(ROLE_SCOPES)


def role_comments() -> dict[str, str]:
    """{symbol: role named by the comment right above the assignment (its first line)}."""
    text = (BICEP / "modules" / "rbac.bicep").read_text()
    pattern = (
        r"^// (?P<role>[A-Z][A-Za-z ]+?) on [^\n]*\n(?://[^\n]*\n)*"
        r"resource (?P<symbol>\w+) 'Microsoft.Authorization/roleAssignments@"
    )
    return {m["symbol"]: m["role"] for m in re.finditer(pattern, text, flags=re.MULTILINE)}


def test_every_role_assignment_has_a_comment_naming_its_role(parsed: dict[str, Any]) -> None:
    assert set(role_comments()) == set(role_assignments(parsed))


def test_role_comments_name_the_role_actually_assigned() -> None:
    """`// Event Hubs Data Sender on …` must sit above an assignment of roles.eventHubsDataSender."""
    text = (BICEP / "modules" / "rbac.bicep").read_text()
    mismatched = []
    for symbol, role in role_comments().items():
        key = role.replace(" ", "")
        key = key[0].lower() + key[1:]
        block = text.split(f"resource {symbol} ", 1)[1].split("\n}\n", 1)[0]
        if f"roles.{key})" not in block:
            mismatched.append(f"{symbol}: comment says {role}")
    assert mismatched == []


def funcignore_excludes(path: str) -> bool:
    """Whether a .funcignore pattern (gitignore rules, no negations here) matches path or a parent of it.

    As in gitignore, a pattern with a slash at its start or in its middle is anchored to the root; one
    without (a trailing slash aside) matches a name at any depth: `pyproject.toml` would also drop
    native/avro_rows/pyproject.toml."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in (ROOT / ".funcignore").read_text().splitlines():
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        pattern = raw.strip("/")
        anchored = raw.startswith("/") or "/" in pattern
        if anchored and any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
        if not anchored and any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


@pytest.mark.parametrize(
    "path",
    [
        "function_app.py",
        "host.json",
        "requirements.txt",
        "functions/collect.py",
        "workers/settings.py",
        "workers/enrich/data/crawler-user-agents.json",
        "schemas/event.schema.json",
        "tracker/dist/hubcap.min.js",
        "native/avro_rows/hubcap_avro_rows.c",
        "native/avro_rows/setup.py",
        "native/avro_rows/pyproject.toml",
        "native/lookup3/hubcap_lookup3.c",
        "native/lookup3/setup.py",
        "native/lookup3/pyproject.toml",
    ],
)
def test_deployment_package_keeps(path: str) -> None:
    assert not funcignore_excludes(path)


@pytest.mark.parametrize(
    "path",
    [
        "node_modules/azurite/package.json",
        ".venv/bin/python",
        "tests/conftest.py",
        "infra/bicep/main.bicep",
        "pyproject.toml",
        "Makefile",
        "native/avro_rows/build/lib/hubcap_avro_rows.so",
        "native/lookup3/build/lib/hubcap_lookup3.so",
        "workers/__pycache__/settings.cpython-311.pyc",
    ],
)
def test_deployment_package_leaves_out(path: str) -> None:
    assert funcignore_excludes(path)
