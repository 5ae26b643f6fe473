"""The code's settings, the Bicep app settings and local.settings.example.json name the same things.

SETTING_NAMES is read at collection time, so a setting added to workers/settings.py fails here until
the Bicep and the example file have it too. Names the code does not read are allowed only when listed
below with who reads them, and each listed name must still be in use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workers.settings import SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_APP_BICEP = ROOT / "infra" / "bicep" / "modules" / "functionapp.bicep"
LOCAL_SETTINGS = ROOT / "local.settings.example.json"

# Read by the Functions host, the platform or a library on the code's behalf, never by workers/settings.py.
# name -> who reads it, and, where the reader depends on our code, (file pattern, string) whose presence
# shows it still does.
Reader = tuple[str, tuple[str, str] | None]
BICEP_PLATFORM_SETTINGS: dict[str, Reader] = {
    # Identity-based AzureWebJobsStorage: the host's leases, checkpoints and timers.
    "AzureWebJobsStorage__accountName": ("Functions host", None),
    "AzureWebJobsStorage__credential": ("Functions host", None),
    "AzureWebJobsStorage__clientId": ("Functions host", None),
    # Telemetry; with local auth off, the host authenticates with the managed identity.
    "APPLICATIONINSIGHTS_CONNECTION_STRING": ("Functions host", None),
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": ("Functions host", None),
    # The Event Hubs trigger (the host's extension, not workers/) picks the user-assigned identity.
    "EventHubConnection__credential": (
        "Event Hubs trigger",
        ("functions/*.py", 'connection="EventHubConnection"'),
    ),
    "EventHubConnection__clientId": (
        "Event Hubs trigger",
        ("functions/*.py", 'connection="EventHubConnection"'),
    ),
    # azure-identity's DefaultAzureCredential, which workers/ uses, picks the user-assigned identity.
    "AZURE_CLIENT_ID": ("azure-identity", ("workers/**/*.py", "DefaultAzureCredential(")),
}
LOCAL_PLATFORM_SETTINGS: dict[str, Reader] = {
    # Host storage on Azurite; in Azure, AzureWebJobsStorage__* (identity-based) replace it.
    "AzureWebJobsStorage": ("Functions host", None),
    # `func start` needs it; on Flex Consumption the runtime is a site property and the setting is refused.
    "FUNCTIONS_WORKER_RUNTIME": ("Functions host", None),
}

APP_SETTINGS_START = "var appSettings = {"
KEY_LINE = re.compile(r"^\s*'?(?P<key>[A-Za-z_][A-Za-z0-9_]*)'?\s*:\s*\S")


def bicep_app_settings() -> list[str]:
    """Keys of the `var appSettings = { … }` object that becomes the site's app settings.

    The object must stay flat, one `key: value` per line (comments allowed), so any other line fails
    here instead of being skipped silently."""
    text = FUNCTION_APP_BICEP.read_text()
    assert text.count(APP_SETTINGS_START) == 1, f"{FUNCTION_APP_BICEP} must declare {APP_SETTINGS_START!r}"
    body = text.split(APP_SETTINGS_START, 1)[1].split("\n}\n", 1)[0]
    keys = []
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        match = KEY_LINE.match(line)
        assert match, f"not a flat `key: value` line in appSettings: {line!r}"
        keys.append(match["key"])
    return keys


def local_settings() -> list[str]:
    values: dict[str, str] = json.loads(LOCAL_SETTINGS.read_text())["Values"]
    return list(values)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_code_setting_is_a_bicep_app_setting(name: str) -> None:
    assert name in bicep_app_settings()


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_code_setting_is_in_local_settings_example(name: str) -> None:
    assert name in local_settings()


def test_bicep_sets_nothing_the_code_or_platform_does_not_read() -> None:
    assert set(bicep_app_settings()) - set(SETTING_NAMES) - set(BICEP_PLATFORM_SETTINGS) == set()


def test_local_settings_example_sets_nothing_the_code_or_host_does_not_read() -> None:
    assert set(local_settings()) - set(SETTING_NAMES) - set(LOCAL_PLATFORM_SETTINGS) == set()


def test_bicep_sets_each_setting_once() -> None:
    names = bicep_app_settings()
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


@pytest.mark.parametrize("name", sorted(BICEP_PLATFORM_SETTINGS))
def test_allow_listed_bicep_setting_is_set(name: str) -> None:
    assert name in bicep_app_settings()


@pytest.mark.parametrize("name", sorted(LOCAL_PLATFORM_SETTINGS))
def test_allow_listed_local_setting_is_set(name: str) -> None:
    assert name in local_settings()


READERS_IN_OUR_CODE = sorted(
    (name, evidence)
    for name, (_, evidence) in {**BICEP_PLATFORM_SETTINGS, **LOCAL_PLATFORM_SETTINGS}.items()
    if evidence
)


@pytest.mark.parametrize(("name", "evidence"), READERS_IN_OUR_CODE)
def test_allow_listed_setting_still_has_its_reader(name: str, evidence: tuple[str, str]) -> None:
    """E.g. AZURE_CLIENT_ID is only honest while workers/ authenticates with DefaultAzureCredential."""
    pattern, marker = evidence
    assert any(marker in path.read_text() for path in ROOT.glob(pattern)), (
        f"{name}: no {marker!r} in {pattern}"
    )


def test_allow_lists_do_not_shadow_code_settings() -> None:
    assert set(SETTING_NAMES) & (set(BICEP_PLATFORM_SETTINGS) | set(LOCAL_PLATFORM_SETTINGS)) == set()


# Tuning settings are spelled out in three places (main.bicep defaults, main.bicepparam and the example
# file) so that operators see them; all three must say what the code does when the setting is unset.
CODE_DEFAULTS = Settings()
TUNING = [
    ("HUBCAP_TRUSTED_HOPS", "trustedHops", str(CODE_DEFAULTS.trusted_hops)),
    ("HUBCAP_TRUSTED_PROXIES", "trustedProxies", ",".join(CODE_DEFAULTS.trusted_proxies)),
    ("HUBCAP_MAX_BODY_BYTES", "maxBodyBytes", str(CODE_DEFAULTS.max_body_bytes)),
    ("HUBCAP_SESSION_TIMEOUT_S", "sessionTimeoutSeconds", str(CODE_DEFAULTS.session_timeout_s)),
    ("HUBCAP_DEDUP_WINDOW", "dedupWindow", str(CODE_DEFAULTS.dedup_window)),
    ("HUBCAP_AVRO_CODEC", "avroCodec", CODE_DEFAULTS.avro_codec),
    ("HUBCAP_LOG_LEVEL", "logLevel", CODE_DEFAULTS.log_level),
]


def bicep_value(text: str, pattern: str) -> str:
    match = re.search(pattern, text, flags=re.MULTILINE)
    assert match, f"no match for {pattern!r}"
    return match[1].strip().strip("'")


def test_code_defaults_are_what_settings_reads_from_an_empty_environment() -> None:
    assert Settings.from_env({}) == CODE_DEFAULTS


@pytest.mark.parametrize(("name", "param", "default"), TUNING)
def test_local_settings_example_tuning_is_the_code_default(name: str, param: str, default: str) -> None:
    values = json.loads(LOCAL_SETTINGS.read_text())["Values"]
    assert values[name] == default


@pytest.mark.parametrize(("name", "param", "default"), TUNING)
def test_bicep_default_is_the_code_default(name: str, param: str, default: str) -> None:
    text = (ROOT / "infra" / "bicep" / "main.bicep").read_text()
    assert bicep_value(text, rf"^param {param} \w+ = (.+)$") == default


@pytest.mark.parametrize(("name", "param", "default"), TUNING)
def test_bicepparam_tuning_is_the_code_default(name: str, param: str, default: str) -> None:
    text = (ROOT / "infra" / "bicep" / "main.bicepparam").read_text()
    assert bicep_value(text, rf"^param {param} = (.+)$") == default
