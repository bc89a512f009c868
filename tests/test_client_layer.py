"""remediations.azure, the client layer, without a network: configuration, credentials, the SDK clients it
builds (inspected, never mocked), the read-only allow-list, and what counts as transient."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.utils import CaseInsensitiveDict
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

from remediations.azure import (
    CLOUDS,
    Azure,
    AzureConfig,
    _NoCredential,
    is_transient,
    read_only_allows,
    retry_after,
)
from remediations.errors import BadInput
from remediations.scripts import SCRIPTS

SUB = "00000000-0000-0000-0000-000000000000"
ARM = "https://management.azure.com"
CLIENTS = ("compute", "network", "backup", "health", "automation")
# Environment variables that would make ManagedIdentityCredential pick another source than IMDS.
_MI_ENV = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT",
           "MSI_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE")


def mentions(obj: Any, value: str, depth: int = 12, seen: set[int] | None = None) -> bool:
    """Whether `value` appears in any string among an object's attributes (configuration, without private names)."""
    seen = set() if seen is None else seen
    if depth < 0 or id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, str):
        return value in obj
    if isinstance(obj, dict):
        return any(mentions(x, value, depth - 1, seen) for x in (*obj.keys(), *obj.values()))
    if isinstance(obj, (list, tuple, set)):
        return any(mentions(x, value, depth - 1, seen) for x in obj)
    if hasattr(obj, "__dict__"):
        return mentions(vars(obj), value, depth - 1, seen)
    return False


# --- AzureConfig ------------------------------------------------------------------------------
@pytest.mark.parametrize(("endpoint", "loopback"), [
    ("https://127.0.0.1:8443", True),
    ("https://127.0.0.1", True),
    ("https://127.12.34.56:1", True),
    ("https://[::1]:8443", True),
    ("https://localhost:8443", True),
    ("https://LOCALHOST", True),
    ("https://localhost.evil.com", False),
    ("https://127.0.0.1.evil.com", False),
    ("https://10.0.0.1", False),
    ("https://128.0.0.1", False),
    ("https://[::2]", False),
    ("https://management.azure.com", False),
])
def test_loopback_only_for_this_machine(endpoint: str, loopback: bool) -> None:
    assert AzureConfig(subscription=SUB, arm_endpoint=endpoint).loopback is loopback


def test_the_public_cloud_is_not_loopback() -> None:
    assert AzureConfig(subscription=SUB).loopback is False


@pytest.mark.parametrize(("cloud", "endpoint"), [
    ("AzureCloud", "https://management.azure.com"),
    ("AzureChinaCloud", "https://management.chinacloudapi.cn"),
    ("AzureUSGovernment", "https://management.usgovcloudapi.net"),
])
def test_endpoint_per_cloud(cloud: Any, endpoint: str) -> None:
    assert AzureConfig(subscription=SUB, cloud=cloud).endpoint == endpoint
    assert CLOUDS[cloud][0] == endpoint


def test_custom_arm_endpoint_wins_and_loses_its_trailing_slash() -> None:
    cfg = AzureConfig(subscription=SUB, cloud="AzureChinaCloud", arm_endpoint="https://arm.contoso.example/")
    assert cfg.endpoint == "https://arm.contoso.example"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8443", "http://management.azure.com", "ftp://x", "https://",
                                      "management.azure.com"])
def test_azure_refuses_non_https_endpoints(endpoint: str) -> None:
    with pytest.raises(BadInput, match="https"):
        Azure(AzureConfig(subscription=SUB, arm_endpoint=endpoint))


def test_azure_refuses_an_unknown_cloud() -> None:
    with pytest.raises(BadInput, match="unknown cloud 'AzureMars'"):
        Azure(AzureConfig(subscription=SUB, cloud="AzureMars"))  # type: ignore[arg-type]


# --- credentials ------------------------------------------------------------------------------
@pytest.fixture
def clean_identity_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _MI_ENV:
        monkeypatch.delenv(name, raising=False)


