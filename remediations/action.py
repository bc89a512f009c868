"""The contract of every action: read facts, plan (pure), execute one change, re-plan to verify.

A subclass declares, as class attributes: `name`, `summary`, `Params` (an ActionParams subclass; its
`for_run` takes the run settings that concern it), `disruptive`, `idempotent` (pyinfra's
is_idempotent: False when a second run acts again by nature) and `permissions` (the RBAC actions its
requests need). It defines `read`, `plan` and `execute`; `apply` is shared and is the only caller of
`execute`: it passes `progress` down, and turns what `execute` returns (`Executed`: note and result)
into the Outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from .azure import Azure
from .errors import ArmCallError, Interrupted, OperationTimedOut, RemediationError, arm_error
from .model import Change, Outcome, Plan
from .polling import check_stop, settle
from .target import Target

__all__ = ["Action", "ActionParams", "Executed", "OnChange", "Progress", "RunSettings", "Unfinished", "after_error"]

P = TypeVar("P", bound="ActionParams")
PT = TypeVar("PT", bound="ActionParams")
F = TypeVar("F")
OnChange = Callable[[Change, "str | None", str], None]  # (change, correlation id, "sending" | "applied" | "failed: CODE" | "unknown: CODE")
Progress = Callable[[str, dict[str, Any]], None]  # (status, info) on each poll of a long wait, e.g. a backup job


@dataclass(frozen=True)
class RunSettings:
    """The choices a runbook run makes for every action it applies; each Params.for_run takes what concerns it."""

    egress_mode: str = "service-tag"
    retention_days: int = 30
    wait_ready_seconds: float = 300.0
    proxy: str | None = None  # set-guest-proxy: the working guest proxy the operator gave (fix --proxy)


class ActionParams(BaseModel):
    """Parameters common to every action: the VM, and `force` to act although nothing looks broken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: Target
    force: bool = False

    @classmethod
    def for_run(cls: type[PT], target: Target, settings: RunSettings, **values: Any) -> PT:
        """Params for a runbook run: the target, the run settings this action takes (none here), then `values`."""
        return cls(target=target, **values)


@dataclass(frozen=True)
class Executed:
    """What one `execute` did: its evidence line (None: nothing to say) and its result for Outcome.result."""

    note: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


class Unfinished(Exception):
    """Raised by `execute` when its change failed part-way: the error, and what it had learnt (e.g. a job id).

    `apply` goes on with `error` itself (retries and the audit judge the real error) and keeps `result`.
    """

    def __init__(self, error: Exception, result: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.result = result


@dataclass
class _Run:
    """What one `apply` has done so far, shared by its retried unit and its Outcome."""

    applied: list[Change] = field(default_factory=list)
    maybe_done: list[Change] = field(default_factory=list)  # writes whose answer was lost: re-read, never resent
    evidence: list[str] = field(default_factory=list)
    correlation: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)  # of the latest attempt that executed anything
    unsure: set[int] = field(default_factory=set)  # ids of errors met after a write was accepted: re-read, re-plan


