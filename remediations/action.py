"""The shape of every action: read facts, plan (pure), execute one change, re-plan to verify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from .azure import Azure
from .errors import ArmCallError, RemediationError, arm_error
from .model import Change, Outcome, Plan
from .target import Target

__all__ = ["Action", "ActionParams", "OnChange"]

P = TypeVar("P", bound="ActionParams")
F = TypeVar("F")
OnChange = Callable[[Change, "str | None", str], None]  # (change, correlation id, "applied" | "error after sending: CODE")


class ActionParams(BaseModel):
    """Parameters common to every action: the VM, and `force` to act although nothing looks broken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: Target
    force: bool = False


class Action(Generic[P, F]):
    """Base class: subclasses define name, Params, read, plan and execute; apply is shared."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[ActionParams]] = ActionParams
    disruptive: ClassVar[bool] = False

    def read(self, azure: Azure, params: P) -> F:
        """Gather the facts the plan needs (GETs and allow-listed read-only POSTs only)."""
        raise NotImplementedError

    def plan(self, facts: F, params: P) -> Plan:
        """The changes that would bring the VM to the wanted state; pure, no I/O."""
        raise NotImplementedError

    def execute(self, azure: Azure, params: P, change: Change) -> str | None:
        """Make one change (waiting for its long-running operation); returns evidence, if any."""
        raise NotImplementedError

    def also_retry(self, exc: BaseException) -> bool:
        """Errors that, for this action only, mean re-read and re-plan (beyond the transient ones)."""
        return False

    def preview(self, azure: Azure, params: P) -> Plan:
        """Read, then plan: what `apply` would do now."""
        return self.plan(self.read(azure, params), params)

    def apply(self, azure: Azure, params: P, *, consent: bool = False, on_change: OnChange | None = None) -> Outcome:
        """Re-plan, withhold what needs consent, execute each change, then re-plan to verify convergence."""
        target = str(params.target)
        applied: list[Change] = []
        evidence: list[str] = []
        correlation: list[str] = []
        try:
            plan = azure.call(self.preview, azure, params)
            if plan.empty:
                return Outcome(action=self.name, target=target, status="unchanged", reason=plan.reason,
                               manual=plan.manual, evidence=plan.notes)
            held = [c for c in plan.changes if c.disruptive]
            if held and not consent:
                return Outcome(action=self.name, target=target, status="withheld", changes=plan.changes,
                               reason="disruptive: " + "; ".join(c.summary for c in held)
                                      + " (pass explicit consent, e.g. --allow-disruptive)",
                               manual=plan.manual, evidence=plan.notes)

            attempts = [plan]
            maybe_done: list[Change] = []

            def unit() -> list[Change]:
                # A retry re-reads and re-plans from fresh state; it never replays a stale plan.
                current = attempts.pop() if attempts else self.preview(azure, params)
                done: list[Change] = []
                for change in current.changes:
                    azure.calls.correlation_id = None
                    try:
                        note = self.execute(azure, params, change)
                    except Exception as e:
                        if not _rejected(e):  # the request may have been carried out before the error
                            maybe_done.append(change)
                            if on_change is not None:
                                on_change(change, azure.last_correlation_id(), f"error after sending: {arm_error(e).code}")
                        raise
                    cid = azure.last_correlation_id()
                    if cid:
                        correlation.append(cid)
                    if note:
                        evidence.append(note)
                    if on_change is not None:
                        on_change(change, cid, "applied")
                    done.append(change)
                return done

            applied = azure.call(unit, also=self.also_retry)
            after = azure.call(self.preview, azure, params)
            result = getattr(self, "last_result", {}) or {}
            if not applied and not maybe_done and after.empty:  # done meanwhile by someone else
                return Outcome(action=self.name, target=target, status="unchanged", reason=after.reason,
                               evidence=[*evidence, *after.notes], correlation_ids=correlation, result=result)
            if not after.empty:
                return Outcome(action=self.name, target=target, status="failed", changes=applied,
                               reason="did not converge: still planned: "
                                      + "; ".join(c.summary for c in after.changes),
                               evidence=evidence, correlation_ids=correlation, manual=after.manual, result=result)
            return Outcome(action=self.name, target=target, status="changed", changes=applied,
                           reason=after.reason, evidence=[*evidence, *after.notes], correlation_ids=correlation,
                           manual=after.manual, result=result)
        except ArmCallError as e:
            return self._failed(target, applied, e, evidence, correlation)
        except RemediationError:
            raise
        except Exception as e:  # an azure-core HttpResponseError and friends: keep the ARM code
            if type(e).__module__.startswith("azure."):
                return self._failed(target, applied, arm_error(e), evidence, correlation)
            raise

    def _failed(self, target: str, applied: list[Change], e: ArmCallError, evidence: list[str],
                correlation: list[str]) -> Outcome:
        if e.correlation_id:
            correlation.append(e.correlation_id)
        return Outcome(action=self.name, target=target, status="failed", changes=applied,
                       reason=f"{e.code}: {e.message}", error_code=e.code, error_status=e.status,
                       evidence=evidence, correlation_ids=correlation,
                       result=getattr(self, "last_result", {}) or {})

    @classmethod
    def params(cls, **values: Any) -> ActionParams:
        """Build validated Params for this action."""
        return cls.Params(**values)


def _rejected(exc: BaseException) -> bool:
    """Whether ARM refused the request itself (a 4xx on the first response), so nothing was changed."""
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500 and "operation failed" not in str(exc).lower()
