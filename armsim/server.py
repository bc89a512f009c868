"""HTTPS front door: a threaded werkzeug server on loopback with a throwaway trustme CA.

Connections are kept alive (HTTP/1.1, as ARM keeps them): werkzeug's own handler closes every connection
after one answer, which made each request of a client a new TCP connection and TLS handshake. Faults that
reset the connection (`reset`, `lost_answer`) still end it.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

import trustme
from werkzeug.exceptions import InternalServerError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

from . import automation_control
from .arm import ArmError, Request, Response
from .sim import Settings, Simulator
from .throttle import kind_of, throttled_body

__all__ = ["Server", "serve"]


class Server:
    """A running armsim: `endpoint`, `ca_bundle`, the `sim` behind it, and `stop()`."""

    def __init__(self, sim: Simulator, httpd: BaseWSGIServer, ca_bundle: str) -> None:
        self.sim = sim
        self._httpd = httpd
        self.ca_bundle = ca_bundle
        self.endpoint = f"https://127.0.0.1:{httpd.server_port}"
        self._thread = threading.Thread(target=httpd.serve_forever, name="armsim", daemon=True)

    def start(self) -> Server:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tls(ca_dir: str) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA(organization_name="armsim test CA")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    path = os.path.join(ca_dir, "armsim-ca.pem")
    ca.cert_pem.write_to_path(path)
    return ctx, path


def serve(sim: Simulator | None = None, *, host: str = "127.0.0.1", port: int = 0,
          ca_dir: str | None = None) -> Server:
    """Start armsim over HTTPS on a loopback address; port 0 picks a free one."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("armsim serves loopback addresses only")
    sim = sim or Simulator()
    ctx, ca_path = _tls(ca_dir or tempfile.mkdtemp(prefix="armsim-"))
    app = _App(sim)
    httpd = make_server(host, port, app, threaded=True, ssl_context=ctx, request_handler=_KeepAlive)
    httpd.log = lambda *a, **k: None  # type: ignore[method-assign]
    httpd.RequestHandlerClass.log_request = lambda *a, **k: None  # type: ignore[attr-defined]
    return Server(sim, httpd, ca_path).start()


