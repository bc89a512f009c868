"""The vocabulary of every action: Change, Plan, Outcome (pydantic, JSON-ready)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SYMBOLS", "Change", "Kind", "Outcome", "Plan", "Status"]

Kind = Literal["add", "change", "remove", "run"]
Status = Literal["changed", "unchanged", "failed", "withheld"]
SYMBOLS: dict[str, str] = {"add": "+", "change": "~", "remove": "-", "run": "!"}


class Change(BaseModel):
    """One planned step: what kind, on which resource, from what to what, and why."""

    model_config = ConfigDict(frozen=True)

    action: str
    kind: Kind
    resource: str = Field(description="short human name, e.g. nsg-app/securityRules/allow-azure-backup-443")
    resource_id: str = ""
    summary: str = Field(description="one line: what the step does")
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    disruptive: bool = False
    data: dict[str, Any] = Field(default_factory=dict, description="what execute() needs; not shown")

    @property
    def symbol(self) -> str:
        """Terraform's sign for this kind: + ~ - !"""
        return SYMBOLS[self.kind]

    def key(self) -> tuple[str, str, str]:
        """Identity of a change for drift comparison: action, kind, resource."""
        return (self.action, self.kind, self.resource.lower())


class Plan(BaseModel):
    """The changes one action would make on one VM, or why none are needed."""

    action: str
    target: str
    changes: list[Change] = Field(default_factory=list)
    reason: str = ""
    notes: list[str] = Field(default_factory=list, description="findings to report, never to fix")
    manual: list[str] = Field(default_factory=list, description="steps a person must take")
    idempotent: bool = Field(default=True, description="False: applying this plan twice acts twice (the action's flag)")
    needs_input: bool = Field(default=False, description="nothing can be planned until a person gives a value "
                                                         "(its manual step says which): a backup now cannot prove a fix")
    unread: bool = Field(default=False, description="the facts could not be read (a lock refuses the Run Command "
                                                    "that reads the guest): nothing is known, so nothing is planned")
    proven_by: str | None = Field(default=None, description="a backup job that began after the fix and succeeded "
                                                            "(trigger-backup): the VM is proven, nothing to run")

    @property
    def empty(self) -> bool:
        """True when there is nothing to do."""
        return not self.changes


class Outcome(BaseModel):
    """What apply did: changed / unchanged / failed / withheld, with the evidence."""

    action: str
    target: str
    status: Status
    reason: str = ""
    changes: list[Change] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    error_code: str | None = None
    error_status: int | None = None
    correlation_ids: list[str] = Field(default_factory=list)
    manual: list[str] = Field(default_factory=list)
    result: dict[str, Any] = Field(default_factory=dict, description="action-specific output, e.g. a job id")