def test_loopback_takes_the_no_credential_stand_in() -> None:
    cred = Azure(AzureConfig(subscription=SUB, arm_endpoint="https://127.0.0.1:9")).credential()
    assert isinstance(cred, _NoCredential)
    with pytest.raises(RuntimeError, match="no credential"):
        cred.get_token(f"{ARM}/.default")


@pytest.mark.parametrize("credential", ["default", "managed-identity"])
def test_loopback_ignores_the_credential_setting(credential: Any) -> None:
    cfg = AzureConfig(subscription=SUB, arm_endpoint="https://localhost:9", credential=credential)
    assert isinstance(Azure(cfg).credential(), _NoCredential)


@pytest.mark.parametrize("endpoint", [None, "https://localhost.evil.com", "https://10.0.0.1"])
def test_non_loopback_never_gets_the_stand_in(clean_identity_env: None, endpoint: str | None) -> None:
    cred = Azure(AzureConfig(subscription=SUB, arm_endpoint=endpoint)).credential()
    assert isinstance(cred, DefaultAzureCredential)


def test_managed_identity(clean_identity_env: None) -> None:
    cred = Azure(AzureConfig(subscription=SUB, credential="managed-identity")).credential()
    assert isinstance(cred, ManagedIdentityCredential)
    assert not mentions(cred, "11111111-2222-3333-4444-555555555555")


def test_managed_identity_with_a_client_id(clean_identity_env: None) -> None:
    client_id = "11111111-2222-3333-4444-555555555555"
    cred = Azure(AzureConfig(subscription=SUB, credential="managed-identity", client_id=client_id)).credential()
    assert isinstance(cred, ManagedIdentityCredential)
    assert mentions(cred, client_id)


@pytest.mark.parametrize(("cloud", "authority"), [(c, a) for c, (_, a) in CLOUDS.items()])
def test_default_credential_per_cloud(clean_identity_env: None, cloud: Any, authority: str) -> None:
    cred = Azure(AzureConfig(subscription=SUB, cloud=cloud)).credential()
    assert isinstance(cred, DefaultAzureCredential)
    if cloud != "AzureCloud":  # the public authority is the default, so it need not be stored
        assert mentions(cred, authority)


def test_an_explicit_credential_is_used_as_given() -> None:
    given = object()
    assert Azure(AzureConfig(subscription=SUB), credential=given).credential() is given


# --- the SDK clients it builds ----------------------------------------------------------------
@pytest.mark.parametrize("name", CLIENTS)
@pytest.mark.parametrize(("cloud", "endpoint"), [(c, e) for c, (e, _) in CLOUDS.items()])
def test_cloud_clients(clean_identity_env: None, name: str, cloud: Any, endpoint: str) -> None:
    az = Azure(AzureConfig(subscription=SUB, cloud=cloud))
    client = getattr(az, name)
    cfg = client._config
    assert cfg.retry_policy.total_retries == 0  # tenacity owns retries
    assert cfg.polling_interval == 5.0
    assert cfg.credential_scopes == [f"{endpoint}/.default"]
    assert isinstance(cfg.authentication_policy, ARMChallengeAuthenticationPolicy)
    assert cfg.authentication_policy._scopes == (f"{endpoint}/.default",)
    assert isinstance(cfg.credential, DefaultAzureCredential)
    assert cfg.base_url == endpoint
    assert getattr(az, name) is client  # built once


@pytest.mark.parametrize("name", CLIENTS)
def test_loopback_clients(name: str) -> None:
    az = Azure(AzureConfig(subscription=SUB, arm_endpoint="https://127.0.0.1:9/", ca_bundle="/tmp/armsim-ca.pem",
                           read_timeout=12))
    client = getattr(az, name)
    cfg = client._config
    assert cfg.retry_policy.total_retries == 0
    assert cfg.polling_interval == 0.05
    assert cfg.credential_scopes == ["https://127.0.0.1:9/.default"]
    assert type(cfg.authentication_policy) is SansIOHTTPPolicy  # no bearer token is ever requested
    assert isinstance(cfg.credential, _NoCredential)
    transport = client._client._pipeline._transport.connection_config
    assert (transport.verify, transport.read_timeout) == ("/tmp/armsim-ca.pem", 12)
    assert cfg.base_url == "https://127.0.0.1:9"


