"""requirements.txt is what the Function App deploys: every package the app imports, nothing else.

The app is function_app.py, functions/ and workers/ except workers/cli.py, a tool for people that runs
from the dev install (requirements-dev.txt) and imports its extras (duckdb, tqdm) lazily. A few deployed
packages are used without an import of their own; each is listed with the reason.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_FILES = [
    ROOT / "function_app.py",
    *sorted((ROOT / "functions").rglob("*.py")),
    *sorted(p for p in (ROOT / "workers").rglob("*.py") if p.name != "cli.py"),
]
LOCAL_PACKAGES = {"workers", "functions"}
# Namespace packages: how many leading components name the distribution (azure.eventhub is
# azure-eventhub, azure.storage.blob is azure-storage-blob).
NAMESPACE_DEPTH = {"azure": 2, "azure.storage": 3, "backports": 2}

USED_WITHOUT_IMPORT = {
    "aiohttp": "the transport of azure-core's aio clients (blob, identity), which do not declare it",
    "cramjam": "fastavro's snappy codec, the lake's default (HUBCAP_AVRO_CODEC)",
    "backports-zstd": "fastavro's zstandard codec on Python < 3.14",
    "ua-parser-builtins": "the regexes ua-parser loads at run time",
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("./"):  # a package of this repository: its pyproject names it
            project = tomllib.loads((ROOT / line / "pyproject.toml").read_text())["project"]
            names.add(normalized(project["name"]))
        elif line and not line.startswith("-"):
            names.add(normalized(re.split(r"[\[=<>;! ]", line, maxsplit=1)[0]))
    return names


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def module_key(module: str) -> str:
    parts = module.split(".")
    depth = NAMESPACE_DEPTH.get(".".join(parts[:2])) or NAMESPACE_DEPTH.get(parts[0], 1)
    return ".".join(parts[:depth])


def distribution_of_module() -> dict[str, str]:
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if file.suffix in {".py", ".so"} and file.parts[0] not in {"..", "bin"}:
                # An extension module's file name carries its ABI: name.cpython-311-x86_64-linux-gnu.so
                stem = file.name.split(".", 1)[0]
                module = ".".join((*file.parts[:-1], stem)).removesuffix(".__init__")
                owners.setdefault(module_key(module), normalized(dist.metadata["Name"]))
    return owners


def third_party_imports() -> dict[str, set[str]]:
    """{module key: files importing it} for the deployed code, leaving out the stdlib and local packages."""
    found: dict[str, set[str]] = {}
    for path in APP_FILES:
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in LOCAL_PACKAGES or top == "__future__":
                continue
            found.setdefault(module_key(module), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_package_the_app_imports_is_deployed() -> None:
    owners = distribution_of_module()
    deployed = requirement_names(ROOT / "requirements.txt")
    missing = {
        f"{owners.get(module, module)} (imported as {module} by {', '.join(sorted(files))})"
        for module, files in third_party_imports().items()
        if owners.get(module) not in deployed
    }
    assert not missing, f"imported by the Function App but not in requirements.txt: {sorted(missing)}"


def test_every_deployed_package_is_used_by_the_app() -> None:
    owners = distribution_of_module()
    used = {owners.get(module) for module in third_party_imports()} | set(USED_WITHOUT_IMPORT)
    unused = requirement_names(ROOT / "requirements.txt") - used
    assert not unused, f"in requirements.txt but the Function App never uses them: {sorted(unused)}"


@pytest.mark.parametrize("package", sorted(USED_WITHOUT_IMPORT))
def test_a_package_used_without_an_import_is_deployed(package: str) -> None:
    assert package in requirement_names(ROOT / "requirements.txt")
