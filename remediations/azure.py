"""The client layer: the one place that builds SDK clients, owns retries, LRO polling and read-only mode.

- Target cloud: AzureCloud, AzureChinaCloud, AzureUSGovernment, or a custom ARM endpoint.
- Credential: DefaultAzureCredential, or ManagedIdentityCredential (optional client id); a
  loopback endpoint (armsim) takes no credential at all, and only a loopback one may (a credential
  object given in code is always used as given).
- Retries: tenacity, here only. The SDK's own RetryPolicy is set to zero so the two never multiply.
  Transient = 408/429/500/502/503/504, 409 codes that mean "busy", and connection errors;
  Retry-After is honoured (capped); attempts and total time are bounded. An untrusted certificate or a
  refused connection is not transient: it raises errors.Unreachable at once, naming the endpoint.
- Call log: httplog.CallLog replaces the SDK's HttpLoggingPolicy; every attempt and every retry is a
  record on the `remediations.http` logger (INFO; DEBUG adds the heads), secrets redacted.
- Read-only mode: a pipeline policy refuses PUT/PATCH/DELETE and any POST not on an allow-list
  before the request leaves the process (the dry-run guarantee).
SDK modules are imported lazily, inside the properties that need them (or ahead, in a thread: `warm`).

Over 300 lines on purpose: clients, the retry owner, the read-only policy and the per-thread record of each
write configure one pipeline together; apart, each would reach into the others.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

from . import httplog
from .budget import BudgetPolicy
from .endpoint import check_endpoint
from .errors import BadInput, ReadOnlyViolation, arm_error
from .scripts import SCRIPTS

__all__ = ["CLOUDS", "Azure", "AzureConfig", "RetrySettings", "is_transient", "poll_pause", "read_only_allows",
           "retry_after"]

T = TypeVar("T")

CLOUDS: dict[str, tuple[str, str]] = {
    # name: (ARM endpoint, Microsoft Entra authority host)
    "AzureCloud": ("https://management.azure.com", "login.microsoftonline.com"),
    "AzureChinaCloud": ("https://management.chinacloudapi.cn", "login.chinacloudapi.cn"),
    "AzureUSGovernment": ("https://management.usgovcloudapi.net", "login.microsoftonline.us"),
}

# POSTs that read and never change state; everything else that is not GET/HEAD is refused read-only.
_READ_ONLY_POSTS = (
    re.compile(r"/providers/Microsoft\.RecoveryServices/locations/[^/]+/backupStatus$", re.I),
    re.compile(r"/providers/Microsoft\.Network/networkInterfaces/[^/]+/effectiveNetworkSecurityGroups$", re.I),
    re.compile(r"/providers/Microsoft\.Network/networkInterfaces/[^/]+/effectiveRouteTable$", re.I),
    re.compile(r"^/providers/Microsoft\.ResourceGraph/resources$", re.I),  # a Resource Graph query (tenant level)
)
_RUN_COMMAND = re.compile(r"/providers/Microsoft\.Compute/virtualMachines/[^/]+/runCommand$", re.I)

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_BUSY_CODES = {
    "anotheroperationinprogress", "retryableerror", "retryableerrorduetoanotheroperation", "conflict",
    "operationnotallowed", "operationpreempted", "referencedresourcenotprovisioned",
}
_inside_retry: contextvars.ContextVar[bool] = contextvars.ContextVar("inside_retry", default=False)


def read_only_allows(method: str, url: str, body: bytes | str | None = None) -> bool:
    """Whether a request may leave the process in read-only mode."""
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    if method != "POST":
        return False
    path = urlparse(url).path
    if any(p.search(path) for p in _READ_ONLY_POSTS):
        return True
    if _RUN_COMMAND.search(path) and body:
        try:
            doc = json.loads(body)
            lines, command = list(doc.get("script") or []), doc.get("commandId")
        except (ValueError, AttributeError, TypeError):
            return False
        # Only the exact text of a known read-only script passes: an id line alone proves nothing.
        return any(not s.mutating and s.command_id == command and lines == s.text.splitlines()
                   for s in SCRIPTS.values())
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying: throttling, 5xx, busy conflicts, lost connections."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, (ServiceRequestError, ServiceResponseError, ConnectionError)):
        return True
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        if status in _TRANSIENT_STATUS:
            return True
        if status == 409:
            e = arm_error(exc)
            msg = e.message.lower()
            return e.code.lower() in _BUSY_CODES and ("in progress" in msg or "another operation" in msg
                                                      or e.code.lower() != "operationnotallowed")
    return False


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it did."""
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def poll_pause(exc: BaseException, interval: float, cap: float = 60.0) -> float:
    """How long a polling loop waits after a transient failure: its interval, or longer if Retry-After asks."""
    return max(interval, min(retry_after(exc) or 0.0, cap))


@dataclass(frozen=True)
class RetrySettings:
    """Bounds of the one retry policy: attempts, total seconds, backoff, the Retry-After cap, and how to wait."""

    attempts: int = 6
    max_seconds: float = 120.0
    backoff: float = 0.5
    backoff_max: float = 20.0
    retry_after_cap: float = 60.0
    sleep: Callable[[float], None] | None = None  # waits between attempts; None: time.sleep (tests record them)


