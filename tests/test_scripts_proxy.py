"""The proxy Run Command scripts (issue #15): the Linux ones run for real under bash and dash against the stand-in
guest of tests/support/linux_guest.py (a real TCP listener for the reachability test); the PROXY check of all
three implementations (the Linux script, the PowerShell script's pattern, armsim) agrees on one grid of values."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.linux_guest import BASH, DASH, Guest

from armsim.proxy import valid_proxy
from remediations.scripts import script

SHELLS = [pytest.param(BASH, id="bash"), pytest.param(DASH, id="dash")]
CONF = "Provisioning.Agent=auto\n# HttpProxy.Host=None\nHttpProxy.Host=None\nHttpProxy.Port=None\nLogs.Verbose=n\n"
DROPIN = ("# Written by azure-backup-runbooks (linux-proxy-set): the agent's HTTP proxy.\n[Service]\n"
          'Environment="http_proxy={url}" "https_proxy={url}"\n')
# value -> valid? The brief's three (a shell tail, a command substitution, a newline) and the edges of the format.
GRID = {
    "http://10.0.2.4:3128": True, "http://proxy.corp.local:8080": True, "http://a:1": True,
    "http://255.255.255.255:65535": True, "http://0.0.0.0:80": True, "http://my-proxy.example:3128": True,
    "http://1.2.3.4:3128; rm -rf /": False, "$(reboot)": False, "http://1.2.3.4:3128\n": False,
    "http://1.2.3.4:3128\nx": False, "`reboot`": False, "http://1.2.3.4:3128 ": False, " http://1.2.3.4:3128": False,
    "": False, "https://1.2.3.4:3128": False, "HTTP://1.2.3.4:3128": False, "http://1.2.3.4": False,
    "http://1.2.3.4:": False, "http://:3128": False, "http://1.2.3.4:0": False, "http://1.2.3.4:03128": False,
    "http://1.2.3.4:65536": False, "http://1.2.3.4:999999": False, "http://256.2.3.4:80": False,
    "http://01.2.3.4:80": False, "http://1.2.3:80": False, "http://1.2.3.4.5:80": False, "http://host.123:80": False,
    "http://-a.example:80": False, "http://a-.example:80": False, "http://a..b:80": False, "http://.a:80": False,
    "http://a.:80": False, "http://user:pw@1.2.3.4:3128": False, "http://1.2.3.4:3128/": False,
    "http://[::1]:3128": False, "http://a_b:80": False, "http://" + "a" * 64 + ":80": False,
    "http://" + ".".join(["a" * 63] * 4) + ":80": False, "http://1.2.3.4:3128#x": False, "http://é.example:80": False,
}


def ps_valid(value: str) -> bool:
    """windows-proxy-set's check, from its own text: its pattern pieces (.NET `\\z` and `(?<n>` in Python spelling)
    and its extra conditions (port at most 65535, host at most 253, an all-digit last label only in an IPv4)."""
    text = script("windows-proxy-set").text
    octet = re.search(r"^\$octet = '([^']*)'$", text, re.M)[1]  # type: ignore[index]
    label = re.search(r"^\$label = '([^']*)'$", text, re.M)[1]  # type: ignore[index]
    assert "$pattern = '\\Ahttp://(?<host>' + $octet + '(?:\\.' + $octet + '){3}|' + $label + '(?:\\.' + $label + " \
           "')*)' +\n           ':(?<port>[1-9][0-9]{0,4})\\z'" in text
    assert "$Proxy -cmatch $pattern" in text and "$p -le 65535 -and $h.Length -le 253" in text
    m = re.match(rf"\Ahttp://(?P<host>{octet}(?:\.{octet}){{3}}|{label}(?:\.{label})*):(?P<port>[1-9][0-9]{{0,4}})\Z",
                 value)
    if m is None:
        return False
    host = m["host"]
    ipv4 = re.match(rf"\A{octet}(?:\.{octet}){{3}}\Z", host) is not None
    return int(m["port"]) <= 65535 and len(host) <= 253 and (ipv4 or not re.search(r"(?:\A|\.)[0-9]+\Z", host))


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP listener on 127.0.0.1; its port."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield srv.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def set_env(guest: Guest, unit: str, env: str) -> None:
    (guest.state / "units" / unit / "environment").write_text(env)


# --- linux-proxy-get ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
def test_get_without_a_proxy(tmp_path: Path, shell: str) -> None:
    guest = Guest(tmp_path, waagent_conf=CONF, shell=shell)
    run = guest.run("linux-proxy-get")
    assert run.rc == 0 and run.result == {
        "script": "linux-proxy-get", "proxy": None, "source": None, "reachable": None, "detail": None,
        "settings": {"waagent.conf": {"HttpProxy.Host": None, "HttpProxy.Port": None}, "unit": "walinuxagent",
                     "unit_environment": {"https_proxy": None, "HTTPS_PROXY": None, "http_proxy": None,
                                          "HTTP_PROXY": None},
                     "/etc/environment": {"http_proxy": None, "https_proxy": None}}}
    assert run.calls == ["systemctl cat walinuxagent.service", "systemctl show -p Environment walinuxagent.service"]
    assert guest.conf.read_text() == CONF


@pytest.mark.parametrize("shell", SHELLS)
def test_get_prefers_waagent_conf_and_tests_the_connection(tmp_path: Path, shell: str, listener: int) -> None:
    guest = Guest(tmp_path, "rhel", waagent_conf=f"HttpProxy.Host=127.0.0.1\nHttpProxy.Port={listener}\n",
                  shell=shell)
    set_env(guest, "waagent", "https_proxy=http://10.9.9.9:1 http_proxy=http://10.9.9.9:2")
    (tmp_path / "environment").write_text('PATH="/usr/bin"\nhttp_proxy="http://10.8.8.8:3"\n')
    r = guest.run("linux-proxy-get").result
    assert (r["proxy"], r["source"], r["reachable"], r["detail"]) == (
        f"http://127.0.0.1:{listener}", "waagent.conf", True, f"connect to 127.0.0.1:{listener}: ok")
    assert r["settings"]["unit"] == "waagent"
    assert r["settings"]["unit_environment"]["https_proxy"] == "http://10.9.9.9:1"
    assert r["settings"]["/etc/environment"] == {"http_proxy": "http://10.8.8.8:3", "https_proxy": None}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("env", "proxy"), [
    ("https_proxy=http://127.0.0.1:{port}/", "http://127.0.0.1:{port}"),
    ("HTTPS_PROXY=http://127.0.0.1:{port}", "http://127.0.0.1:{port}"),
    ("https_proxy=http://127.0.0.1:{port} HTTPS_PROXY=http://10.1.1.1:1", "http://127.0.0.1:{port}"),
    ("http_proxy=http://127.0.0.1:{port}", None),  # the agent's HTTPS requests use https_proxy only
])
def test_get_uses_the_units_environment_when_waagent_conf_is_silent(tmp_path: Path, shell: str, env: str,
                                                                    proxy: str | None) -> None:
    port = closed_port()
    guest = Guest(tmp_path, waagent_conf=CONF, shell=shell)
    set_env(guest, "walinuxagent", env.format(port=port))
    r = guest.run("linux-proxy-get").result
    if proxy is None:
        assert (r["proxy"], r["source"], r["reachable"]) == (None, None, None)
    else:
        assert (r["proxy"], r["source"], r["reachable"], r["detail"]) == (
            proxy.format(port=port), "environment", False, f"connect to 127.0.0.1:{port}: refused")


def test_get_host_without_port_means_no_proxy(tmp_path: Path) -> None:
    r = Guest(tmp_path, waagent_conf="HttpProxy.Host=10.0.0.4\n").run("linux-proxy-get").result
    assert (r["proxy"], r["source"], r["reachable"]) == (None, "waagent.conf", None)
    assert r["detail"] == "HttpProxy.Host without HttpProxy.Port: the agent connects directly"


# --- linux-proxy-set ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
def test_set_writes_both_places_then_restarts_detached(tmp_path: Path, shell: str, listener: int) -> None:
    guest = Guest(tmp_path, waagent_conf=CONF, shell=shell)
    url = f"http://127.0.0.1:{listener}"
    run = guest.run("linux-proxy-set", PROXY=url)
    assert run.rc == 0, run.stderr
    r = run.result
    assert {k: r[k] for k in ("changed", "before", "after", "unit", "scheduled", "how", "delay")} == {
        "changed": True, "before": None, "after": url, "unit": "walinuxagent", "scheduled": True,
        "how": "systemd-run", "delay": 10}
    assert guest.conf.read_text() == CONF.replace("\nHttpProxy.Host=None\nHttpProxy.Port=None\n",
                                                  f"\nHttpProxy.Host=127.0.0.1\nHttpProxy.Port={listener}\n")
    dropin = tmp_path / "systemd" / "walinuxagent.service.d" / "http-proxy.conf"
    assert dropin.read_text() == DROPIN.format(url=url)
    assert not [c for c in run.calls if "restart" in c or "daemon-reload" in c]  # nothing restarts inline
    assert guest.fire() == ["systemctl daemon-reload", "systemctl restart walinuxagent.service"]
    got = guest.run("linux-proxy-get").result
    assert (got["proxy"], got["reachable"]) == (url, True)
    assert got["settings"]["unit_environment"]["https_proxy"] == url
    mtime = guest.conf.stat().st_mtime_ns
    again = guest.run("linux-proxy-set", PROXY=url)
    assert (again.rc, again.result["changed"], again.result["scheduled"], again.result["before"]) == (0, False, False, url)
    assert not [c for c in again.calls if c.startswith("systemd-run")] and guest.conf.stat().st_mtime_ns == mtime


def test_set_appends_missing_keys_and_creates_a_missing_file(tmp_path: Path) -> None:
    guest = Guest(tmp_path / "a", waagent_conf="Logs.Verbose=n")  # no trailing newline
    assert guest.run("linux-proxy-set", PROXY="http://proxy.corp.local:8080").rc == 0
    assert guest.conf.read_text() == "Logs.Verbose=n\nHttpProxy.Host=proxy.corp.local\nHttpProxy.Port=8080\n"
    guest = Guest(tmp_path / "b", waagent_conf=None)
    assert guest.run("linux-proxy-set", PROXY="http://10.0.2.4:3128").result["changed"] is True
    assert guest.conf.read_text() == "HttpProxy.Host=10.0.2.4\nHttpProxy.Port=3128\n"


def test_set_changes_only_what_differs(tmp_path: Path) -> None:
    guest = Guest(tmp_path, "rhel", waagent_conf="HttpProxy.Host=10.0.2.4\nHttpProxy.Port=3128\n")
    run = guest.run("linux-proxy-set", PROXY="http://10.0.2.4:3128")  # the drop-in is missing
    assert (run.result["changed"], run.result["before"], run.result["unit"]) == (True, "http://10.0.2.4:3128", "waagent")
    assert guest.conf.read_text() == "HttpProxy.Host=10.0.2.4\nHttpProxy.Port=3128\n"
    assert (tmp_path / "systemd" / "waagent.service.d" / "http-proxy.conf").exists()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("value", ["http://1.2.3.4:3128; rm -rf /", "$(reboot)", "http://1.2.3.4:3128\nx"])
def test_a_bad_proxy_is_refused_and_nothing_changes(tmp_path: Path, shell: str, value: str) -> None:
    guest = Guest(tmp_path, waagent_conf=CONF, shell=shell)
    run = guest.run("linux-proxy-set", PROXY=value)
    assert (run.rc, run.result) == (2, {"script": "linux-proxy-set", "error": "bad-proxy", "changed": False,
                                        "scheduled": False})
    assert run.calls == [] and guest.conf.read_text() == CONF and not (tmp_path / "systemd").exists()
    assert "nothing was changed" in run.stderr and not (guest.state / "timer").exists()


def test_without_proxy_parameter_or_unit_or_detach(tmp_path: Path) -> None:
    guest = Guest(tmp_path / "a", waagent_conf=CONF)
    assert (guest.run("linux-proxy-set").rc, guest.conf.read_text()) == (2, CONF)
    guest = Guest(tmp_path / "b", units={}, waagent_conf=CONF)
    run = guest.run("linux-proxy-set", PROXY="http://10.0.2.4:3128")
    assert (run.rc, run.result["error"], guest.conf.read_text()) == (3, "no-agent-unit", CONF)
    guest = Guest(tmp_path / "c", systemd_run=False, detach_tools=False, waagent_conf=CONF)
    run = guest.run("linux-proxy-set", PROXY="http://10.0.2.4:3128")
    assert (run.rc, run.result["error"], run.result["changed"], guest.conf.read_text()) == (5, "cannot-detach", False, CONF)
    assert not (tmp_path / "c" / "systemd").exists()


def test_the_three_checks_agree_on_the_grid(tmp_path: Path) -> None:
    """The Linux script, the PowerShell pattern and armsim accept exactly the valid values."""
    guest = Guest(tmp_path, waagent_conf=CONF)
    for value, ok in GRID.items():
        run = guest.run("linux-proxy-set", PROXY=value)
        assert (run.rc == 0) is ok and (run.result.get("error") == "bad-proxy") is not ok, value
        assert (valid_proxy(value) is not None) is ok, value
        assert ps_valid(value) is ok, value


# --- the text ------------------------------------------------------------------------------------------
def test_the_value_never_reaches_the_text_to_run() -> None:
    linux = script("linux-proxy-set").text
    assert [line.strip() for line in linux.splitlines() if "PROXY" in line and not line.lstrip().startswith("#")] == [
        'if ! valid_proxy "${PROXY-}"; then',
        'fail bad-proxy 2 "PROXY must be exactly http://<IPv4 or hostname>:<port>; nothing was changed"']
    job = linux.split("AGENT_JOB='\n", 1)[1].split("\n'\n", 1)[0]
    assert job == 'systemctl daemon-reload\nsystemctl restart "$1.service"' and 'schedule_detached "$AGENT_JOB" "$unit"' in linux
    ps = script("windows-proxy-set").text
    assert ps.splitlines()[0] == "# runbooks-script: windows-proxy-set"
    code = [line for line in ps.splitlines() if line.strip() and not line.startswith("#")]
    assert code[0] == "param([string]$Proxy)"  # param() is the first statement
    assert "& netsh.exe winhttp set proxy $hostport $bypassList" in ps and "Invoke-Expression" not in ps
    restart = script("windows-agent-restart").text
    job_line = next(line for line in restart.splitlines() if line.startswith("$job = '"))
    assert job_line in ps.splitlines()  # the same detached job as windows-agent-restart