class _KeepAlive(WSGIRequestHandler):
    """werkzeug's handler (its WSGI environ), answering in one write and keeping the connection open."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        if not environ.get("wsgi.input_terminated"):  # not chunked: the body is exactly Content-Length bytes
            environ["wsgi.input"] = LimitedStream(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))  # type: ignore[arg-type]
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        try:
            body = b"".join(self.server.app(environ, start_response))  # type: ignore[attr-defined]
        except ConnectionError:  # a fault reset the connection: it is gone
            self.close_connection = True
            return
        except Exception:
            self.close_connection = True
            body = b"".join(InternalServerError()(environ, start_response))
        if environ.get("wsgi.input_terminated"):  # read what the app left, so the next request follows
            environ["wsgi.input"].read()
        else:
            environ["wsgi.input"].exhaust()
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, body, headers or {})


class _App:
    """The WSGI application: control routes under /_armsim/, everything else through the router."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        host = environ.get("HTTP_HOST", "127.0.0.1")
        headers["_base_url"] = f"https://{host}"
        headers["_url"] = f"https://{host}{path}" + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):
            if path.rstrip("/").lower() != "/webhooks":  # a webhook takes any body (automation-webhooks.md)
                resp = _json(400, ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.").body())
                return self._send(start_response, resp)
            body = None
        request = Request(method, path, query, headers, body, raw=raw)
        if path.startswith("/_armsim/") or path == "/_armsim":
            return self._send(start_response, self._control(request))
        return self._send(start_response, self._arm(request, environ))

    # --- ARM ---------------------------------------------------------------------------------
    def _arm(self, request: Request, environ: dict[str, Any]) -> Response:
        sim = self.sim
        matched = sim.router.match(request.method, request.path)
        if matched is None:
            resp = _json(501, ArmError(
                501, "NotImplemented",
                f"armsim does not serve {request.method} {request.path} (see armsim/COVERAGE.md).").body())
            sim.record(request.method, request.path, 501, request.method not in ("GET", "HEAD"), None)
            return resp
        route, params = matched
        request.params = params
        try:
            mutating = route.is_mutating(sim, request)
        except Exception:  # a malformed body: the handler will answer 400; count it as a write attempt
            mutating = request.method != "GET"
        if sim.settings.latency:
            time.sleep(sim.settings.latency)
        wait, limits = sim.throttle.admit(request.method, request.path, request.headers.get("authorization"))
        if wait is not None:  # ARM's token bucket is empty: 429, not processed (armsim/throttle.py)
            sim.record(request.method, request.path, 429, mutating, route.operation)
            body = throttled_body(kind_of(request.method), params.get("subscriptionId", ""), wait)
            return _json(429, body, {**limits, "Retry-After": str(int(wait))})
        for fault in sim.faults.take(request.method, request.path, route.operation):
            if fault.kind == "latency":
                time.sleep(fault.seconds)
            elif fault.kind == "reset":
                sim.record(request.method, request.path, 0, mutating, route.operation)
                _reset(environ)
            elif fault.kind in ("lro_failed", "lro_canceled"):
                request.params["_lro_fault"] = fault.kind
            elif fault.kind == "lost_answer":  # carried out, then the answer is lost
                sim.serve(request, route)
                sim.record(request.method, request.path, 0, mutating, route.operation)
                _reset(environ)
            else:
                err = fault.error()
                sim.record(request.method, request.path, err.status, mutating, route.operation)
                return _json(err.status, err.body(), dict(err.headers))
        resp = sim.serve(request, route)
        sim.record(request.method, request.path, resp.status, mutating, route.operation)
        resp.headers = {**limits, **resp.headers}
        return resp

    # --- control -----------------------------------------------------------------------------
    def _control(self, request: Request) -> Response:
        sim, what, m = self.sim, request.path.rstrip("/")[len("/_armsim"):], request.method
        body = request.body if isinstance(request.body, dict) else {}
        if what == "/requests" and m == "GET":
            return _json(200, [{k: e[k] for k in ("method", "path", "status", "mutating", "operation")}
                               for e in sim.requests()])
        if what == "/requests" and m == "DELETE":
            sim.clear_requests()
            return _json(204, None)
        if what == "/reset" and m == "POST":
            sim.faults.clear()
            sim.reset(body.get("scenario"))
            return _json(200, {"scenario": sim.scenario_name})
        if what == "/faults" and m == "GET":
            return _json(200, sim.faults.describe())
        if what == "/faults" and m == "POST":
            try:
                return _json(201, asdict(sim.faults.add(**body)))
            except (TypeError, ValueError) as e:
                return _json(400, {"error": {"code": "InvalidFault", "message": str(e)}})
        if what == "/faults" and m == "DELETE":
            sim.faults.clear()
            return _json(204, None)
        if what == "/settings" and m == "GET":
            return _json(200, asdict(sim.settings))
        if what == "/settings" and m in ("POST", "PATCH"):
            known = set(Settings.__dataclass_fields__)
            bad = set(body) - known
            if bad:
                return _json(400, {"error": {"code": "InvalidSetting", "message": f"unknown settings: {sorted(bad)}"}})
            for k, v in body.items():
                setattr(sim.settings, k, v)
            return _json(200, asdict(sim.settings))
        if what == "/clock" and m == "GET":
            return _json(200, sim.clock.describe())
        if what == "/clock" and m == "POST":  # {"advance": seconds}: time moves on, jobs and operations with it
            try:
                return _json(200, sim.advance_clock(float(body.get("advance", 0))))
            except (TypeError, ValueError) as e:
                return _json(400, {"error": {"code": "InvalidClock", "message": str(e)}})
        if what.startswith("/automation/"):
            return automation_control.control(sim, request, what[len("/automation"):])
        if what == "/state" and m == "GET":
            return _json(200, sim.compute.describe())
        return _json(501, {"error": {"code": "NotImplemented",
                                     "message": f"armsim control does not serve {m} {request.path}"}})

    def _send(self, start_response: Any, resp: Response) -> list[bytes]:
        text = isinstance(resp.body, str) and resp.headers.get("Content-Type", "").startswith("text/")
        payload = (str(resp.body).encode() if text else
                   b"" if resp.body is None or resp.status == 204 else json.dumps(resp.body).encode())
        headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": str(uuid.uuid4()),
            **resp.headers,
        }
        sas = str(self.sim.settings.extra.get("url_sas") or "")
        for name in ("Location", "Azure-AsyncOperation") if sas else ():  # a signed operation URL (a secret)
            if headers.get(name) and sas not in headers[name]:
                headers[name] += ("&" if "?" in headers[name] else "?") + sas
        if payload and not text:
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Content-Length"] = str(len(payload))
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(resp.status, "Status")
        start_response(f"{resp.status} {reason}", list(headers.items()))
        return [payload]


def _reset(environ: dict[str, Any]) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), then unwind quietly."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)  # close() alone leaves it open while the handler's files refer to it
        socket.socket.close(sock)
    raise ConnectionResetError("armsim fault: connection reset")