@dataclass(frozen=True)
class AzureConfig:
    """Where and how to reach ARM."""

    subscription: str
    cloud: Literal["AzureCloud", "AzureChinaCloud", "AzureUSGovernment"] = "AzureCloud"
    arm_endpoint: str | None = None
    credential: Literal["default", "managed-identity"] = "default"
    client_id: str | None = None
    ca_bundle: str | None = None
    read_only: bool = False
    polling_interval: float | None = None
    read_timeout: float = 300.0
    retry: RetrySettings = field(default_factory=RetrySettings)
    operation_seconds: float = 900.0  # deadline of every long-running operation's polls (polling.PollGuard)

    @property
    def endpoint(self) -> str:
        """The ARM base URL in use."""
        return (self.arm_endpoint or CLOUDS[self.cloud][0]).rstrip("/")

    @property
    def loopback(self) -> bool:
        """Whether the endpoint is on this machine (armsim): only then is no credential used (see endpoint.py)."""
        return check_endpoint(self.endpoint).loopback


class Azure:
    """SDK clients for one subscription, built lazily, sharing one pipeline configuration."""

    def __init__(self, config: AzureConfig, *, credential: Any = None) -> None:
        if config.cloud not in CLOUDS:
            raise BadInput(f"unknown cloud {config.cloud!r}; known: {', '.join(CLOUDS)}")
        check_endpoint(config.endpoint)
        self.config = config
        self.subscription = config.subscription
        self._credential = credential
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}  # one lock per client: one being built blocks no other
        self.calls = threading.local()
        from .polling import PollGuard

        self.poll_guard = PollGuard(config.retry.retry_after_cap, config.operation_seconds)

    # --- credential and clients --------------------------------------------------------------
    def credential(self) -> Any:
        """The token credential: none for loopback, else managed identity or the default chain."""
        if self._credential is not None:
            return self._credential
        if self.config.loopback:
            return _NoCredential()
        authority = CLOUDS[self.config.cloud][1]
        if self.config.credential == "managed-identity":
            from azure.identity import ManagedIdentityCredential

            return ManagedIdentityCredential(client_id=self.config.client_id) if self.config.client_id \
                else ManagedIdentityCredential()
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(authority=authority, managed_identity_client_id=self.config.client_id)

    @property
    def principal(self) -> str:
        """Whose request budget ARM counts (remediations/budget.py): the identity this configuration signs in as."""
        c = self.config
        if c.loopback and self._credential is None:
            return "anonymous"  # armsim: no token is sent
        return f"{c.credential}:{c.client_id or ''}:{id(self._credential) if self._credential is not None else ''}"

    def _kwargs(self) -> dict[str, Any]:
        from azure.core.pipeline.policies import SansIOHTTPPolicy

        c = self.config
        interval = c.polling_interval if c.polling_interval is not None else (0.05 if c.loopback else 5.0)
        kw: dict[str, Any] = {
            "base_url": c.endpoint,
            "credential_scopes": [f"{CLOUDS[c.cloud][0] if not c.arm_endpoint else c.endpoint}/.default"],
            "retry_total": 0,  # tenacity owns retries (see module docstring)
            "polling_interval": interval,
            "per_call_policies": [_ReadOnlyPolicy(c.read_only)],
            "per_retry_policies": [_Recorder(self), self.poll_guard, BudgetPolicy(
                c.endpoint, self.principal, sleep=c.retry.sleep, cap=c.retry.retry_after_cap)],
            "logging_enable": False,
            "http_logging_policy": httplog.CallLog(),  # the SDK's would log a Location's SAS at INFO
            "read_timeout": c.read_timeout,
        }
        if c.ca_bundle:
            kw["connection_verify"] = c.ca_bundle
        if c.loopback and self._credential is None:
            kw["authentication_policy"] = SansIOHTTPPolicy()
        return kw

    def _client(self, name: str, factory: Callable[[], Any]) -> Any:
        with self._lock:
            lock = self._building.setdefault(name, threading.Lock())
        with lock:
            if name not in self._clients:
                self._clients[name] = factory()
            return self._clients[name]

    def warm(self, *names: str) -> None:
        """Build these clients (their SDK modules import) in a background thread, while this one waits on ARM.

        Importing an SDK is most of a short run's cost (issue #13: azure-mgmt-network alone takes longer than a
        request); a read that needs a client still being built waits for it. A failure here is left to that read.
        """
        def build() -> None:
            for name in names:
                with contextlib.suppress(Exception):  # the read that uses the client raises it again, and handles it
                    getattr(self, name)
        threading.Thread(target=build, name=f"azure-warm-{'-'.join(names)}", daemon=True).start()

    @property
    def compute(self) -> Any:
        """azure-mgmt-compute ComputeManagementClient."""
        def make() -> Any:
            from azure.mgmt.compute import ComputeManagementClient

            return ComputeManagementClient(self.credential(), self.subscription, **self._kwargs())
        return self._client("compute", make)

    @property
    def network(self) -> Any:
        """azure-mgmt-network NetworkManagementClient."""
        def make() -> Any:
            from azure.mgmt.network import NetworkManagementClient

            return NetworkManagementClient(self.credential(), self.subscription, **self._kwargs())
        return self._client("network", make)

    @property
    def backup(self) -> Any:
        """azure-mgmt-recoveryservicesbackup RecoveryServicesBackupClient."""
        def make() -> Any:
            from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

            return RecoveryServicesBackupClient(self.credential(), self.subscription, **self._kwargs())
        return self._client("backup", make)

    @property
    def health(self) -> Any:
        """azure-mgmt-resourcehealth ResourceHealthMgmtClient."""
        def make() -> Any:
            from azure.mgmt.resourcehealth import ResourceHealthMgmtClient

            return ResourceHealthMgmtClient(self.credential(), self.subscription, **self._kwargs())
        return self._client("health", make)

    @property
    def automation(self) -> Any:
        """azure-mgmt-automation AutomationClient."""
        def make() -> Any:
            from azure.mgmt.automation import AutomationClient

            return AutomationClient(self.credential(), self.subscription, **self._kwargs())
        return self._client("automation", make)

    @property
    def locks(self) -> Any:
        """azure-mgmt-resource-locks ManagementLockClient (Microsoft.Authorization/locks)."""
        def make() -> Any:
            from azure.mgmt.resource.locks import ManagementLockClient

            return ManagementLockClient(self.credential(), self.subscription, **self._kwargs())
        return self._client("locks", make)

    @property
    def graph(self) -> Any:
        """azure-mgmt-resourcegraph ResourceGraphClient (tenant level: this Azure's subscription is not used)."""
        def make() -> Any:
            from azure.mgmt.resourcegraph import ResourceGraphClient

            return ResourceGraphClient(self.credential(), **self._kwargs())
        return self._client("graph", make)

    # --- retries -----------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, also: Callable[[BaseException], bool] | None = None,
             **kwargs: Any) -> T:
        """Run `fn` under the retry policy; nested calls inside a retried unit run once (one owner)."""
        if _inside_retry.get():
            return fn(*args, **kwargs)
        import tenacity

        s = self.config.retry

        def retryable(exc: BaseException) -> bool:
            return is_transient(exc) or (also is not None and also(exc))

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after(exc) if exc else None
            if asked is not None:
                return min(asked, s.retry_after_cap)
            return min(s.backoff_max, s.backoff * 2 ** (state.attempt_number - 1)) * (0.5 + random.random() / 2)

        def before(state: tenacity.RetryCallState) -> None:
            httplog.ATTEMPT.set(state.attempt_number)  # the call log names the attempt of each request

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if exc is not None:
                httplog.retrying(state.attempt_number, s.attempts, state.upcoming_sleep, exc)

        token, attempt = _inside_retry.set(True), httplog.ATTEMPT.set(None)
        try:
            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception(retryable),
                stop=tenacity.stop_after_attempt(s.attempts) | tenacity.stop_after_delay(s.max_seconds),
                wait=wait, reraise=True, sleep=s.sleep or tenacity.nap.sleep,
                before=before, before_sleep=before_sleep)
            return retrying(fn, *args, **kwargs)
        finally:
            _inside_retry.reset(token)
            httplog.ATTEMPT.reset(attempt)

    # --- the record of one write, per thread (for the audit trail) -----------------------------
    def start_write(self) -> None:
        """Forget this thread's last write (its correlation id, its status, its accepted operation) before a new one."""
        self.calls.correlation_id = None
        self.calls.write_status = None
        self.poll_guard.forget()

    def last_correlation_id(self) -> str | None:
        """The x-ms-correlation-request-id of the last write (non-GET) response this thread received."""
        return getattr(self.calls, "correlation_id", None)

    def last_write_status(self) -> int | None:
        """The HTTP status of the last write's own answer on this thread (None: no answer since start_write)."""
        return getattr(self.calls, "write_status", None)


class _NoCredential:
    """Stands in for a credential against loopback ARM; never hands out a token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise RuntimeError("no credential is used against a loopback ARM endpoint")


def _policy_base() -> type:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    return SansIOHTTPPolicy


class _ReadOnlyPolicy(_policy_base()):  # type: ignore[misc]
    """Refuses state-changing requests before they are sent, when read-only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def on_request(self, request: Any) -> None:
        if not self.enabled:
            return
        http = request.http_request
        body = http.body if isinstance(http.body, (bytes, str)) else None
        if not read_only_allows(http.method, http.url, body):
            raise ReadOnlyViolation(http.method, http.url)


class _Recorder(_policy_base()):  # type: ignore[misc]
    """Remembers the correlation id and status of each write's answer, per thread (for the audit trail)."""

    def __init__(self, azure: Azure) -> None:
        self.azure = azure

    def on_response(self, request: Any, response: Any) -> None:
        if request.http_request.method.upper() in ("GET", "HEAD"):
            return  # keep the id of the write, not of the polls that follow it
        headers = response.http_response.headers
        self.azure.calls.correlation_id = headers.get("x-ms-correlation-request-id")
        self.azure.calls.write_status = response.http_response.status_code  # the write's own answer
