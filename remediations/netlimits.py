"""NSG-wide limits an allow rule must fit: the addresses/prefixes one NSG may hold (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .netaddr import ASG_PREFIX
from .netrules import NsgView, Rule

__all__ = ["MAX_NSG_PREFIXES", "PrefixLimit", "check_prefix_room", "prefix_counts"]

#: Addresses/prefixes one NSG may hold across all its rules, source and destination counted separately
#: (MicrosoftDocs/azure-docs includes/azure-virtual-network-limits.md: "IP addresses and ranges specified
#: for source or destination in a security group (The limit applies separately to source and destination)").
MAX_NSG_PREFIXES = 4000


class PrefixLimit(ValueError):
    """The planned rules would take an NSG past MAX_NSG_PREFIXES source or destination prefixes."""

    def __init__(self, nsg_name: str, side: str, held: int, adding: int) -> None:
        super().__init__(
            f"NSG {nsg_name!r} holds {held:,} {side} prefixes; {adding:,} more would pass the "
            f"{MAX_NSG_PREFIXES:,} an NSG may hold"
        )
        self.nsg_name, self.side, self.held, self.adding = nsg_name, side, held, adding


def prefix_counts(rules: Iterable[Rule], *, skip: Iterable[str] = ()) -> tuple[int, int]:
    """(source, destination) address entries held by the custom rules, leaving out rules named in ``skip``."""
    # Every listed entry counts, a service tag or `*` as one (assumed); ASG references have their own limit.
    left = {n.lower() for n in skip}
    src = dst = 0
    for r in rules:
        if r.default or r.name.lower() in left:
            continue
        src += sum(1 for p in r.source_prefixes if not p.startswith(ASG_PREFIX))
        dst += sum(1 for p in r.dest_prefixes if not p.startswith(ASG_PREFIX))
    return src, dst


def check_prefix_room(nsg: NsgView, planned: Sequence[Rule]) -> None:
    """Raise PrefixLimit when ``planned`` (replacing same-named rules) would not fit the NSG's prefix limit."""
    held = prefix_counts(nsg.rules, skip=(r.name for r in planned))
    adding = prefix_counts(planned)
    for side, have, more in (("source", held[0], adding[0]), ("destination", held[1], adding[1])):
        if have + more > MAX_NSG_PREFIXES:
            raise PrefixLimit(nsg.name, side, have, more)
