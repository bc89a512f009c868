# PYTHON_ARGCOMPLETE_OK: this module answers shell tab completion (argcomplete; see `_complete`)
"""`python -m runbooks`: the command line. Only the standard library is imported here, so --help is cheap;
each command lives in a `cmd_*` module (catalog, fix, action, demo), imported when it runs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

__all__ = ["COMMANDS", "OUTPUTS", "PIPE_CLOSED", "build_parser", "main", "prog_name", "version"]

EPILOG = """exit codes: 0 fixed or nothing to do, 1 failed, 2 bad input (nothing sent), 3 a manual or withheld step,
130 interrupted (first Ctrl-C stops before the next write; a second exits at once).
--detailed-exitcode (diagnose, fix --dry-run / --plan-out): 4 instead of 0 when causes are found (diagnose) or
changes are pending (fix); 0 then means healthy / no changes. 1, 2 and 3 keep their meaning and win over 4.
environment: AZURE_SUBSCRIPTION_ID (default subscription), RUNBOOKS_ARM_ENDPOINT (custom ARM endpoint),
RUNBOOKS_CA_BUNDLE / REQUESTS_CA_BUNDLE (CA for a custom endpoint)."""


# command -> the module under runbooks/ whose cmd_<command> runs it
OUTPUTS = ["text", "json", "table", "tsv"]
COMMANDS = {"list": "cmd_catalog", "explain": "cmd_catalog", "diagnose": "cmd_fix", "fix": "cmd_fix",
            "apply": "cmd_fix", "action": "cmd_action", "demo": "cmd_demo"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where")
    g.add_argument("-g", "--resource-group", help="the VM's resource group (when VM is a name)")
    g.add_argument("--subscription", help="subscription id (default: AZURE_SUBSCRIPTION_ID)")
    g.add_argument("--cloud", default="AzureCloud", choices=["AzureCloud", "AzureChinaCloud", "AzureUSGovernment"])
    g.add_argument("--arm-endpoint", help="custom ARM endpoint (default: RUNBOOKS_ARM_ENDPOINT or the cloud's)")
    g.add_argument("--ca-bundle", help="CA bundle for a custom endpoint")
    g.add_argument("--credential", default="default", choices=["default", "managed-identity"])
    g.add_argument("--client-id", help="user-assigned managed identity client id")
    g.add_argument("--simulator", action="store_true", help="run against an in-process armsim demo fleet")


def _common(p: argparse.ArgumentParser) -> None:
    """What every command takes (as `az` does): the output format, a JMESPath query, --verbose and --debug."""
    g = p.add_argument_group("output")
    g.add_argument("--output", "-o", default="text", choices=OUTPUTS,
                   help="text (default), json (one document), table or tsv")
    g.add_argument("--query", metavar="JMESPATH", help="JMESPath query over the JSON document (as in az)")
    g.add_argument("--verbose", action="store_true", help="show each ARM call and each retry on stderr")
    g.add_argument("--debug", action="store_true",
                   help="--verbose plus request and response heads (Authorization and SAS redacted)")


def _detailed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 4 instead of 0 when causes are found (diagnose) or changes are pending "
                        "(fix --dry-run / --plan-out)")


def _apply_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show the plan; make no change (read-only pipeline)")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--allow-disruptive", action="store_true",
                   help="consent to disruptive steps (power off, VM restart)")
    p.add_argument("--audit-file", help="append a JSON line per write (intent, then outcome) here "
                                        "(default: ~/.local/state/azure-backup-runbooks/audit.jsonl; "
                                        "with --simulator, audit-simulator.jsonl there)")


def _proxy_url(value: str) -> str:
    """--proxy: exactly http://<IPv4 or host name>:<port> (a usage error otherwise, before any request)."""
    from remediations.actions.proxy import check_proxy
    from remediations.errors import BadInput

    try:
        return check_proxy(value)
    except BadInput as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _max_errors(value: str) -> str:
    """--max-errors: a count or a percentage (a usage error otherwise, before any request)."""
    from .schedule import check_max_errors

    try:
        return check_max_errors(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _action_names(**_: object) -> list[str]:
    """Tab completion of `action NAME`: the action names (the registry only, no SDK module is imported)."""
    from remediations.actions import action_names

    return list(action_names())


def _error_codes(**_: object) -> list[str]:
    """Tab completion of `explain CODE` and `--error CODE`: E1..E5, then every error code of the catalog."""
    from .catalog import CATALOG

    return [e.id for e in CATALOG] + sorted({code for e in CATALOG for code in e.codes})


def _complete(parser: argparse.ArgumentParser) -> None:
    """When a shell asks for completions (argcomplete sets _ARGCOMPLETE), answer and exit; else cost nothing."""
    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser, always_complete_options=False)  # options once a "-" is typed