class Action(Generic[P, F]):
    """Base class: subclasses define the class attributes, read, plan and execute; apply is shared."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[ActionParams]] = ActionParams
    disruptive: ClassVar[bool] = False
    idempotent: ClassVar[bool] = True  # False: applying twice acts twice by nature (a forced run is planned again)
    permissions: ClassVar[tuple[str, ...]] = ()  # RBAC actions its requests need (azure-automation/rbac-map.json)

    def read(self, azure: Azure, params: P) -> F:
        """Gather the facts the plan needs (GETs and allow-listed read-only POSTs only)."""
        raise NotImplementedError

    def plan(self, facts: F, params: P) -> Plan:
        """The changes that would bring the VM to the wanted state; pure, no I/O."""
        raise NotImplementedError

    def execute(self, azure: Azure, params: P, change: Change, *, progress: Progress | None = None) -> Executed:
        """Make one change (waiting for its long-running operation); its evidence and result."""
        raise NotImplementedError

    def also_retry(self, exc: BaseException) -> bool:
        """Errors that, for this action only, mean re-read and re-plan (beyond the transient ones)."""
        return False

    def verify_params(self, params: P, result: dict[str, Any]) -> P:
        """The params of the re-plan that verifies convergence, given the executed result; by default the same.

        An action that is not idempotent says here what now counts as done (e.g. a restart after its time).
        """
        return params

    def preview(self, azure: Azure, params: P) -> Plan:
        """Read, then plan: what `apply` would do now (the plan carries the action's `idempotent`)."""
        try:
            facts = self.read(azure, params)
        except Exception as e:  # a ReadOnly lock refuses the Run Command that reads the guest (lock-resources.md)
            if not type(e).__module__.startswith("azure.") or arm_error(e).code != "ScopeLocked":
                raise
            t = params.target
            return Plan(action=self.name, target=str(t), unread=True, idempotent=self.idempotent,
                        reason=f"cannot read {t.name}: {arm_error(e).message}",
                        notes=[f"the read-only lock on {t.name} or its resource group must go first (remove-vm-lock, "
                               "disruptive); then run this again"])
        plan = self.plan(facts, params)
        plan.idempotent = self.idempotent
        return plan

    @classmethod
    def params(cls, **values: Any) -> ActionParams:
        """Build validated Params for this action."""
        return cls.Params(**values)

    # --- apply ---------------------------------------------------------------------------------
    def apply(self, azure: Azure, params: P, *, consent: bool | str = False, on_change: OnChange | None = None,
              progress: Progress | None = None) -> Outcome:
        """Re-plan, withhold what needs consent, execute each change, then re-plan to verify convergence.

        `consent` (truthy) allows disruptive steps; a string names whose consent it is, and the Outcome of a
        disruptive step that ran says so in its evidence."""
        target = str(params.target)
        run = _Run()
        try:
            plan = azure.call(self.preview, azure, params)
            early = self._not_now(plan, target, consent)
            if early is not None:
                return early
            attempts = [plan]

            def unit() -> list[Change]:
                # A retry re-reads and re-plans from fresh state; it never replays a stale plan.
                current = attempts.pop() if attempts else self.preview(azure, params)
                got: dict[str, Any] = {}
                return [self._step(azure, params, change, run, got, on_change, progress) for change in current.changes]

            run.applied = azure.call(unit, also=lambda e: self.also_retry(e) or id(e) in run.unsure)
            after = azure.call(self.preview, azure, self.verify_params(params, run.result))
            return self._verified(target, run.applied, after, run, consent)
        except ArmCallError as e:
            return self._failed(target, run, e)
        except RemediationError:
            raise
        except Exception as e:  # an azure-core HttpResponseError and friends: keep the ARM code
            if type(e).__module__.startswith("azure."):
                return self._failed(target, run, arm_error(e))
            raise

    def _not_now(self, plan: Plan, target: str, consent: bool | str) -> Outcome | None:
        """The Outcome when nothing is to be done now (nothing planned, or disruptive without consent); else None."""
        if plan.empty:
            return Outcome(action=self.name, target=target, status="unchanged", reason=plan.reason,
                           manual=plan.manual, evidence=plan.notes)
        held = [c for c in plan.changes if c.disruptive]
        if held and not consent:
            return Outcome(action=self.name, target=target, status="withheld", changes=plan.changes,
                           reason="disruptive: " + "; ".join(c.summary for c in held)
                                  + " (pass explicit consent, e.g. --allow-disruptive)",
                           manual=plan.manual, evidence=plan.notes)
        return None

    def _step(self, azure: Azure, params: P, change: Change, run: _Run, got: dict[str, Any],
              on_change: OnChange | None, progress: Progress | None) -> Change:
        """Execute one change, audited before it is sent and after it ends; raise what ended it badly."""
        azure.start_write()
        check_stop()  # Ctrl-C: never start another write
        if on_change is not None:
            on_change(change, None, "sending")  # the intent, before the request leaves
        error: BaseException | None = None
        try:
            executed = self.execute(azure, params, change, progress=progress)
        except Unfinished as u:
            error = u.error
            got.update(u.result)
            run.result = got
        except BaseException as e:
            error = e
        if error is not None:
            self._met(azure, change, error, run, on_change)
            raise error
        got.update(executed.result)
        run.result = got
        cid = azure.last_correlation_id()
        if cid:
            run.correlation.append(cid)
        if executed.note:
            run.evidence.append(executed.note)
        if on_change is not None:
            on_change(change, cid, "applied")
        return change

    def _met(self, azure: Azure, change: Change, error: BaseException, run: _Run,
             on_change: OnChange | None) -> None:
        """Judge a change that raised (failed, or unknown: may be done) and audit it."""
        verdict = after_error(error, azure.last_write_status())
        if verdict == "unknown":
            run.maybe_done.append(change)
            if not isinstance(error, (Interrupted, OperationTimedOut)):
                run.unsure.add(id(error))
                _settle(azure)  # accepted, then a poll failed: wait for its fate, never resend blind
        if on_change is not None:
            code = arm_error(error).code if isinstance(error, Exception) else type(error).__name__
            on_change(change, azure.last_correlation_id(), f"{verdict}: {code}")

    def _verified(self, target: str, applied: list[Change], after: Plan, run: _Run,
                  consent: bool | str = False) -> Outcome:
        """The Outcome once the unit ran: unchanged (done meanwhile), failed (did not converge) or changed.

        A changed Outcome's reason is the re-plan's: the state now, as verified. Each disruptive step that ran
        adds an evidence line naming whose consent allowed it."""
        if not applied and not run.maybe_done and after.empty:  # done meanwhile by someone else
            return Outcome(action=self.name, target=target, status="unchanged", reason=after.reason,
                           evidence=[*run.evidence, *after.notes], correlation_ids=run.correlation, result=run.result)
        applied = applied or run.maybe_done  # a write whose answer was lost, then found carried out
        run.evidence += _consented(applied, consent)
        if not after.empty:
            return Outcome(action=self.name, target=target, status="failed", changes=applied,
                           reason="did not converge: still planned: " + "; ".join(c.summary for c in after.changes),
                           evidence=run.evidence, correlation_ids=run.correlation, manual=after.manual,
                           result=run.result)
        return Outcome(action=self.name, target=target, status="changed", changes=applied, reason=after.reason,
                       evidence=[*run.evidence, *after.notes], correlation_ids=run.correlation, manual=after.manual,
                       result=run.result)

    def _failed(self, target: str, run: _Run, e: ArmCallError) -> Outcome:
        if e.correlation_id:
            run.correlation.append(e.correlation_id)
        return Outcome(action=self.name, target=target, status="failed", changes=run.applied,
                       reason=f"{e.code}: {e.message}", error_code=e.code, error_status=e.status,
                       evidence=run.evidence, correlation_ids=run.correlation, result=run.result)


def _consented(applied: list[Change], consent: bool | str) -> list[str]:
    """One evidence line per disruptive step carried out: what it was and whose consent allowed it."""
    who = consent if isinstance(consent, str) and consent else "given by the caller"
    return [f"disruptive: {c.summary}; consent: {who}" for c in applied if c.disruptive]


def _settle(azure: Azure) -> None:
    """Best effort: follow the write's accepted operation to its end before the retry re-reads and re-plans."""
    try:
        settle(azure)
    except Exception:  # the re-plan decides; this only avoids a second write while the first is in flight
        return


def after_error(exc: BaseException, write_status: int | None) -> str:
    """The audit outcome of a write that raised: "failed" (refused, or ended failed) or "unknown" (may be done).

    `write_status` is the HTTP status of the write's own answer (None: no answer came).
    """
    response = getattr(exc, "response", None)
    request = getattr(response, "request", None)
    method = str(getattr(request, "method", "") or "").upper()
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    if isinstance(exc, (Interrupted, OperationTimedOut, KeyboardInterrupt)):
        return "unknown"  # stopped waiting: the operation may still end either way
    if write_status is None:  # no answer to a write: nothing left (an earlier read failed) or the answer was lost
        return "failed" if method in ("GET", "HEAD") and isinstance(status, int) and status >= 400 else "unknown"
    if 400 <= write_status < 500:
        return "failed"  # ARM refused the request itself
    if write_status >= 500:
        return "unknown"
    if isinstance(exc, ArmCallError) and exc.status is None:
        return "failed"  # the action saw its operation or job end failed
    if method in ("GET", "HEAD") and isinstance(status, int) and status >= 400:
        return "unknown"  # a fault on a poll (429, 404, 5xx): the write may still be carried out
    if isinstance(status, int) and status < 400:
        return "failed"  # the operation's status poll answered 200 with a terminal Failed/Canceled
    return "unknown"
