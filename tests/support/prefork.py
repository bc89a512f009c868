"""A warm Python for the subprocess tests: `python()` is the argv prefix to use instead of `[sys.executable]`.

Over 400 lines on purpose: the connector, the zygote's loop and the forked program's start and end are one
protocol (fds, signals, exit codes); apart, each module would restate the others' half.

Every CLI and Automation-entry test runs `python -m runbooks …` or `python azure-automation/<script> …` in
a process of its own, and most of each such run was the interpreter importing the Azure SDK (the network
models alone take about a second) and tearing it down again. Here one process (the "zygote") imports
the SDK once, and each run is a fork of it (under pytest-xdist the controller starts it, and its workers
share it through TESTS_PREFORK_SOCKET):

- `python()` returns `[sys.executable, "-I", "-S", "-c", <connector>, <socket>]`. That small connector
  process is what the test starts (with its env, cwd, stdin/stdout/stderr, timeout, signals). It hands
  its argv, environment, working folder and its three standard fds to the zygote, which forks the
  program; the connector forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT to it and exits with its exit status
  (or dies of the same signal). When the connector is killed, the program is killed too.
- The program starts as `python` would: a fresh `__main__`, `sys.argv`, `sys.path` (the script's folder
  or the working folder, then PYTHONPATH, then the interpreter's own path), `os.environ`, the working
  folder, new sys.std* streams on the given fds (line-buffered on a terminal), default signal handlers,
  no other fds open; at exit, non-daemon threads are joined, atexit handlers run, streams flushed, and
  the exit code is python's (SystemExit, 1 after a traceback, death by SIGINT after an uncaught
  KeyboardInterrupt).
- The differences: the third-party modules in PRELOAD and every module of OURS (`remediations`, `runbooks`;
  never `armsim`, nor werkzeug or trustme) are already imported, the hash seed is the zygote's, module
  teardown at exit is skipped, and bytecode is cached in the test process's `sys.pycache_prefix` or a
  folder of the zygote's (never next to the sources; also under PYTHONDONTWRITEBYTECODE). None of our
  modules reads the environment, the clock, argv or the process at import, so a fork's copy is what a
  fresh import would give; `runbooks.__main__` and the entry scripts themselves run afresh each time; a
  run whose PYTHONPATH finds our packages elsewhere imports them afresh. The tests that check what a run
  imports (test_cli_fix's `-X importtime` and `without` runs, test_automation_bundle) start the real
  interpreter.
- Whatever it cannot start exactly so runs the real interpreter (the connector `exec`s `python` with the
  same argv): interpreter options such as `-X importtime`, or an environment that differs from the
  zygote's in a variable the interpreter reads once at start (PYTHON*, LC_*, LANG).
- TESTS_PREFORK=0 turns it off (every run is then a plain `sys.executable` process); TESTS_PREFORK=sdk
  preloads the third-party modules only.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import sys
from typing import Any

__all__ = ["OURS", "PRELOAD", "SHARED", "python", "start", "stop"]

PRELOAD = ("azure.mgmt.compute", "azure.mgmt.network", "azure.mgmt.recoveryservicesbackup",
           "azure.mgmt.resourcehealth", "azure.mgmt.automation", "azure.core.pipeline.transport._requests_basic",
           "azure.core.rest._requests_basic", "tenacity", "pydantic", "pydantic.main", "pydantic.fields",
           "pydantic.json_schema", "pydantic.plugin._loader", "argparse", "concurrent.futures.thread")
OURS = ("remediations", "runbooks")  # every module of these packages but __main__
_NEVER = ("armsim", "werkzeug", "trustme")  # the simulator: a run must import it itself, or find it missing
# read once by the interpreter at start: a run whose value differs from the zygote's runs the real interpreter
_FIXED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONHASHSEED", "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONOPTIMIZE",
              "PYTHONWARNINGS", "PYTHONDEVMODE", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONHOME",
              "PYTHONPLATLIBDIR", "PYTHONUNBUFFERED", "PYTHONINSPECT", "PYTHONVERBOSE", "PYTHONFAULTHANDLER",
              "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME", "PYTHONINTMAXSTRDIGITS", "PYTHONCOERCECLOCALE",
              "PYTHONWARNDEFAULTENCODING", "PYTHONEXECUTABLE", "PYTHONMALLOC", "PYTHONSTARTUP",
              "SETUPTOOLS_USE_DISTUTILS")
_EXEC = -(2**62)  # the zygote's answer "run the real interpreter"

# The connector: as few imports as can be (it starts once per run). argv: socket path, then python's argv.
_CONNECTOR = """\
import _socket, array, marshal, os, signal, sys
path, argv = sys.argv[1], sys.argv[2:]
def real():
    os.execv(sys.executable, [sys.executable, *argv])
if not argv or argv[0] in ("-m", "-c") and len(argv) < 2 or argv[0][:1] == "-" and argv[0] not in ("-m", "-c"):
    real()