def prog_name() -> str:
    """How the user called us: `python -m runbooks`, or the console script's own name (azure-backup-runbooks)."""
    import os

    base = os.path.basename(sys.argv[0] or "")
    return "python -m runbooks" if base in ("", "__main__.py", "-c") or base.startswith("python") else base


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("azure-backup-runbooks")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The full parser: list, explain, diagnose, fix, apply, action, demo."""
    parser = _Parser(prog=prog_name(), description="Diagnose and fix Azure VM backup failures.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="show the catalog of runbooks")
    _common(p)
    p = sub.add_parser("explain", help="show one runbook: its causes in order and their fixes")
    p.add_argument("code", help="E1..E5 or an error code, e.g. ExtensionSnapshotFailedNoNetwork"
                   ).completer = _error_codes  # type: ignore[attr-defined]
    _common(p)

    p = sub.add_parser("diagnose", help="the verdict for every cause, nothing else (read-only)")
    p.add_argument("vms", nargs="+", metavar="VM", help="VM name (with -g) or full resource ID")
    p.add_argument("--error", help="diagnose for this error code instead of the latest failed job's"
                   ).completer = _error_codes  # type: ignore[attr-defined]
    _detailed(p)
    _connection(p)
    _common(p)

    p = sub.add_parser("fix", help="diagnose, plan, apply and verify with a backup")
    p.add_argument("vms", nargs="*", metavar="VM", help="VM names (with -g) or full resource IDs")
    p.add_argument("--error", help="the error to fix (default: the VM's latest failed backup job)"
                   ).completer = _error_codes  # type: ignore[attr-defined]
    p.add_argument("--from-vault", metavar="VAULT", help="every VM with a failed backup job in this vault (-g)")
    p.add_argument("--all-subscriptions", action="store_true",
                   help="every VM with a failed backup job in every subscription you can read (Azure Resource Graph)")
    p.add_argument("--since", default="24h", help="with --from-vault or --all-subscriptions: how far back (24h, 3d)")
    p.add_argument("--page-size", type=int, default=1000, help=argparse.SUPPRESS)  # Resource Graph rows a page
    p.add_argument("--plan-out", metavar="FILE", help="save the plan (implies --dry-run); apply it later")
    p.add_argument("--no-backup", action="store_true", help="do not verify with an on-demand backup")
    p.add_argument("--mode", default="service-tag", choices=["service-tag", "ip-ranges"],
                   help="how allow-backup-egress writes NSG rules")
    p.add_argument("--retention-days", type=int, default=30, help="on-demand backup retention")
    p.add_argument("--proxy", metavar="URL", type=_proxy_url,
                   help="the working guest proxy set-guest-proxy sets, http://<IPv4 or host name>:<port>")
    p.add_argument("--concurrency", type=int, default=4, help="VMs fixed at the same time")
    p.add_argument("--max-errors", metavar="N|N%", type=_max_errors,
                   help="stop starting VMs once more than N (or N%% of them) failed; default: no limit")
    _detailed(p)
    _connection(p)
    _common(p)
    _apply_flags(p)

    p = sub.add_parser("apply", help="apply a plan saved with fix --plan-out, refusing if state drifted")
    p.add_argument("plan_file", metavar="FILE")
    _connection(p)
    _common(p)
    _apply_flags(p)

    p = sub.add_parser("action", help="run one remediation action by hand")
    p.add_argument("name", help="action name (see `list`)").completer = _action_names  # type: ignore[attr-defined]
    p.add_argument("vm", metavar="VM", help="VM name (with -g) or full resource ID")
    p.add_argument("--force", action="store_true", help="act even if nothing looks broken")
    p.add_argument("--mode", choices=["service-tag", "ip-ranges"], help="allow-backup-egress: rule style")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other action parameter, e.g. --param retention_days=7")
    _connection(p)
    _common(p)
    _apply_flags(p)

    p = sub.add_parser("demo", help="start armsim in-process and fix the whole demo fleet for real over HTTPS")
    _common(p)
    p.add_argument("--no-disruptive", action="store_true", help="withhold disruptive steps")
    p.add_argument("--concurrency", type=int, default=3)
    return parser


PIPE_CLOSED = 141  # 128 + SIGPIPE: the status a shell reports for a Unix tool whose reader went away


def main(argv: list[str] | None = None) -> int:
    """Run the command; when the reader of stdout goes away (`| head`), exit quietly with 141, as Unix tools do."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback in the interpreter's last flush
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return PIPE_CLOSED


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one command (its `prog` names it, so its errors point at `<prog> <command> --help`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]  # type: ignore[no-any-return]
    return parser


def _main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and turn bad input into one error line and exit code 2."""
    parser = build_parser()
    _complete(parser)
    args, extra = parser.parse_known_args(argv)
    if extra:  # point at the command's own --help, not the top level's
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    from remediations.errors import BadInput, Interrupted, RemediationError, Unreachable, one_line

    from .stop import install, interrupted_note

    if args.verbose or args.debug:  # each ARM call and retry on stderr (redacted); stdout stays the document
        from remediations.httplog import show

        show(sys.stderr, debug=args.debug)
    if args.command in ("fix", "apply", "action", "demo"):
        install()  # first Ctrl-C: stop before the next write; second: exit at once
    try:
        if args.query:
            from .formats import compile_query

            compile_query(args.query)  # a bad --query is bad input: refused before any request
        module = importlib.import_module(f".{COMMANDS[args.command]}", __package__)
        return int(getattr(module, f"cmd_{args.command}")(args))
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print(interrupted_note(), file=sys.stderr)
        return 130
    except Unreachable as e:  # the endpoint, not one VM: at once (never retried), with what to do
        hint = "pass --ca-bundle FILE or set REQUESTS_CA_BUNDLE" if e.kind == "tls" \
            else "check --arm-endpoint / RUNBOOKS_ARM_ENDPOINT"
        print(f"error: {e}; {hint}", file=sys.stderr)
        return 1
    except RemediationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # an ARM failure before any VM's work (e.g. listing a vault's jobs): one line
        if not type(e).__module__.startswith("azure."):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