def test_custom_endpoint_is_its_own_audience(clean_identity_env: None) -> None:
    az = Azure(AzureConfig(subscription=SUB, arm_endpoint="https://arm.contoso.example"))
    assert az.compute._config.credential_scopes == ["https://arm.contoso.example/.default"]


@pytest.mark.parametrize("endpoint", [None, "https://127.0.0.1:9"])
def test_an_explicit_polling_interval(clean_identity_env: None, endpoint: str | None) -> None:
    az = Azure(AzureConfig(subscription=SUB, arm_endpoint=endpoint, polling_interval=2.5))
    assert all(getattr(az, n)._config.polling_interval == 2.5 for n in CLIENTS)


# --- read-only allow-list ---------------------------------------------------------------------
VM = f"{ARM}/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
API = "?api-version=2026-04-01"
READ_ONLY = sorted(s.id for s in SCRIPTS.values() if not s.mutating)
MUTATING = sorted(s.id for s in SCRIPTS.values() if s.mutating)


def body(script_id: str, *, extra: list[str] | None = None, lines: list[str] | None = None,
         command: str | None = None) -> bytes:
    s = SCRIPTS[script_id]
    return json.dumps({"commandId": command or s.command_id,
                       "script": (s.text.splitlines() if lines is None else lines) + (extra or [])}).encode()


@pytest.mark.parametrize(("method", "url", "allowed"), [
    ("GET", f"{VM}{API}", True),
    ("get", f"{VM}/instanceView{API}", True),
    ("HEAD", f"{VM}{API}", True),
    ("PUT", f"{VM}{API}", False),
    ("PATCH", f"{VM}{API}", False),
    ("DELETE", f"{VM}/extensions/VMSnapshotLinux{API}", False),
    ("POST", f"{ARM}/subscriptions/{SUB}/providers/Microsoft.RecoveryServices/locations/eastus/backupStatus{API}",
     True),
    ("POST", f"{ARM}/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic"
             f"/effectiveNetworkSecurityGroups{API}", True),
    ("POST", f"{VM}/powerOff{API}", False),
    ("POST", f"{VM}/restart{API}", False),
    ("POST", f"{VM}/deallocate{API}", False),
    ("POST", f"{VM}/runCommand{API}", False),  # no body: nothing proves it harmless
    ("POST", f"{ARM}/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
             "/backupFabrics/Azure/protectionContainers/c/protectedItems/i/backup" + API, False),
])
def test_read_only_allows_by_method_and_path(method: str, url: str, allowed: bool) -> None:
    assert read_only_allows(method, url) is allowed


@pytest.mark.parametrize("script_id", READ_ONLY)
def test_run_command_of_a_read_only_scripts_exact_text_is_allowed(script_id: str) -> None:
    assert read_only_allows("POST", f"{VM}/runCommand{API}", body(script_id))
    assert read_only_allows("POST", f"{VM}/runCommand{API}", body(script_id).decode())


@pytest.mark.parametrize("script_id", READ_ONLY)
def test_run_command_is_refused_when_the_text_is_not_exactly_the_script(script_id: str) -> None:
    url = f"{VM}/runCommand{API}"
    s = SCRIPTS[script_id]
    id_line = next(line for line in s.text.splitlines() if f"runbooks-script: {script_id}" in line)
    assert not read_only_allows("POST", url, body(script_id, extra=["reboot"]))  # right id line, extra commands
    assert not read_only_allows("POST", url, body(script_id, lines=[id_line, "reboot"]))
    assert not read_only_allows("POST", url, body(script_id, lines=[id_line]))
    assert not read_only_allows("POST", url, body(script_id, lines=["rm -rf /", *s.text.splitlines()]))
    other = "RunPowerShellScript" if s.command_id == "RunShellScript" else "RunShellScript"
    assert not read_only_allows("POST", url, body(script_id, command=other))