s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
s.connect(path)
head = marshal.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()})
s.sendmsg([len(head).to_bytes(8, "big") + head], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
def answer():
    b = b""
    while len(b) < 8:
        got = s.recv(8 - len(b))
        if not got:
            return 1
        b += got
    return int.from_bytes(b, "big", signed=True)
if answer() == EXEC:
    s.close()
    real()
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(sig, lambda n, _f: s.send(bytes([n])))
code = answer()
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
""".replace("EXEC", str(_EXEC))
SHARED = "TESTS_PREFORK_SOCKET"  # set by the pytest-xdist controller: its zygote serves every worker
_zygote: Any = None


# --- the test side ----------------------------------------------------------------------------
def python() -> list[str]:
    """The argv prefix that runs Python: the connector to the session's zygote, or the plain interpreter."""
    if os.environ.get("TESTS_PREFORK", "1") == "0" or not hasattr(os, "fork"):
        return [sys.executable]
    return [sys.executable, "-I", "-S", "-c", _CONNECTOR, os.environ.get(SHARED) or start()]


def start() -> str:
    """This process's zygote (started on first use, ended at exit); the path of its socket."""
    global _zygote
    if _zygote is None:
        import subprocess
        import tempfile

        folder = tempfile.mkdtemp(prefix="prefork-")
        path = os.path.join(folder, "zygote.sock")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", SHARED)}
        cache = sys.pycache_prefix or os.path.join(folder, "pycache")
        proc = subprocess.Popen([sys.executable, __file__, path, cache, os.environ.get("TESTS_PREFORK", "1")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=folder)
        if proc.stdout is None or proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the prefork zygote did not start")
        if _zygote is None:  # another thread may have started one meanwhile: keep the first
            _zygote = (proc, path)
            atexit.register(stop)
        else:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=10)
    return str(_zygote[1])


def stop() -> None:
    """End this process's zygote (its stdin closes; it exits) and remove its folder."""
    global _zygote
    if _zygote is not None:
        import shutil

        proc, path = _zygote
        _zygote = None
        proc.stdin.close()
        proc.wait(timeout=10)
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


# --- the zygote: one thread, one loop -----------------------------------------------------------
def _serve(path: str, cache: str, mode: str) -> None:
    """Import PRELOAD (and OURS), then fork one program per connection until the test process closes our stdin."""
    import gc
    import importlib
    import selectors

    base_path = list(sys.path[1:])  # without this file's folder: the interpreter's own path
    for name in PRELOAD:
        importlib.import_module(name)
    ours = _preload_ours() if mode != "sdk" else {}
    gc.collect()
    gc.freeze()  # the preloaded modules: never scanned again, in the zygote or in a run
    fixed = {k: os.environ.get(k) for k in _FIXED_ENV}
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wakeup fd
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stop")
    sel.register(wake_r, selectors.EVENT_READ, "reap")
    runs: dict[int, socket.socket] = {}  # program pid -> its connector's connection (unreaped programs only)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            if key.data == "stop":
                return  # the test process is gone
            if key.data == "accept":
                conn, _ = listener.accept()
                pid = _start(conn, base_path, fixed, cache, ours)
                if pid:
                    runs[pid] = conn
                    sel.register(conn, selectors.EVENT_READ, pid)
                else:
                    conn.close()
            elif key.data == "reap":
                os.read(wake_r, 4096)
                _reap(runs, sel)
            else:  # a signal number to pass on, or EOF: the connector was killed, so is the program
                pid = key.data
                try:
                    got = key.fileobj.recv(64)  # type: ignore[union-attr]
                except OSError:
                    got = b""
                for sig in got or [signal.SIGKILL]:
                    os.kill(pid, sig)  # not reaped yet (only this loop reaps): the pid is still ours
                if not got:
                    sel.unregister(key.fileobj)
        _reap(runs, sel)


def _reap(runs: dict[int, socket.socket], sel: Any) -> None:
    while runs:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        conn = runs.pop(pid, None)
        if conn is None:
            continue
        if conn.fileno() in sel.get_map():
            sel.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(os.waitstatus_to_exitcode(status).to_bytes(8, "big", signed=True))
        conn.close()


def _start(conn: socket.socket, base_path: list[str], fixed: dict[str, str | None], cache: str,
           ours: dict[str, str]) -> int:
    """Read one request; fork its program (its pid), or tell the connector to run the real interpreter (0)."""
    import array
    import marshal

    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(8, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    size, body = int.from_bytes(msg, "big"), b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            break
        body += chunk
    request = marshal.loads(body) if len(body) == size and len(fds) == 3 else None
    if request is None or any(request["env"].get(k) != v for k, v in fixed.items()):
        for fd in fds:
            os.close(fd)
        conn.sendall(_EXEC.to_bytes(8, "big", signed=True))
        return 0
    pid = os.fork()
    if pid == 0:
        _program(request, list(fds), base_path, cache, ours)  # never returns
    for fd in fds:
        os.close(fd)
    conn.sendall(pid.to_bytes(8, "big", signed=True))
    return pid


def _program(request: dict[str, Any], fds: list[int], base_path: list[str], cache: str,
             ours: dict[str, str]) -> None:
    """In the forked child: become `python <argv>` in the given env, folder and fds; never return."""
    import builtins
    import importlib
    import io
    import types

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT):  # as a fresh interpreter has them
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGCHLD else signal.default_int_handler)
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else map(str, range(3, 1024)):
        if int(name) > 2:
            with contextlib.suppress(OSError):
                os.close(int(name))
    argv, env = request["argv"], request["env"]
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(env)
    sys.pycache_prefix, sys.dont_write_bytecode = cache, False

    def stream(fd: int, like: Any) -> io.TextIOWrapper:  # as the interpreter made the zygote's own (same env)
        write = fd != 0
        raw = io.FileIO(fd, "w" if write else "r", closefd=False)
        buf: Any = io.BufferedWriter(raw) if write else io.BufferedReader(raw)
        return io.TextIOWrapper(buf, encoding=like.encoding, errors=like.errors, newline="\n",
                                line_buffering=write and (fd == 2 or raw.isatty()))

    sys.stdin, sys.stdout, sys.stderr = (stream(0, sys.__stdin__), stream(1, sys.__stdout__),
                                         stream(2, sys.__stderr__))
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    main = types.ModuleType("__main__")
    main.__dict__.update(__builtins__=builtins, __cached__=None, __loader__=None)
    sys.modules["__main__"] = main
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    importlib.invalidate_caches()
    code, sig = 0, 0
    try:
        try:
            _run(argv, main, extra, base_path, ours)
        except SystemExit as e:
            code = _exit_code(e.code)
        except KeyboardInterrupt:  # python prints it, then dies of SIGINT
            _print_exception()
            sig = signal.SIGINT
        except BaseException:
            _print_exception()
            code = 1
        code, sig = _finish(code, sig)
    finally:
        if sig:
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        os._exit(code & 0xFF)


