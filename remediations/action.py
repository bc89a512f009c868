"""The shape of every action: read facts, plan (pure), execute one change, re-plan to verify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from .azure import Azure
from .errors import ArmCallError, Interrupted, OperationTimedOut, RemediationError, arm_error
from .model import Change, Outcome, Plan
from .polling import check_stop, settle
from .target import Target

__all__ = ["Action", "ActionParams", "OnChange", "after_error"]

P = TypeVar("P", bound="ActionParams")
F = TypeVar("F")
OnChange = Callable[[Change, "str | None", str], None]  # (change, correlation id, "sending" | "applied" | "failed: CODE" | "unknown: CODE")


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
            unsure: set[int] = set()  # ids of errors met after a write was accepted: re-read and re-plan

            def unit() -> list[Change]:
                # A retry re-reads and re-plans from fresh state; it never replays a stale plan.
                current = attempts.pop() if attempts else self.preview(azure, params)
                done: list[Change] = []
                for change in current.changes:
                    azure.calls.correlation_id = None
                    azure.calls.write_status = None
                    azure.poll_guard.forget()
                    check_stop()  # Ctrl-C: never start another write
                    if on_change is not None:
                        on_change(change, None, "sending")  # the intent, before the request leaves
                    try:
                        note = self.execute(azure, params, change)
                    except BaseException as e:
                        verdict = after_error(e, getattr(azure.calls, "write_status", None))
                        if verdict == "unknown":
                            maybe_done.append(change)
                            if not isinstance(e, (Interrupted, OperationTimedOut)):
                                unsure.add(id(e))
                                _settle(azure)  # accepted, then a poll failed: wait for its fate, never resend blind
                        if on_change is not None:
                            code = arm_error(e).code if isinstance(e, Exception) else type(e).__name__
                            on_change(change, azure.last_correlation_id(), f"{verdict}: {code}")
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

            applied = azure.call(unit, also=lambda e: self.also_retry(e) or id(e) in unsure)
            after = azure.call(self.preview, azure, params)
            result = getattr(self, "last_result", {}) or {}
            if not applied and not maybe_done and after.empty:  # done meanwhile by someone else
                return Outcome(action=self.name, target=target, status="unchanged", reason=after.reason,
                               evidence=[*evidence, *after.notes], correlation_ids=correlation, result=result)
            applied = applied or maybe_done  # a write whose answer was lost, then found carried out
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