@pytest.mark.parametrize("script_id", MUTATING)
def test_run_command_of_a_mutating_script_is_refused(script_id: str) -> None:
    assert not read_only_allows("POST", f"{VM}/runCommand{API}", body(script_id))


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"script": "not a list"}', b"{}", b'"text"'])
def test_run_command_with_a_malformed_body_is_refused(raw: bytes) -> None:
    assert not read_only_allows("POST", f"{VM}/runCommand{API}", raw)


# --- transient errors and Retry-After ---------------------------------------------------------
class FakeResponse:
    """Just enough of an HTTP response for azure-core's HttpResponseError to parse (not an SDK client)."""

    def __init__(self, status: int, error: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        self.status_code = status
        self.reason = "reason"
        self.headers = CaseInsensitiveDict(headers or {})
        self.content_type = "application/json"
        self.request = None
        self._raw = json.dumps({"error": error}).encode() if error else b""

    def text(self, encoding: str | None = None) -> str:
        return self._raw.decode()

    def body(self) -> bytes:
        return self._raw


def http_error(status: int, code: str = "", message: str = "", details: list[dict[str, str]] | None = None,
               headers: dict[str, str] | None = None) -> HttpResponseError:
    error: dict[str, Any] | None = {"code": code, "message": message} if code else None
    if error is not None and details:
        error["details"] = details
    return HttpResponseError(response=FakeResponse(status, error, headers))


@pytest.mark.parametrize(("exc", "transient"), [
    (http_error(429, "SubscriptionRequestsThrottled", "Too many requests"), True),
    (http_error(429, "RetryableError", "A retryable error occurred.",
                [{"code": "RetryableErrorDueToAnotherOperation", "message": "blocked"}]), True),
    (http_error(408), True),
    (http_error(500, "InternalServerError", "boom"), True),
    (http_error(502), True),
    (http_error(503, "ServiceUnavailable", "later"), True),
    (http_error(504), True),
    (http_error(409, "AnotherOperationInProgress", "Another operation is in progress on the resource."), True),
    (http_error(409, "Conflict", "Run command extension execution is in progress. Please wait for completion "
                                 "before invoking a run command."), True),
    (http_error(409, "OperationNotAllowed", "Operation 'restart' is not allowed on VM 'vm' since another "
                                            "operation ('powerOff') is in progress."), True),
    (http_error(409, "OperationNotAllowed", "The operation requires the VM to be running (or set to run)."), False),
    (http_error(409, "ResourceExists", "A job with name 'j1' already exists."), False),
    (http_error(400, "SecurityRuleConflict", "Rules cannot have the same Priority and Direction."), False),
    (http_error(400, "InvalidParameter", "bad"), False),
    (http_error(404, "ResourceNotFound", "not found"), False),
    (http_error(412, "PreconditionFailed", "etag"), False),
    (ResourceNotFoundError(response=FakeResponse(404, {"code": "NotFound", "message": "x"})), False),
    (ServiceRequestError("could not connect"), True),
    (ServiceResponseError("connection reset"), True),
    (ConnectionResetError("reset"), True),
    (ValueError("not an HTTP error"), False),
])
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after": "0"}, 0.0),
    ({"Retry-After": "2.5"}, 2.5),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"x-ms-retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "500", "Retry-After": "9"}, 0.5),  # the finer one wins
    ({"Retry-After": "-3"}, 0.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # HTTP-date: not understood, fall back to backoff
    ({"retry-after-ms": "soon", "Retry-After": "4"}, 4.0),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(http_error(429, "Throttled", "slow down", headers=headers)) == seconds


def test_retry_after_without_a_response() -> None:
    assert retry_after(ServiceResponseError("reset")) is None
    assert retry_after(ValueError("x")) is None