def _run(argv: list[str], main: Any, extra: list[str], base_path: list[str], ours: dict[str, str]) -> None:
    """`python -m mod …`, `python -c code …` or `python script …`, in the fresh `__main__`."""
    if argv[0] == "-m":
        import runpy

        sys.argv = [argv[1], *argv[2:]]
        sys.path[:] = [os.getcwd(), *extra, *base_path]
        _forget_moved(ours)
        runpy._run_module_as_main(argv[1], alter_argv=True)  # type: ignore[attr-defined]
    elif argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        sys.path[:] = ["", *extra, *base_path]
        _forget_moved(ours)
        exec(compile(argv[1], "<string>", "exec"), main.__dict__)
    else:
        from importlib.machinery import SourceFileLoader

        script = argv[0]
        sys.argv = list(argv)
        sys.path[:] = [os.path.dirname(os.path.realpath(script)), *extra, *base_path]
        _forget_moved(ours)
        main.__file__ = script
        main.__loader__ = SourceFileLoader("__main__", script)
        with open(script, "rb") as f:
            source = f.read()
        exec(compile(source, script, "exec", dont_inherit=True), main.__dict__)


def _preload_ours() -> dict[str, str]:
    """Import every module of OURS as the runs find them (the repository first); package -> its __init__ file."""
    import importlib
    import pkgutil

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, root)  # as the runs' PYTHONPATH puts it
    found: dict[str, str] = {}
    try:
        for pkg in OURS:
            try:
                module = importlib.import_module(pkg)
            except Exception:
                continue  # a run imports it itself (and fails as a fresh start would)
            found[pkg] = str(module.__file__)
            for info in pkgutil.walk_packages(module.__path__, f"{pkg}.", onerror=lambda _name: None):
                if not info.name.endswith(".__main__"):
                    with contextlib.suppress(Exception):
                        importlib.import_module(info.name)
    finally:
        sys.path.remove(root)
    leaked = sorted({m.split(".")[0] for m in sys.modules} & set(_NEVER))
    if leaked:
        raise RuntimeError(f"importing {', '.join(OURS)} imported {', '.join(leaked)}: a run must do that itself")
    return found


def _forget_moved(ours: dict[str, str]) -> None:
    """Drop a preloaded package that this run's sys.path would find elsewhere: the run imports it afresh."""
    for pkg, origin in ours.items():
        where = None
        for finder in sys.meta_path:
            try:
                spec = finder.find_spec(pkg, None)  # type: ignore[attr-defined]
            except Exception:
                continue
            if spec is not None:
                where = spec.origin
                break
        if where != origin:
            for name in [m for m in sys.modules if m == pkg or m.startswith(f"{pkg}.")]:
                del sys.modules[name]


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    with contextlib.suppress(Exception):
        print(value, file=sys.stderr)
    return 1


def _print_exception() -> None:
    """The traceback as `python` prints it, without this file's frames."""
    etype, value, tb = sys.exc_info()
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    if value is not None:
        value.__traceback__ = tb
    sys.excepthook(etype, value, tb)  # type: ignore[arg-type]


def _finish(code: int, sig: int) -> tuple[int, int]:
    """The start of interpreter shutdown: join non-daemon threads, run atexit, flush the streams."""
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        sig = signal.SIGINT
    atexit._run_exitfuncs()
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            code = code or 120
    return code, sig


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], sys.argv[3])
