#!/usr/bin/env python3
"""Integration tests of h3wt-server and h3wt-client (HTTP/3 over real UDP).

Usage:
    h3wt_itest.py --server PATH --client PATH --curl PATH CASE
    h3wt_itest.py --list

Each case starts its own h3wt-server on an ephemeral port with a private
certificate folder and web folder (below one temporary directory), drives it
with curl (built with HTTP/3) and/or h3wt-client, and asserts on real
content.  Whatever happens, every server is stopped with SIGTERM at the end
and must exit 0 within 10 s with "h3wt-server: stopped" on stderr: that
catches hangs and libuv handle leaks at shutdown (and, in the sanitizer
build, leaks and memory errors, which make the exit status non-zero).

Python 3.11 standard library only.  Every subprocess has a timeout; a case
stays well under 60 s even with a 3-5x slower (ASan) build.
"""

import argparse
import hashlib
import json
import os
import random
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HELLO = b"Hello from h3wt, an HTTP/3 and WebTransport server.\n"
SECRET = "TOP-SECRET-7f3a9c-must-never-be-served"
BIG_SIZE = 10 * 1024 * 1024
STARTUP_TIMEOUT = 20.0  # server start (the first one makes a certificate)
STOP_TIMEOUT = 10.0  # SIGTERM -> exit
# H3WT_SERVER_WRAPPER runs every server under a tool, e.g. valgrind (see
# scripts/valgrind.sh); such a tool makes it ~20x slower, so waits grow.
WRAPPER = os.environ.get("H3WT_SERVER_WRAPPER", "").split()
if WRAPPER:
    STARTUP_TIMEOUT *= 10
    STOP_TIMEOUT *= 10
CMD_TIMEOUT = 300.0 if WRAPPER else 30.0  # default limit of one curl / h3wt-client run

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")

ARGS = None  # the parsed command line
CASES = {}  # name -> (function, needs_curl)


class TestFailure(Exception):
    """An assertion about the server's behaviour did not hold."""


def case(needs_curl):
    """Registers a test case under its function name."""
    def register(fn):
        CASES[fn.__name__] = (fn, needs_curl)
        return fn
    return register


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


def log(msg):
    print(f"[itest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def short(data, limit=300):
    """A printable, bounded rendering of bytes or str for messages."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data if len(data) <= limit else data[:limit] + f"...[{len(data)} chars]"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clean_env():
    """The environment for child processes: no inherited keylog, certificate
    folder or proxy settings that could change what is being tested."""
    env = dict(os.environ)
    for k in list(env):
        if k.lower() in ("sslkeylogfile", "h3wt_cert_dir", "curl_home",
                         "http_proxy", "https_proxy", "all_proxy",
                         "no_proxy"):
            del env[k]
    return env


def cmd_text(cmd):
    return " ".join(str(c) for c in cmd)


def run(cmd, timeout=CMD_TIMEOUT, input=None):
    """Runs cmd to completion (bytes out/err); a timeout is a failure."""
    cmd = [str(c) for c in cmd]
    log("$ " + cmd_text(cmd))
    try:
        return subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              env=clean_env())
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"command did not finish within {timeout} s: "
                          f"{cmd_text(cmd)}\nstderr: {short(e.stderr or b'', 2000)}")


# ---- HTTP responses -----------------------------------------------------


class Response:
    """One HTTP response: status, headers (lower-case names, list of values),
    body bytes, plus the tool's exit code and stderr."""

    def __init__(self, status, headers, body, rc=0, stderr=b""):
        self.status = status
        self.headers = headers
        self.body = body
        self.rc = rc
        self.stderr = stderr

    def header(self, name):
        v = self.headers.get(name.lower())
        return None if v is None else ", ".join(v)

    def __repr__(self):
        return (f"<status {self.status} rc {self.rc} headers {self.headers} "
                f"body {short(self.body, 200)!r} stderr {short(self.stderr, 300)!r}>")


def parse_head(text, sep):
    """Parses 'HTTP/3 200' + header lines (separated by sep) into
    (status, headers)."""
    lines = [l for l in text.split(sep) if l]
    check(lines and lines[0].startswith("HTTP/3 "),
          f"no 'HTTP/3 <status>' line in response head {text!r}")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        check(colon, f"malformed header line {line!r}")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers


def parse_curl_i(out):
    """Splits curl -i output (CRLF head, blank line, body)."""
    head, sep, body = out.partition(b"\r\n\r\n")
    check(sep, f"no end of headers in curl -i output {short(out)!r}")
    return parse_head(head.decode("latin-1"), "\r\n") + (body,)


def parse_client_output(out):
    """Splits h3wt-client's default output (LF head, blank line, body)."""
    head, sep, body = out.partition(b"\n\n")
    check(sep, f"no end of headers in h3wt-client output {short(out)!r}")
    return parse_head(head.decode("latin-1"), "\n") + (body,)


SUMMARY_RE = re.compile(
    r"requests: (\d+), completed: (\d+), failed: (\d+), 2xx: (\d+), "
    r"3xx: (\d+), 4xx: (\d+), 5xx: (\d+)")


def describe_rc(rc):
    if rc is not None and rc < 0:
        return f"killed by signal {-rc} ({signal.Signals(-rc).name}: a crash?)"
    return f"exit status {rc}"


def check_rc(p, want, what):
    """Checks a CompletedProcess's exit status, naming crashes as such."""
    if p.returncode != want:
        raise TestFailure(f"{what}: expected exit status {want}, got "
                          f"{describe_rc(p.returncode)}; stderr "
                          f"{short(p.stderr, 1000)!r}")


def parse_summary(out, err=b"", rc=None):
    m = SUMMARY_RE.search(out.decode("utf-8", "replace"))
    check(m, f"no summary line in h3wt-client -n output {short(out)!r} "
             f"({describe_rc(rc)}, stderr {short(err, 1000)!r})")
    keys = ("requests", "completed", "failed", "2xx", "3xx", "4xx", "5xx")
    return dict(zip(keys, map(int, m.groups())))


def media_type(ct):
    return (ct or "").split(";")[0].strip().lower()


# ---- the server under test ---------------------------------------------------

_HELP = None


def server_help():
    """h3wt-server --help (cached)."""
    global _HELP
    if _HELP is None:
        p = run([ARGS.server, "--help"], timeout=10)
        _HELP = p.stdout.decode("utf-8", "replace")
    return _HELP


def isolation_args():
    """Options that keep a test server off fixed ports: the HTTP/1.1 demo
    page listener (default localhost:8080), where the server has one, goes
    on an ephemeral port, so parallel tests never share or fight over it."""
    return ["--http-port", "0"] if "--http-port" in server_help() else []



class Server:
    """One h3wt-server process on an ephemeral port."""

    def __init__(self, t, addr="127.0.0.1", extra=(), web=None, name=None):
        self.t = t
        self.addr = addr
        self.name = name or f"server{len(t.servers)}"
        self.web = web or t.web
        self.out_path = os.path.join(t.dir, self.name + ".stdout")
        self.err_path = os.path.join(t.dir, self.name + ".stderr")
        self.cmd = WRAPPER + [ARGS.server, "--port", "0", "--cert-dir", t.certdir,
                    "--web", self.web, *isolation_args()]
        if addr is not None:
            self.cmd += ["--addr", addr]
        self.cmd += [str(x) for x in extra]
        self.proc = None
        self.port = None
        self.stopped = False

    def start(self):
        log(f"start {self.name}: {cmd_text(self.cmd)}")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL,
                                         env=clean_env())
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"listening on (\S+) port (\d+)", self.stdout())
            if m:
                self.port = int(m.group(2))
                check(self.port > 0, f"server reported port {self.port}")
                log(f"{self.name} listening on {m.group(1)} port {self.port}")
                return self
            if self.proc.poll() is not None:
                raise TestFailure(f"{self.name} exited with {self.proc.returncode} "
                                  f"before listening")
            time.sleep(0.02)
        raise TestFailure(f"{self.name} did not print its port within "
                          f"{STARTUP_TIMEOUT} s; stdout: {short(self.stdout())!r}")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def url(self, path="/", host="127.0.0.1"):
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}{path}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, when):
        check(self.alive(), f"{self.name} died {when} (exit status "
                            f"{self.proc.returncode})")

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; must exit 0 within timeout with 'stopped' on stderr."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        check(self.alive(), f"{self.name} was already dead before SIGTERM "
                            f"(exit status {self.proc.returncode})")
        log(f"SIGTERM {self.name}")
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {timeout} s "
                              f"of SIGTERM (hang at shutdown)")
        log(f"{self.name} exited {rc} after {time.monotonic() - t0:.2f} s")
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            check(marker not in err, f"{self.name}: sanitizer report "
                                     f"({marker!r}) on stderr")
        check_eq(rc, 0, f"{self.name} exit status after SIGTERM")
        check("h3wt-server: stopped" in err,
              f"{self.name}: no 'h3wt-server: stopped' on stderr after SIGTERM")

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)


class Test:
    """The context of one case: temp dir, web dir, servers, helpers."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="h3wt-itest-")
        self.certdir = os.path.join(self.dir, "certs")
        self.web = os.path.join(self.dir, "web")
        self.servers = []
        self.procs = []
        self.counter = 0
        make_web(self.dir, self.web)

    def path(self, name):
        return os.path.join(self.dir, name)

    def fresh(self, stem):
        self.counter += 1
        return self.path(f"{stem}.{self.counter}")

    def server(self, addr="127.0.0.1", extra=(), web=None):
        s = Server(self, addr=addr, extra=extra, web=web)
        self.servers.append(s)
        return s.start()

    def popen(self, cmd, **kw):
        cmd = [str(c) for c in cmd]
        log("$ " + cmd_text(cmd) + " &")
        p = subprocess.Popen(cmd, env=clean_env(), stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    # -- curl --

    def curl_cmd(self, url, *extra, timeout=CMD_TIMEOUT):
        # -q (first) ignores any .curlrc
        return [ARGS.curl, "-q", "--http3-only", "-k", "-s", "-S",
                "--max-time", str(int(timeout)), *extra, url]

    def curl(self, url, *extra, timeout=CMD_TIMEOUT, output=None):
        """Runs curl, the head to a -D file and the body to a -o file (output
        or a fresh temp file); returns a Response (status 0 if none)."""
        hdr = self.fresh("curl-head")
        body = output or self.fresh("curl-body")
        cmd = self.curl_cmd(url, "-D", hdr, "-o", body, *extra, timeout=timeout)
        p = run(cmd, timeout=timeout + 10)
        return self.curl_response(p.returncode, p.stderr, hdr, body, output)

    def curl_response(self, rc, stderr, hdr, body, output=None):
        head = open(hdr, "rb").read().decode("latin-1") if os.path.exists(hdr) else ""
        data = b""
        if output is None and os.path.exists(body):
            data = open(body, "rb").read()
        if not head:
            return Response(0, {}, data, rc, stderr)
        # keep only the last head (after any 1xx)
        heads = [h for h in head.split("\r\n\r\n") if h.strip()]
        status, headers = parse_head(heads[-1], "\r\n")
        return Response(status, headers, data, rc, stderr)

    def curl_ok(self, url, *extra, status=200, **kw):
        r = self.curl(url, *extra, **kw)
        check(r.rc == 0, f"curl {url} failed with exit code {r.rc}: "
                         f"{short(r.stderr)}")
        check_eq(r.status, status, f"status of curl {' '.join(extra)} {url}")
        return r

    # -- h3wt-client --

    def client(self, url, *extra, timeout=CMD_TIMEOUT):
        cmd = [ARGS.client, "-k", "--timeout", str(int(timeout)), *extra, url]
        return run(cmd, timeout=timeout + 10)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass


def make_web(base, web):
    """The web folder, plus secrets next to (outside) it."""
    os.makedirs(os.path.join(web, "sub"))
    os.makedirs(os.path.join(web, ".git"))
    files = {
        "index.html": "<!doctype html><title>root</title>ROOT-INDEX\n",
        "page.html": "<!doctype html><title>page</title>PAGE-MARKER\n",
        "style.css": "body { color: #123456; }\n",
        "app.js": "console.log('h3wt');\n",
        "data.json": '{"k": [1, 2, 3]}\n',
        "notes.txt": "plain notes\n",
        "sub/index.html": "<!doctype html><title>sub</title>SUB-INDEX-MARKER\n",
        "sub/file.txt": "in sub\n",
        ".hidden": SECRET + " (hidden file)\n",
        ".git/config": SECRET + " (git config)\n",
    }
    for name, text in files.items():
        with open(os.path.join(web, name), "w") as f:
            f.write(text)
    with open(os.path.join(web, "img.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    for name in ("secret.txt", "x", "secret"):
        with open(os.path.join(base, name), "w") as f:
            f.write(SECRET + f" ({name} outside the web folder)\n")


def make_big(t):
    """A 10 MiB random file in the web folder; returns its sha256."""
    path = os.path.join(t.web, "big.bin")
    data = os.urandom(BIG_SIZE)
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def echo_json(t, srv, body, *extra):
    """POSTs body (bytes) to /echo with curl."""
    f = t.fresh("req-body")
    with open(f, "wb") as fh:
        fh.write(body)
    return t.curl(srv.url("/echo"), "-H", "content-type: application/json",
                  "--data-binary", "@" + f, *extra)


# ---- cases: curl -------------------------------------------------------------


@case(needs_curl=True)
def curl_get_root(t):
    """GET / over HTTP/3 with curl -i: 200, the exact hello text, and the
    content-type, server and alt-svc (naming the real port) headers."""
    srv = t.server()
    p = run(t.curl_cmd(srv.url("/"), "-i"), timeout=CMD_TIMEOUT)
    check_rc(p, 0, f"curl exit code (stderr {short(p.stderr)!r})")
    status, headers, body = parse_curl_i(p.stdout)
    r = Response(status, headers, body)
    check_eq(r.status, 200, "status of GET /")
    check_eq(r.body, HELLO, "body of GET /")
    check(media_type(r.header("content-type")) == "text/plain",
          f"content-type of GET / is {r.header('content-type')!r}, want text/plain")
    check((r.header("server") or "").startswith("h3wt/"),
          f"server header is {r.header('server')!r}, want h3wt/<version>")
    check(f'h3=":{srv.port}"' in (r.header("alt-svc") or ""),
          f"alt-svc is {r.header('alt-svc')!r}, want h3=\":{srv.port}\"")
    if r.header("content-length") is not None:
        check_eq(int(r.header("content-length")), len(HELLO), "content-length")


@case(needs_curl=True)
def curl_echo_valid(t):
    """POST /echo with a nested JSON document (unicode, numbers, literals):
    200 application/json, the same value back, pretty-printed with 2-space
    indentation."""
    srv = t.server()
    doc = {
        "name": "h3wt \u2713 \u00fcn\u00efc\u00f6d\u00e9 \u65e5\u672c\u8a9e \U0001F680",
        "escapes": "quote \" backslash \\ tab \t newline \n",
        "int": 42, "neg": -7, "big": 9007199254740991, "pi": 3.14159,
        "exp": 1.5e300, "tiny": -2.5e-10,
        "nested": {"list": [1, 2.5, {"deep": [True, False, None]}],
                   "empty_obj": {}, "empty_arr": []},
    }
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    r = echo_json(t, srv, raw)
    check(r.rc == 0, f"curl failed: {r!r}")
    check_eq(r.status, 200, "status of a valid POST /echo")
    check_eq(media_type(r.header("content-type")), "application/json",
             "content-type of /echo")
    try:
        back = json.loads(r.body.decode("utf-8"))
    except ValueError as e:
        raise TestFailure(f"/echo body is not JSON ({e}): {short(r.body)!r}")
    check_eq(back, doc, "echoed JSON value")
    text = r.body.decode("utf-8")
    check("\n" in text.strip(), f"echo is not pretty-printed: {short(text)!r}")
    lines = text.splitlines()
    check(lines[0] == "{" and lines[-1] == "}", f"unexpected layout: {short(text)!r}")
    top = [l for l in lines[1:-1] if re.match(r'^ *"(name|int|nested)":', l)]
    check(len(top) == 3 and all(l.startswith('  "') for l in top),
          f"top-level keys not indented by exactly 2 spaces: {top!r}")
    check(any(l.startswith('    "list":') for l in lines),
          "nested key not indented by 4 spaces")
    # also non-object values echo (JSON_DECODE_ANY)
    r = echo_json(t, srv, b"  [1, \"two\", 3.5]  ")
    check_eq((r.status, json.loads(r.body)), (200, [1, "two", 3.5]), "echo of an array")


@case(needs_curl=True)
def curl_echo_invalid(t):
    """Invalid JSON bodies give 400 with a JSON error object naming where
    jansson stopped; one multi-line input is checked for exact line/column."""
    srv = t.server()
    bad = [b'{"a": [1, 2', b'{"a": 1} trailing', b"", b"[", b"}",
           b'{"a": nul}', b'{"a": "\xff"}', b"\x00"]
    for body in bad:
        r = echo_json(t, srv, body)
        check(r.rc == 0, f"curl failed for {body!r}: {r!r}")
        check_eq(r.status, 400, f"status for invalid JSON {body!r}")
        check_eq(media_type(r.header("content-type")), "application/json",
                 f"content-type of the 400 for {body!r}")
        try:
            err = json.loads(r.body)
        except ValueError:
            raise TestFailure(f"400 body for {body!r} is not JSON: {short(r.body)!r}")
        for k in ("error", "detail", "line", "column", "position"):
            check(k in err, f"error object for {body!r} lacks {k!r}: {err!r}")
        check(isinstance(err["detail"], str) and err["detail"],
              f"empty detail for {body!r}: {err!r}")
        for k in ("line", "column", "position"):
            check(isinstance(err[k], int) and err[k] >= 0,
                  f"{k} for {body!r} is not an int >= 0: {err!r}")
        check(err["position"] <= len(body), f"position beyond the input: {err!r}")
    # Exact positions.  jansson counts lines from 1 and reports the column
    # (1-based, in characters) and byte position of the last character it
    # read: for the '2' on line 3 below, column 7 and position 19.
    r = echo_json(t, srv, b'{\n  "a": 1,\n  "b" 2\n}\n')
    err = json.loads(r.body)
    check_eq((r.status, err["line"], err["column"], err["position"]),
             (400, 3, 7, 19), "status/line/column/position for a missing ':'")
    check("':' expected" in err["detail"], f"detail {err['detail']!r}")
    r = echo_json(t, srv, b'{"a": [1, 2')
    err = json.loads(r.body)
    check_eq((err["line"], err["column"], err["position"]), (1, 11, 11),
             "line/column/position for a truncated document")
    check("end of file" in err["detail"], f"detail {err['detail']!r}")
    r = echo_json(t, srv, b"")
    err = json.loads(r.body)
    check_eq((err["line"], err["column"], err["position"]), (1, 0, 0),
             "line/column/position for an empty body")


@case(needs_curl=True)
def curl_echo_too_large(t):
    """With --max-body 65536: 1 MB -> 413 (the server stops reading); the
    server then still serves a new client; a JSON body of exactly 65536
    bytes -> 200, and 65537 bytes -> 413."""
    limit = 65536
    srv = t.server(extra=["--max-body", limit])
    big = b'"' + b"a" * (1024 * 1024 - 2) + b'"'
    r = echo_json(t, srv, big)
    check_eq(r.status, 413, f"status for a 1 MB body over a 64 KiB limit ({r!r})")
    srv.check_alive("after a body over the limit")
    r = t.curl_ok(srv.url("/"))
    check_eq(r.body, HELLO, "GET / after the 413")
    exact = b'"' + b"b" * (limit - 2) + b'"'
    check_eq(len(exact), limit, "test body size")
    r = echo_json(t, srv, exact)
    check_eq(r.status, 200, f"status for a body exactly at the limit ({r!r})")
    check_eq(json.loads(r.body), "b" * (limit - 2), "echo of the body at the limit")
    over = b'"' + b"c" * (limit - 1) + b'"'
    r = echo_json(t, srv, over)
    check_eq(r.status, 413, f"status for a body one byte over the limit ({r!r})")
    r = t.curl_ok(srv.url("/"))
    check_eq(r.body, HELLO, "GET / at the end")


@case(needs_curl=True)
def curl_echo_wrong_method(t):
    """GET, PUT, DELETE and PATCH on /echo -> 405 with an allow header naming
    POST."""
    srv = t.server()
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        extra = ["-X", method]
        if method in ("PUT", "PATCH"):
            extra += ["--data-binary", '{"a":1}']
        r = t.curl(srv.url("/echo"), *extra)
        check(r.rc == 0, f"curl {method} /echo failed: {r!r}")
        check_eq(r.status, 405, f"status of {method} /echo")
        allow = r.header("allow")
        check(allow is not None and "POST" in [a.strip() for a in allow.split(",")],
              f"allow header of {method} /echo is {allow!r}, want POST in it")


@case(needs_curl=True)
def curl_not_found(t):
    """GET/HEAD of paths that match no route and no file -> 404."""
    srv = t.server()
    for path in ("/nope", "/nope.html", "/sub/missing.txt", "/echo/extra",
                 "/index.html/x", "/sub", "/" + "a" * 3000,
                 "/no/such/dir/", "/nope?x=/notes.txt"):
        r = t.curl(srv.url(path), "--path-as-is")
        check(r.rc == 0, f"curl {path} failed: {r!r}")
        check_eq(r.status, 404, f"status of GET {short(path, 60)}")
    r = t.curl(srv.url("/nope"), "-I")
    check_eq(r.status, 404, "status of HEAD /nope")


@case(needs_curl=True)
def curl_static_10mb(t):
    """Static files: a 10 MiB random file arrives intact (sha256) with its
    content-length; content-type by extension; HEAD gives the length and no
    body; "/sub/" serves sub/index.html."""
    digest = make_big(t)
    srv = t.server()
    out = t.path("big.download")
    r = t.curl_ok(srv.url("/big.bin"), output=out, timeout=60)
    check_eq(os.path.getsize(out), BIG_SIZE, "size of the downloaded file")
    check_eq(sha256_file(out), digest, "sha256 of the downloaded file")
    check_eq(r.header("content-length"), str(BIG_SIZE), "content-length of big.bin")
    check_eq(media_type(r.header("content-type")), "application/octet-stream",
             "content-type of .bin")
    want = {"page.html": ("text/html",), "style.css": ("text/css",),
            "app.js": ("text/javascript", "application/javascript"),
            "data.json": ("application/json",), "img.png": ("image/png",),
            "notes.txt": ("text/plain",)}
    for name, types in want.items():
        r = t.curl_ok(srv.url("/" + name))
        check(media_type(r.header("content-type")) in types,
              f"content-type of {name} is {r.header('content-type')!r}, want {types}")
        check_eq(r.body, open(os.path.join(t.web, name), "rb").read(),
                 f"body of {name}")
    r = t.curl_ok(srv.url("/big.bin"), "-I")
    check_eq(r.header("content-length"), str(BIG_SIZE), "content-length of HEAD")
    # curl -I would not read a body even if one came: ask h3wt-client too.
    p = t.client(srv.url("/big.bin"), "-X", "HEAD")
    check_rc(p, 0, f"h3wt-client HEAD exit code ({short(p.stderr)})")
    status, headers, body = parse_client_output(p.stdout)
    check_eq((status, headers.get("content-length")), (200, [str(BIG_SIZE)]),
             "HEAD status and content-length (h3wt-client)")
    check_eq(body, b"", "body of a HEAD response")
    r = t.curl_ok(srv.url("/sub/"))
    check(b"SUB-INDEX-MARKER" in r.body, f"/sub/ did not serve sub/index.html: {r!r}")
    check_eq(media_type(r.header("content-type")), "text/html", "content-type of /sub/")
    r = t.curl_ok(srv.url("/sub/file.txt"))
    check_eq(r.body, b"in sub\n", "body of /sub/file.txt")


@case(needs_curl=True)
def curl_path_escape(t):
    """Traversal, encoded separators, hidden files and malformed escapes
    never serve a file (no 200, no secret content) and get 404 or 400."""
    srv = t.server()
    expect = {
        "/../x": (404,),
        "/../secret.txt": (404,),
        "/sub/../../secret.txt": (404,),
        "/%2e%2e/%2e%2e/etc/passwd": (404,),
        "/%2E%2E/secret.txt": (404,),
        "/.%2e/secret.txt": (404,),
        "/a/%2f..%2fsecret": (400, 404),
        "/sub/..%2f..%2fsecret.txt": (400, 404),
        "/sub/..%5c..%5csecret.txt": (400, 404),
        "/%2fetc%2fpasswd": (400, 404),
        "/.hidden": (404,),
        "/.git/config": (404,),
        "/sub/../.hidden": (404,),
        "/%2ehidden": (404,),
        "/%00": (400,),
        "/notes.txt%00.html": (400,),
        "/%zz": (400,),
        "/%": (400,),
        "/%2": (400,),
        "//etc/passwd": (404,),
    }
    for path, statuses in expect.items():
        r = t.curl(srv.url(path), "--path-as-is")
        check(r.rc == 0, f"curl {path} failed: {r!r}")
        check(SECRET.encode() not in r.body, f"{path} served a secret file!")
        check(b"root:x:0:0" not in r.body, f"{path} served /etc/passwd!")
        check(r.status != 200, f"{path} got 200: {r!r}")
        check(r.status in statuses, f"status of {path} is {r.status}, want {statuses}")
    r = t.curl_ok(srv.url("/notes.txt"))  # still serving normal files
    check_eq(r.body, b"plain notes\n", "body of /notes.txt")
    r = t.curl_ok(srv.url("/%6eotes.txt"), "--path-as-is")
    check_eq(r.body, b"plain notes\n", "body of /%6eotes.txt (escaped 'n')")


@case(needs_curl=True)
def curl_ipv6_and_ipv4(t):
    """The default --addr (::) is dual-stack: 127.0.0.1 and [::1] both
    answer."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
    except OSError as e:
        raise TestFailure(f"this machine has no usable IPv6 loopback (::1): {e}; "
                          f"the dual-stack test needs one")
    srv = Server(t, addr=None)  # the default address
    t.servers.append(srv)
    srv.start()
    check(re.search(r"listening on :: port", srv.stdout()),
          f"default address is not '::': {srv.stdout()!r}")
    for host in ("127.0.0.1", "::1"):
        r = t.curl_ok(srv.url("/", host))
        check_eq(r.body, HELLO, f"body of GET / via {host}")
        p = t.client(srv.url("/", host), "-s")
        check_eq((p.returncode, p.stdout), (0, HELLO), f"h3wt-client via {host}")


@case(needs_curl=True)
def curl_concurrent(t):
    """20 curl processes at once (GET / and POST /echo with distinct bodies)
    all get their own correct answer."""
    srv = t.server()
    jobs = []
    for i in range(20):
        hdr, body = t.fresh("ch"), t.fresh("cb")
        if i % 2 == 0:
            extra, want = [], ("get", HELLO)
        else:
            doc = {"id": i, "data": "x" * (i * 500), "u": "\u00e9\u20ac"}
            extra = ["-H", "content-type: application/json",
                     "--data-binary", json.dumps(doc)]
            extra, want = extra, ("echo", doc)
        url = srv.url("/" if i % 2 == 0 else "/echo")
        cmd = t.curl_cmd(url, "-D", hdr, "-o", body, *extra, timeout=40)
        p = t.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        jobs.append((i, p, hdr, body, want))
    for i, p, hdr, body, (kind, want) in jobs:
        try:
            _, err = p.communicate(timeout=50)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"concurrent curl #{i} did not finish")
        r = t.curl_response(p.returncode, err, hdr, body)
        check(r.rc == 0, f"concurrent curl #{i} failed: {r!r}")
        check_eq(r.status, 200, f"status of concurrent curl #{i}")
        if kind == "get":
            check_eq(r.body, HELLO, f"body of concurrent GET #{i}")
        else:
            check_eq(json.loads(r.body), want, f"echo of concurrent POST #{i}")


@case(needs_curl=True)
def keylog_and_qlog(t):
    """--keylog writes the TLS 1.3 secrets in NSS key log format and
    --qlog-dir one ngtcp2 JSON-SEQ qlog per connection (server vantage
    point, with packet events)."""
    keylog = t.path("keys.log")
    qdir = t.path("qlog")  # not created: the server must create it
    srv = t.server(extra=["--keylog", keylog, "--qlog-dir", qdir])
    r = t.curl_ok(srv.url("/"))
    check_eq(r.body, HELLO, "body of GET /")
    srv.stop()  # closes every connection, so the qlog files are complete
    check(os.path.exists(keylog), "keylog file was not created")
    labels = {}
    for line in open(keylog).read().splitlines():
        parts = line.split()
        check(len(parts) == 3 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[1])
              and re.fullmatch(r"[0-9a-fA-F]{64,96}", parts[2]),
              f"malformed keylog line {line!r}")
        labels.setdefault(parts[0], 0)
        labels[parts[0]] += 1
    for label in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                  "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"):
        check(labels.get(label), f"no {label} line in the keylog: {labels}")
    check(os.path.isdir(qdir), "qlog dir was not created")
    files = [f for f in os.listdir(qdir) if os.path.getsize(os.path.join(qdir, f)) > 0]
    check(files, f"no non-empty qlog file in {qdir}: {os.listdir(qdir)}")
    text = open(os.path.join(qdir, files[0]), encoding="utf-8").read()
    records = [json.loads(rec) for rec in text.split("\x1e") if rec.strip()]
    check(records, f"qlog file {files[0]} has no JSON-SEQ records")
    head = records[0]
    check_eq(head.get("qlog_format"), "JSON-SEQ", "qlog_format")
    check("qlog_version" in head, f"no qlog_version in {short(str(head))}")
    check_eq(head.get("trace", {}).get("vantage_point", {}).get("type"), "server",
             "qlog vantage point")
    names = {rec.get("name") for rec in records[1:]}
    check({"transport:packet_received", "transport:packet_sent"} <= names,
          f"qlog has no packet events: {sorted(n for n in names if n)}")


@case(needs_curl=True)
def shutdown_clean(t):
    """SIGTERM in the middle of transfers (a rate-limited curl and an
    h3wt-client fetching 60 copies of a 10 MiB file) that cannot finish
    within the 300 ms drain deadline: the server exits 0 within 6 s, and
    neither client reports success."""
    make_big(t)
    srv = t.server(extra=["--drain-timeout", "300"])
    out = t.path("slow.download")
    curl = t.popen(t.curl_cmd(srv.url("/big.bin"), "-o", out,
                              "--limit-rate", "100k", timeout=60),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = t.popen([ARGS.client, "-k", "--timeout", "60", "-n", "60",
                      srv.url("/big.bin")],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        started = srv.stderr().count("GET /big.bin 200")
        if started >= 2 and os.path.exists(out) and os.path.getsize(out) > 0:
            break
        check(curl.poll() is None, f"curl ended before SIGTERM: {curl.returncode}")
        check(client.poll() is None, f"h3wt-client ended before SIGTERM: "
                                     f"{client.returncode}")
        time.sleep(0.01)
    else:
        raise TestFailure("transfers did not start within 20 s")
    check(client.poll() is None, "h3wt-client finished 600 MB before SIGTERM")
    srv.stop(timeout=STOP_TIMEOUT * 0.6)
    try:
        _, cerr = curl.communicate(timeout=15)
        cout, clerr = client.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        raise TestFailure("a client did not notice the server shut down within 15 s")
    got = os.path.getsize(out)
    log(f"curl exit {curl.returncode} after {got} bytes: {short(cerr)}")
    log(f"h3wt-client exit {client.returncode}: {short(cout)} {short(clerr)}")
    check(got < BIG_SIZE, "the rate-limited download completed before SIGTERM?")
    check(curl.returncode > 0, f"curl: {describe_rc(curl.returncode)} for a cut "
                               f"transfer, want an error exit")
    check(client.returncode > 0, f"h3wt-client: {describe_rc(client.returncode)} "
                                 f"for cut transfers, want an error exit")
    summary = parse_summary(cout, clerr, client.returncode)
    check(summary["failed"] > 0, f"h3wt-client summary shows no failure: {summary}")


@case(needs_curl=True)
def shutdown_drains_requests(t):
    """SIGTERM while curl downloads 10 MiB at 4 MB/s, with a 60 s drain
    deadline: the download completes byte-exact (GOAWAY lets requests in
    flight finish), and the server exits 0 as soon as it is done, not at
    the deadline."""
    want = make_big(t)
    srv = t.server(extra=["--drain-timeout", "60000"])
    out = t.path("drained.download")
    curl = t.popen(t.curl_cmd(srv.url("/big.bin"), "-o", out,
                              "--limit-rate", "4M", timeout=60),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not (os.path.exists(out) and os.path.getsize(out) > 0):
        check(time.monotonic() < deadline, "the download did not start within 20 s")
        check(curl.poll() is None, f"curl ended before SIGTERM: {curl.returncode}")
        time.sleep(0.01)
    t0 = time.monotonic()
    srv.stop(timeout=STOP_TIMEOUT * 6)
    took = time.monotonic() - t0
    _, cerr = curl.communicate(timeout=15)
    check_eq(curl.returncode, 0, f"curl exit status for a drained download ({short(cerr)})")
    check_eq(sha256_file(out), want,
             "SHA-256 of the download finished during the drain")
    check(took < 30, f"the server took {took:.1f} s to exit after the download ended")
    err = srv.stderr()
    check(re.search(r"draining 1 connection", err), "no 'draining' line")
    check(re.search(r" server +drained$", err, re.M), "no 'drained' line")


# ---- cases: h3wt-client ------------------------------------------------------


@case(needs_curl=False)
def client_get_and_echo(t):
    """h3wt-client: GET / output format, POST /echo with -d and -d @file,
    -H is really sent, -f exits 22 on 404, -o writes the body to a file."""
    srv = t.server()
    p = t.client(srv.url("/"))
    check_rc(p, 0, f"exit code of GET / ({short(p.stderr)})")
    check(p.stdout.startswith(b"HTTP/3 200\n"), f"first line: {short(p.stdout)!r}")
    status, headers, body = parse_client_output(p.stdout)
    check_eq(body, HELLO, "body of GET /")
    check_eq(media_type(headers.get("content-type", [""])[0]), "text/plain",
             "content-type")
    check(headers.get("server", [""])[0].startswith("h3wt/"), f"headers {headers}")
    check_eq(headers.get("alt-svc"), [f'h3=":{srv.port}"'], "alt-svc")
    p = t.client(srv.url("/"), "-s")
    check_eq(p.stdout, HELLO, "-s output")

    doc = {"a": [1, 2, {"b": None}], "s": "\u00e9t\u00e9"}
    p = t.client(srv.url("/echo"), "-d", json.dumps(doc), "-H",
                 "content-type: application/json")
    check_rc(p, 0, f"exit code of POST -d ({short(p.stderr)})")
    status, headers, body = parse_client_output(p.stdout)
    check_eq((status, json.loads(body)), (200, doc), "POST /echo -d")
    check_eq(headers.get("content-type"), ["application/json"], "echo content-type")

    f = t.path("body.json")
    big_doc = {"items": [{"i": i, "s": "y" * 100} for i in range(2000)]}
    with open(f, "w") as fh:
        json.dump(big_doc, fh)  # about 250 KB: several QUIC packets
    p = t.client(srv.url("/echo"), "-s", "-d", "@" + f)
    check_rc(p, 0, f"exit code of POST -d @file ({short(p.stderr)})")
    check_eq(json.loads(p.stdout), big_doc, "POST /echo -d @file")
    p = t.client(srv.url("/echo"), "-d", "@" + t.path("no-such-file"))
    check(p.returncode != 0 and b"no-such-file" in p.stderr,
          f"-d @missing: exit {p.returncode}, stderr {short(p.stderr)!r}")

    # -H really goes out: a custom header is harmless, a connection-specific
    # one (forbidden in HTTP/3, RFC 9114 4.2) makes the server reject the
    # request as malformed (H3_MESSAGE_ERROR 0x10e).
    p = t.client(srv.url("/echo"), "-s", "-d", "[1]", "-H", "X-Custom-Thing: yes")
    check_eq((p.returncode, p.stdout), (0, b"[\n  1\n]\n"), "POST with a custom header")
    p = t.client(srv.url("/echo"), "-s", "-d", "[1]", "-H", "Connection: close")
    check(p.returncode != 0, f"a request with 'connection: close' succeeded: "
                             f"{short(p.stdout)!r}")
    check(b"0x10e" in p.stderr, f"no H3_MESSAGE_ERROR for 'connection: close': "
                                f"{short(p.stderr)!r}")
    p = t.client(srv.url("/echo"), "-H", "nocolon")
    check(p.returncode == 2 and b"bad header" in p.stderr,
          f"-H without a colon: exit {p.returncode}, {short(p.stderr)!r}")

    p = t.client(srv.url("/nope"), "-f")
    check_rc(p, 22, "exit code of -f on a 404")
    p = t.client(srv.url("/nope"))
    check_rc(p, 0, "exit code without -f on a 404")
    check(p.stdout.startswith(b"HTTP/3 404\n"), f"404 output {short(p.stdout)!r}")
    p = t.client(srv.url("/"), "-f")
    check_rc(p, 0, "exit code of -f on a 200")

    out = t.path("client.out")
    p = t.client(srv.url("/page.html"), "-o", out)
    check_rc(p, 0, f"exit code of -o ({short(p.stderr)})")
    check_eq(open(out, "rb").read(), open(os.path.join(t.web, "page.html"), "rb").read(),
             "file written by -o")
    check(b"PAGE-MARKER" not in p.stdout, "-o also printed the body to stdout")


def session_run(t, url, sess, *extra):
    """h3wt-client --session-file sess url: (stderr's session line, body)."""
    p = t.client(url, "--session-file", sess, *extra)
    check_rc(p, 0, f"exit code with --session-file ({short(p.stderr)})")
    m = re.search(rb"h3wt-client: session ((?:not )?resumed[^\n]*)", p.stderr)
    check(m is not None, f"no session line on stderr: {short(p.stderr)!r}")
    status, _, body = parse_client_output(p.stdout)
    check_eq((status, body), (200, HELLO), "GET / with --session-file")
    return m.group(1).decode(), p.stderr


def client_stats(t, srv):
    p = t.client(srv.url("/stats"), "-s")
    check_rc(p, 0, "GET /stats")
    return json.loads(p.stdout)


FULL = "not resumed (full handshake), 0-RTT not sent"
RESUMED_0RTT = "resumed, 0-RTT accepted"


@case(needs_curl=False)
def client_session_resume(t):
    """h3wt-client --session-file against h3wt-server --workers 2
    --secret-file: the first run is a full handshake and writes the file
    (mode 0600); the next ones resume on either worker with the GET in
    0-RTT (the server's resumption counters agree); a damaged, cut or
    garbage file gives a full handshake and is replaced; a restart with
    the same secret still resumes, a server with another secret does not
    (its 0-RTT is rejected and the GET goes again).  Through a proxy that
    delays every packet by 100 ms each way, the resumed GET is answered a
    round trip sooner than the full one."""
    secret = t.path("secret")
    with open(secret, "wb") as f:
        f.write(os.urandom(32))
    srv = t.server(extra=["--workers", 2, "--secret-file", secret])
    sess = t.path("session")
    line, _ = session_run(t, srv.url("/"), sess)
    check_eq(line, FULL, "first run")
    check(os.path.exists(sess), "no session file written")
    check_eq(os.stat(sess).st_mode & 0o777, 0o600, "session file mode")
    for i in range(4):
        line, _ = session_run(t, srv.url("/"), sess)
        check_eq(line, RESUMED_0RTT, f"resumed run {i + 1}")
    s = client_stats(t, srv)
    check_eq((s["handshakes_resumed"], s["early_data_accepted"],
              s["requests_0rtt"], s["requests_too_early"]), (4, 4, 4, 0),
             "resumed handshakes, 0-RTT accepted, 0-RTT requests, 425s")
    ws = s["workers"]
    check_eq(sum(w["handshakes_resumed"] for w in ws), 4, "the workers' sum")

    line, _ = session_run(t, srv.url("/"), sess, "--no-early-data")
    check_eq(line, "resumed, 0-RTT not sent", "--no-early-data")

    good = open(sess, "rb").read()
    for what, data in (("one byte flipped", good[:40] + bytes([good[40] ^ 1]) + good[41:]),
                       ("cut", good[:len(good) // 2]),
                       ("garbage", b"not a session at all\n"),
                       ("empty", b"")):
        with open(sess, "wb") as f:
            f.write(data)
        line, err = session_run(t, srv.url("/"), sess)
        check_eq(line, FULL, f"{what} session file")
        check(b"full handshake" in err, f"{what}: no warning: {short(err)!r}")
        line, _ = session_run(t, srv.url("/"), sess)
        check_eq(line, RESUMED_0RTT, f"after the {what} file was replaced")

    srv.stop()
    srv = t.server(extra=["--secret-file", secret])
    line, _ = session_run(t, srv.url("/"), sess)
    check_eq(line, RESUMED_0RTT, "after a restart with the same secret")
    other = t.path("secret2")
    with open(other, "wb") as f:
        f.write(os.urandom(32))
    srv2 = t.server(extra=["--secret-file", other])
    line, _ = session_run(t, srv2.url("/"), sess)
    check_eq(line, "not resumed (full handshake), 0-RTT rejected (sent again)",
             "a server with another secret")
    check_eq(client_stats(t, srv2)["requests_0rtt"], 0, "0-RTT requests served "
             "by the other server")

    # The round trip saved, through 50 ms of delay each way.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "wt"))
    from lossy_proxy import LossyProxy
    proxy = LossyProxy(("127.0.0.1", srv.port), loss=0, dup=0, reorder=1.0,
                       delay_ms=(100, 100)).start()
    try:
        url = f"https://127.0.0.1:{proxy.port}/"
        # The file holds the other server's ticket now: one full run.
        line, _ = session_run(t, url, sess)
        check_eq(line, "not resumed (full handshake), 0-RTT rejected (sent "
                 "again)", "the other server's ticket, back at the first")
        full, resumed = [], []
        for _ in range(3):
            t0 = time.monotonic()
            session_run(t, url, t.fresh("nosession"))
            full.append(time.monotonic() - t0)
            t0 = time.monotonic()
            line, _ = session_run(t, url, sess)
            resumed.append(time.monotonic() - t0)
            check_eq(line, RESUMED_0RTT, "through the proxy")
    finally:
        proxy.stop()
    rtt = 0.2
    log(f"GET through 200 ms RTT: full handshake {min(full) * 1000:.0f} ms, "
        f"resumed with 0-RTT {min(resumed) * 1000:.0f} ms (best of 3; "
        f"process start included)")
    # Full: the handshake's round trip, then the request's.  Resumed: the
    # request rides with the ClientHello.  Half a round trip of margin.
    check(min(full) - min(resumed) >= rtt / 2,
          f"resumed {min(resumed):.3f} s is not a round trip under full "
          f"{min(full):.3f} s")


@case(needs_curl=True)
def tls_alert(t):
    """A client that refuses the server's (self-signed) certificate ends the
    handshake with CRYPTO_ERROR carrying its TLS alert (RFC 9001 4.8:
    0x100 + alert), not PROTOCOL_VIOLATION: h3wt-client (the library's
    close path) without -k, seen in the server's log; curl likewise; the
    server keeps serving."""
    srv = t.server(extra=("--log-level", "debug"))
    p = run([ARGS.client, "--timeout", "5", srv.url("/")])
    check(p.returncode != 0, f"h3wt-client accepted a self-signed certificate: "
                             f"{short(p.stdout)!r}")
    p = run([ARGS.curl, "-q", "--http3-only", "-s", "-S", "--max-time", "5",
             srv.url("/")])
    check(p.returncode != 0, "curl accepted a self-signed certificate")
    deadline = time.monotonic() + 5
    while True:
        codes = re.findall(r"peer closed: transport code (0x[0-9a-f]+)",
                           srv.stderr())
        if len(codes) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check_eq(len(codes), 2, f"peer closes in the server's log: {codes}")
    for c in codes:
        v = int(c, 16)
        check(0x100 <= v <= 0x1ff, f"a certificate refusal closed with {c}, "
                                   "not CRYPTO_ERROR (0x100 + TLS alert)")
    check(int(codes[0], 16) == 0x100 + 48,
          f"h3wt-client closed with {codes[0]}, not unknown_ca (0x130)")
    r = t.curl_ok(srv.url("/"))
    check_eq(r.body, HELLO, "GET / after the refused handshakes")


@case(needs_curl=False)
def client_static_10mb(t):
    """h3wt-client -o of a 10 MiB random file: byte-identical."""
    digest = make_big(t)
    srv = t.server()
    out = t.path("big.client")
    p = t.client(srv.url("/big.bin"), "-o", out, "-f", timeout=60)
    check_rc(p, 0, f"h3wt-client exit code ({short(p.stderr)})")
    status, headers, _ = parse_client_output(p.stdout)
    check_eq((status, headers.get("content-length")), (200, [str(BIG_SIZE)]),
             "status and content-length")
    check_eq(os.path.getsize(out), BIG_SIZE, "size of the file")
    check_eq(sha256_file(out), digest, "sha256 of the file")


def client_n(t, srv, n, path="/", extra=(), timeout=CMD_TIMEOUT):
    p = t.client(srv.url(path), "-n", n, *extra, timeout=timeout)
    s = parse_summary(p.stdout, p.stderr, p.returncode)
    return p, s


@case(needs_curl=False)
def client_concurrent_100(t):
    """-n 100 concurrent requests on one connection all complete with 2xx;
    -n 300 (more than the server's 100-stream limit) too, as the server
    grants more streams when earlier ones close."""
    srv = t.server()
    for n, path, extra in ((100, "/", ()), (100, "/echo", ("-d", '{"n": 1}')),
                           (300, "/", ())):
        p, s = client_n(t, srv, n, path, extra, timeout=20)
        want = {"requests": n, "completed": n, "failed": 0, "2xx": n, "3xx": 0,
                "4xx": 0, "5xx": 0}
        check_eq(s, want, f"summary of -n {n} {path} (stderr {short(p.stderr)!r})")
        check_rc(p, 0, f"exit code of -n {n} {path}")


# ---- cases: hostile input ------------------------------------------------------


def long_header_garbage(rnd):
    """A packet that looks like a QUIC v1 long header, often with invalid
    connection ID lengths, truncated at a random point."""
    first = 0xC0 | rnd.randrange(64)
    dcil = rnd.choice([0, 1, 8, 18, 20, 21, 40, 255, rnd.randrange(256)])
    scil = rnd.choice([0, 8, 20, 21, 255, rnd.randrange(256)])
    pkt = bytes([first]) + b"\x00\x00\x00\x01" + bytes([dcil]) + rnd.randbytes(min(dcil, 255))
    pkt += bytes([scil]) + rnd.randbytes(min(scil, 255))
    pkt += rnd.randbytes(rnd.choice([0, 10, 100, 1200 - len(pkt) if len(pkt) < 1200 else 0]))
    return pkt[:rnd.randrange(1, len(pkt) + 1)]


def garbage_packet(rnd):
    kind = rnd.randrange(3)
    if kind == 0:
        return rnd.randbytes(rnd.randrange(1, 1501))
    if kind == 1:
        return long_header_garbage(rnd)
    return bytes([0x40 | rnd.randrange(64)]) + rnd.randbytes(rnd.randrange(0, 1400))


def vn_probe(rnd):
    """A 1200-byte long-header packet with an unknown (reserved 0x?a?a?a?a)
    version; returns (packet, dcid, scid)."""
    version = (rnd.randrange(1 << 32) & 0xF0F0F0F0) | 0x0A0A0A0A
    dcid, scid = rnd.randbytes(8), rnd.randbytes(rnd.choice([0, 5, 8, 20]))
    pkt = bytes([0xC0 | rnd.randrange(64)]) + struct.pack(">I", version)
    pkt += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    return pkt + rnd.randbytes(1200 - len(pkt)), dcid, scid


def check_vn(reply, dcid, scid):
    check(len(reply) >= 7 + 4, f"version negotiation too short: {reply.hex()}")
    check(reply[0] & 0x80, f"VN without the long-header bit: {reply[:8].hex()}")
    check_eq(reply[1:5], b"\x00\x00\x00\x00", "version field of a VN packet")
    dl = reply[5]
    check_eq(reply[6:6 + dl], scid, "VN destination connection ID (our source ID)")
    sl = reply[6 + dl]
    check_eq(reply[7 + dl:7 + dl + sl], dcid, "VN source connection ID (our destination ID)")
    versions = reply[7 + dl + sl:]
    check(versions and len(versions) % 4 == 0, f"VN version list {versions.hex()}")
    listed = [struct.unpack(">I", versions[i:i + 4])[0] for i in range(0, len(versions), 4)]
    check(1 in listed, f"VN does not offer QUIC v1: {[hex(v) for v in listed]}")


class Blaster(threading.Thread):
    """Sends garbage datagrams to the server; now and then probes for
    version negotiation and stateless resets on fresh sockets and checks the
    replies.  Records problems in self.errors (checked by the main thread)."""

    SR_SIZES = (22, 23, 30, 41, 60, 100, 300, 1200, 1500)

    def __init__(self, port, min_packets, max_seconds):
        super().__init__(daemon=True)
        self.port = port
        self.min_packets = min_packets
        self.max_seconds = max_seconds
        self.stop_event = threading.Event()
        self.sent = 0
        self.vn_ok = 0
        self.resets = 0
        self.errors = []
        self.rnd = random.Random(int(time.time()))

    def addr(self):
        return ("127.0.0.1", self.port)

    def run(self):
        try:
            self.blast()
        except Exception:
            self.errors.append(traceback.format_exc())

    def blast(self):
        noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        noise.setblocking(False)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < self.max_seconds:
                if self.stop_event.is_set() and self.sent >= self.min_packets:
                    break
                self.probe()
                for _ in range(400):
                    try:
                        noise.sendto(garbage_packet(self.rnd), self.addr())
                        self.sent += 1
                    except (BlockingIOError, ConnectionRefusedError):
                        pass
                    if self.sent % 25 == 0:
                        time.sleep(0.002)
                while True:  # whatever came back to the noise socket
                    try:
                        noise.recv(2048)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
        finally:
            noise.close()

    def probe(self):
        """One VN probe and a stateless-reset probe per size, each from its
        own socket, replies collected for up to 0.4 s."""
        socks = []
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            pkt, dcid, scid = vn_probe(self.rnd)
            s.sendto(pkt, self.addr())
            expect = {s.fileno(): ("vn", len(pkt), dcid, scid)}
            for size in self.SR_SIZES:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                pkt = bytes([0x40 | self.rnd.randrange(64)]) + self.rnd.randbytes(size - 1)
                s.sendto(pkt, self.addr())
                expect[s.fileno()] = ("sr", size, None, None)
            self.sent += len(socks)
            deadline = time.monotonic() + 0.4
            pending = {s.fileno(): s for s in socks}
            while pending and time.monotonic() < deadline:
                ready, _, _ = select.select(list(pending.values()), [], [],
                                            max(0, deadline - time.monotonic()))
                for s in ready:
                    try:
                        reply = s.recv(2048)
                    except ConnectionRefusedError:
                        self.errors.append("ICMP port unreachable: server gone?")
                        del pending[s.fileno()]
                        continue
                    kind, size, dcid, scid = expect[s.fileno()]
                    del pending[s.fileno()]
                    try:
                        if kind == "vn":
                            check_vn(reply, dcid, scid)
                            self.vn_ok += 1
                        else:
                            check(len(reply) < size,
                                  f"stateless reset of {len(reply)} bytes answers a "
                                  f"{size}-byte packet (must be smaller)")
                            check(not reply[0] & 0x80 and reply[0] & 0x40,
                                  f"stateless reset does not look like a short "
                                  f"header: first byte {reply[0]:#x}")
                            check(len(reply) >= 21,
                                  f"stateless reset of only {len(reply)} bytes")
                            self.resets += 1
                    except TestFailure as e:
                        self.errors.append(str(e))
        finally:
            for s in socks:
                s.close()


@case(needs_curl=True)
def garbage_datagrams(t):
    """Thousands of garbage datagrams (random bytes, bogus long headers,
    unknown versions, unknown short-header CIDs) while clients run: every
    client request still succeeds, unknown versions get a correct Version
    Negotiation, stateless resets are smaller than their trigger, and the
    server still answers and exits cleanly."""
    srv = t.server()
    blaster = Blaster(srv.port, min_packets=3000, max_seconds=12)
    blaster.start()
    try:
        for rnd in range(3):
            # spread the rounds over the blast: round r starts once about
            # 1000 * r + 300 datagrams are out
            deadline = time.monotonic() + 10
            while (blaster.sent < 1000 * rnd + 300 and blaster.is_alive()
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            log(f"round {rnd} after {blaster.sent} garbage datagrams")
            # -n 200 GET / (beyond the 100-stream limit) and -n 100 POSTs,
            # on two connections at once.
            runs = [(200, "/", []), (100, "/echo", ["-d", "[true]"])]
            procs = [(n, t.popen([ARGS.client, "-k", "--timeout", "25", "-n", n,
                                  srv.url(path)] + extra,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE))
                     for n, path, extra in runs]
            for n, p in procs:
                try:
                    out, err = p.communicate(timeout=35)
                except subprocess.TimeoutExpired:
                    raise TestFailure(f"round {rnd}: h3wt-client hung")
                s = parse_summary(out, err, p.returncode)
                check(s["completed"] == n and s["failed"] == 0 and s["2xx"] == n,
                      f"round {rnd}: -n {n}: {s} (stderr {short(err)!r})")
                check(p.returncode == 0, f"round {rnd}: h3wt-client "
                                         f"{describe_rc(p.returncode)}")
            srv.check_alive(f"during garbage round {rnd}")
    finally:
        blaster.stop_event.set()
        blaster.join(20)
    check(not blaster.is_alive(), "garbage thread did not stop")
    log(f"garbage: {blaster.sent} datagrams, {blaster.vn_ok} version negotiations, "
        f"{blaster.resets} stateless resets")
    check(not blaster.errors, "bad replies to garbage:\n" + "\n".join(blaster.errors[:10]))
    check(blaster.sent >= 3000, f"only {blaster.sent} garbage datagrams sent")
    check(blaster.vn_ok >= 1, "no Version Negotiation came back for an unknown version")
    srv.check_alive("after the garbage")
    r = t.curl_ok(srv.url("/"))
    check_eq(r.body, HELLO, "GET / after the garbage")


# ---- cases: command line -------------------------------------------------------


@case(needs_curl=False)
def bad_cli(t):
    """Bad options make h3wt-server exit non-zero at once, with a message
    naming the problem (and never start serving)."""
    cert = os.path.join(t.dir, "cert.pem")
    key = os.path.join(t.dir, "key.pem")
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    with open(key, "w") as f:
        f.write("not a key\n")
    missing = os.path.join(t.dir, "no-such-cert.pem")
    base = [ARGS.server, "--addr", "127.0.0.1", "--cert-dir", t.certdir,
            "--web", t.web, *isolation_args()]
    busy = t.server()
    cases = [
        (["--port", "70000"], ["port", "70000"]),
        (["--port", "abc"], ["port", "abc"]),
        (["--port", "-1"], ["port"]),
        (["--port", ""], ["port"]),
        (["--port", str(busy.port)], ["listen", str(busy.port)]),
        (["--port", "0", "--cert", missing, "--key", key], [missing]),
        (["--port", "0", "--cert", cert, "--key", missing], [missing]),
        (["--port", "0", "--cert", cert, "--key", key], ["cert"]),
        (["--port", "0", "--cert", cert], ["--key"]),
        (["--port", "0", "--key", key], ["--cert"]),
        (["--port", "0", "--log-level", "loud"], ["log level", "loud"]),
        (["--port", "0", "--max-body", "lots"], ["max-body", "lots"]),
        (["--port", "0", "--max-body", "-1"], ["max-body"]),
        (["--port", "0", "--addr", "1.2.3.4.5"], ["1.2.3.4.5"]),
        (["--port", "0", "--bogus"], ["bogus"]),
        (["--port", "0", "extra-argument"], ["Usage"]),
    ]
    if "--http-port" in server_help():
        cases += [(["--port", "0", "--http-port", "99999"], ["http-port", "99999"]),
                  (["--port", "0", "--http-port", "-1"], ["http-port"])]
    problems = []
    for args, words in cases:
        problem = bad_cli_run(t, base + args, args, words)
        if problem:
            log("PROBLEM: " + problem)
            problems.append(problem)
    r = t.client(busy.url("/"), "-s")
    check_eq(r.stdout, HELLO, "the first server still answers")
    check(not problems, f"{len(problems)} bad command line(s) not refused "
                        f"properly:\n  " + "\n  ".join(problems))


def bad_cli_run(t, cmd, args, words):
    """Runs h3wt-server with a bad command line; returns a problem or None."""
    what = "h3wt-server " + shlex.join(args)
    log("$ " + shlex.join(cmd))
    out_path = t.fresh("cli-out")
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                             env=clean_env(), stdin=subprocess.DEVNULL)
    # stderr is small: read it after exit (or after the kill)
    while p.poll() is None and time.monotonic() - t0 < 10:
        if "listening on" in open(out_path).read():
            break
        time.sleep(0.02)
    running = p.poll() is None
    if running:
        p.kill()
    err = p.communicate(timeout=5)[1].decode("utf-8", "replace")
    stdout = open(out_path).read()
    took = time.monotonic() - t0
    if "listening on" in stdout or running:
        return f"{what}: accepted, server started ({short(stdout.splitlines()[0] if stdout else '', 80)})"
    if p.returncode == 0:
        return f"{what}: exited 0"
    if took >= 5:
        return f"{what}: took {took:.1f} s to fail"
    for marker in SANITIZER_MARKERS:
        if marker in err:
            return f"{what}: sanitizer report: {short(err, 500)}"
    for w in words:
        if w.lower() not in err.lower():
            return f"{what}: message does not name {w!r}: {short(err, 300)!r}"
    return None


# ---- cases: statistics and the config file -------------------------------------


def http1_port(srv):
    """The HTTP/1.1 demo page listener's port, from the server's stdout."""
    m = re.search(r"demo page http://localhost:(\d+)/", srv.stdout())
    check(m is not None, f"{srv.name} printed no demo page port: "
                         f"{short(srv.stdout())!r}")
    return int(m.group(1))


def stats_h3(t, srv):
    """GET /stats over HTTP/3 with curl: the parsed JSON document."""
    r = t.curl_ok(srv.url("/stats"))
    check_eq(media_type(r.header("content-type")), "application/json",
             "content-type of /stats over HTTP/3")
    return json.loads(r.body)


def parse_prometheus(text):
    """The Prometheus text format (0.0.4) as {name{labels}: (type, value)};
    a malformed line, a sample without its TYPE line or a repeated metric
    is a failure."""
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            check(len(parts) == 4 and parts[3] in ("counter", "gauge"),
                  f"bad TYPE line {line!r}")
            types[parts[2]] = parts[3]
            continue
        check(line and not line.startswith("#"), f"unexpected line {line!r}")
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.]+)', line)
        check(m, f"malformed sample {line!r}")
        name = m.group(1)
        check(name in types, f"{name} has no TYPE line")
        key = name + (m.group(2) or "")
        check(key not in out, f"{key} twice")
        value = float(m.group(3))
        out[key] = (types[name], int(value) if value.is_integer() else value)
    return out


def stats_h1(srv):
    """GET /stats from the localhost HTTP/1.1 listener (urllib)."""
    import urllib.request
    url = f"http://127.0.0.1:{http1_port(srv)}/stats"
    log(f"GET {url} (HTTP/1.1)")
    with urllib.request.urlopen(url, timeout=10) as resp:
        check_eq(resp.status, 200, "status of /stats over HTTP/1.1")
        check_eq(media_type(resp.headers.get("content-type")),
                 "application/json", "content-type of /stats over HTTP/1.1")
        return json.loads(resp.read())


def check_ge(stats, key, want, when):
    check(key in stats, f"/stats has no {key!r} ({when})")
    check(stats[key] >= want, f"/stats {key} is {stats[key]}, want >= {want} "
                              f"({when})")


@case(needs_curl=True)
def stats_endpoint(t):
    """GET /stats over HTTP/3 (curl) and over the HTTP/1.1 listener
    (urllib): the same counters, and they move with known traffic: N
    requests, a WebTransport session with datagrams, a 413 over --max-body,
    a 431 over the header limit, a 429 over --max-sessions-per-conn; then
    GET /metrics (Prometheus text format) over both: every counter of
    /stats as a metric of the right type, the same over both."""
    srv = t.server(extra=["--max-body", 1000, "--max-sessions-per-conn", 1])
    n = 5
    for _ in range(n):
        t.curl_ok(srv.url("/"))
    s0 = stats_h3(t, srv)
    # The /stats request itself is counted before it is answered.
    check_ge(s0, "requests_total", n + 1, f"after {n} GETs")
    check_ge(s0, "responses_2xx", n, f"after {n} GETs")
    check_ge(s0, "connections_total", n, f"after {n} curl runs")
    check_ge(s0, "udp_bytes_received", 1200 * n, "Initial packets are padded")
    check_ge(s0, "udp_bytes_sent", len(HELLO) * n, "after the responses")
    for key in ("sessions_total", "datagrams_received", "limit_max_request_body",
                "limit_max_header_bytes", "limit_max_sessions_per_conn"):
        check_eq(s0.get(key), 0, f"{key} before any such traffic")
    check_eq(s0.get("server", "").startswith("h3wt/"), True, "server field")

    # A WebTransport session with 50 datagrams, echoed.
    r = t.client(srv.url("/wt/echo"), "--datagrams", 50, "--rate", 500,
                 "--wt")  # --wt takes the URL
    check(r.returncode == 0, f"h3wt-client --wt failed: {short(r.stderr)}")
    s1 = stats_h1(srv)
    check_eq(sorted(s1), sorted(s0), "the same keys over HTTP/1.1 and HTTP/3")
    check_ge(s1, "sessions_total", 1, "after a session")
    check_ge(s1, "datagrams_received", 50, "after 50 datagrams")
    check_ge(s1, "datagrams_sent", 50, "after 50 echoed datagrams")
    check_ge(s1, "requests_total", s0["requests_total"] + 1, "the CONNECT")
    check_eq(s1["sessions_current"], 0, "sessions_current after the client left")
    # ECN over loopback (which keeps the IP header's marks): h3wt-client
    # and the server both read the marks, echo their counts in ACKs, pass
    # ECN validation and send ECT(0) (RFC 9000 13.4).
    check_ge(s1, "udp_rx_ecn_ect0", 20, "datagrams arriving ECT(0)")
    check_ge(s1, "udp_tx_ecn_ect", 20, "datagrams sent ECT(0)")
    check_eq(s1["udp_rx_ecn_ce"], 0, "nothing on loopback marks CE")

    # Two sessions on one connection with --max-sessions-per-conn 1: 429.
    r = t.client(srv.url("/wt/echo"), "--sessions", 2, "--datagrams", 1,
                 "--wt")
    s2 = stats_h1(srv)
    check_ge(s2, "limit_max_sessions_per_conn", 1, "after a second session")
    check_ge(s2, "sessions_rejected_429", 1, "after a second session")
    check_eq(s2["sessions_rejected"],
             s2["sessions_rejected_404"] + s2["sessions_rejected_403"] +
             s2["sessions_rejected_429"] + s2["sessions_rejected_other"],
             "sessions_rejected is the sum of its kinds")

    # 413 and 431 move their limit counters by exactly one each.
    r = echo_json(t, srv, b'"' + b"x" * 2000 + b'"')
    check_eq(r.status, 413, "a body over --max-body 1000")
    r = t.curl(srv.url("/"), "-H", "x-big: " + "y" * 20000)
    check_eq(r.status, 431, "a 20 kB header over the 16 KiB limit")
    s3 = stats_h3(t, srv)
    check_eq(s3["limit_max_request_body"], 1, "limit_max_request_body after one 413")
    check_eq(s3["limit_max_header_bytes"], 1, "limit_max_header_bytes after one 431")
    check_ge(s3, "responses_4xx", 2, "after the 413 and the 431")
    for key, value in s3.items():
        if key == "workers":
            check(isinstance(value, list) and value,
                  f"/stats workers is {value!r}, not a list of workers")
        elif key == "channels":
            # The /wt/channels hub's own counters, one level down.
            for k2, v2 in value.items():
                check(isinstance(v2, int) and v2 >= 0,
                      f"/stats channels.{k2} is {v2!r}, not a counter")
        elif key != "server":
            check(isinstance(value, int) and value >= 0,
                  f"/stats {key} is {value!r}, not a counter")

    # GET /metrics: the same counters in the Prometheus text format, over
    # HTTP/3 and HTTP/1.1.
    r = t.curl_ok(srv.url("/metrics"))
    check_eq(media_type(r.header("content-type")), "text/plain",
             "content-type of /metrics over HTTP/3")
    check("version=0.0.4" in r.header("content-type"),
          f"/metrics content-type {r.header('content-type')!r}")
    m3 = parse_prometheus(r.body.decode())
    import urllib.request
    with urllib.request.urlopen(
            f"http://127.0.0.1:{http1_port(srv)}/metrics", timeout=10) as resp:
        check_eq(resp.status, 200, "status of /metrics over HTTP/1.1")
        m1 = parse_prometheus(resp.read().decode())
    check_eq(sorted(m1), sorted(m3), "the same metrics over HTTP/1.1 and HTTP/3")
    check_eq(m3.get('h3wt_build_info{version="' + s3["server"][5:] + '"}'),
             ("gauge", 1), "h3wt_build_info")

    def metric(prefix, key):
        if key.endswith("_current") or key in ("broker_link_up", "broker_queued"):
            return prefix + key, "gauge"
        return prefix + key + ("" if key.endswith("_total") else "_total"), "counter"

    want = [metric("h3wt_", k) + (v,) for k, v in s3.items()
            if k not in ("server", "channels", "uptime_ms", "workers")]
    want += [metric("h3wt_channels_", k) + (v,)
             for k, v in s3.get("channels", {}).items()]
    for name, kind, before in want:
        check(name in m3, f"/metrics has no {name}")
        check_eq(m3[name][0], kind, f"the type of {name}")
        if kind == "counter":
            check(m3[name][1] >= before,
                  f"{name} = {m3[name][1]} went below /stats' {before}")
    check_eq(len(m3), len(want) + 2, "one metric per /stats counter, plus "
             "h3wt_build_info and h3wt_uptime_seconds")
    check_eq(m3["h3wt_limit_max_request_body_total"][1], 1,
             "the 413 in /metrics")


@case(needs_curl=True)
def workers_stats(t):
    """--workers 2: two threads serve one port.  24 curl connections at
    once are served by both workers (their random connection IDs spread
    them); /stats, over HTTP/3 and HTTP/1.1, has a "workers" array of 2
    entries whose counters add up to the totals, and no packet was lost
    between the workers."""
    srv = t.server(extra=["--workers", 2])
    check(re.search(r"listening on \S+ port \d+ \(UDP, HTTP/3, 2 workers\)",
                    srv.stdout()), f"no '2 workers' in {short(srv.stdout())!r}")
    n = 24
    procs = [t.popen(t.curl_cmd(srv.url("/"), "-o", os.devnull),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(n)]
    for p in procs:
        try:
            rc = p.wait(CMD_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            rc = None
        check_eq(rc, 0, f"curl exit code ({short(p.stderr.read())!r})")

    def check_sums(stats, over):
        ws = stats.get("workers")
        check(isinstance(ws, list) and len(ws) == 2,
              f"/stats workers over {over}: {ws!r}")
        for key, value in stats.items():
            if key in ("server", "uptime_ms", "workers"):
                continue
            if key == "channels":
                for k2, v2 in value.items():
                    check_eq(sum(w["channels"][k2] for w in ws), v2,
                             f"channels.{k2} over {over}: the workers' sum")
                continue
            check_eq(sum(w[key] for w in ws), value,
                     f"{key} over {over}: the workers' sum")
        return ws

    s = stats_h3(t, srv)
    ws = check_sums(s, "HTTP/3")
    check_ge(s, "connections_total", n + 1, f"after {n} curl runs")
    for i, w in enumerate(ws):
        check(w["connections_total"] > 0,
              f"worker {i} served no connection of {n + 1}: "
              f"{[x['connections_total'] for x in ws]}")
    check_eq(s["packets_misrouted_dropped"], 0, "packets dropped between workers")
    s1 = stats_h1(srv)
    check_sums(s1, "HTTP/1.1")
    check_ge(s1, "connections_total", s["connections_total"], "over HTTP/1.1")


def write_config(t, doc):
    path = t.fresh("config") + ".json"
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


@case(needs_curl=True)
def config_file(t):
    """--config FILE: max_body 1000 from the file gives 413 just over it;
    an option overrides the file whether it comes before or after
    --config; --print-config shows the merged result."""
    path = write_config(t, {"max_body": 1000, "max_connections": 50,
                            "max_sessions_per_conn": 4, "port": 4433,
                            "log_level": "debug"})
    srv = t.server(extra=["--config", path])  # its --port 0 wins over 4433
    at = b'"' + b"a" * 998 + b'"'
    over = b'"' + b"a" * 999 + b'"'
    check_eq(echo_json(t, srv, at).status, 200, "a body of exactly max_body")
    check_eq(echo_json(t, srv, over).status, 413, "one byte over max_body")
    check_eq(stats_h3(t, srv)["limit_max_request_body"], 1, "the 413 counted")
    check("DEBUG" in srv.stderr() or "debug" in srv.stderr().lower(),
          "log_level debug from the file had no effect")
    for extra in (["--config", path, "--max-body", 2000],
                  ["--max-body", 2000, "--config", path],
                  ["--set", "max_body=2000", "--config", path]):
        s = t.server(extra=extra)
        check_eq(echo_json(t, s, over).status, 200,
                 f"the command line's max body wins ({' '.join(map(str, extra))})")
    p = run([ARGS.server, "--config", path, "--max-connections", "7",
             "--print-config"], timeout=10)
    check_eq(p.returncode, 0, "--print-config exit status")
    merged = json.loads(p.stdout)
    check_eq((merged["max_body"], merged["max_connections"], merged["port"],
              merged["max_sessions_per_conn"]), (1000, 7, 4433, 4),
             "the merged settings")


@case(needs_curl=False)
def config_errors(t):
    """Bad config files and values: exit status 2 at once, and a message
    naming the file, the key, and the line and column where known."""
    cases = [
        ('{\n  "port": 1,\n  "max_conections": 5\n}', [":3:3:", "max_conections", "unknown key"]),
        ('{"max_connections": "10"}', [":1:2:", "max_connections", "expected an integer", "string"]),
        ('{"port": 70000}', ["port", "70000", "out of range"]),
        ('{"max_body": -1}', ["max_body", "negative"]),
        ('{\n  "port": 1,\n  "web": \n}\n', [":4:1:"]),
        ('[]', ["top level", "object"]),
        ('{"port": 1, "port": 2}', ["duplicate"]),
    ]
    problems = []
    for text, words in cases:
        path = write_config(t, text)
        p = run([ARGS.server, "--config", path, "--print-config"], timeout=10)
        err = p.stderr.decode("utf-8", "replace")
        what = f"config {text!r}"
        if p.returncode != 2:
            problems.append(f"{what}: exit status {p.returncode}, want 2")
        for w in [path] + words:
            if w not in err:
                problems.append(f"{what}: message does not name {w!r}: {err!r}")
    missing = os.path.join(t.dir, "missing.json")
    p = run([ARGS.server, "--config", missing], timeout=10)
    if p.returncode != 2 or missing.encode() not in p.stderr:
        problems.append(f"missing file: rc {p.returncode}, {p.stderr!r}")
    for args, words in ((["--set", "nope=1"], ["nope", "unknown"]),
                        (["--set", "max_connections=0"], ["max_connections", "range"]),
                        (["--max-sessions-per-conn", "x"], ["max-sessions-per-conn"]),
                        (["--set", "novalue"], ["KEY=VALUE"])):
        p = run([ARGS.server, *args, "--print-config"], timeout=10)
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode != 2 or not all(w in err for w in words):
            problems.append(f"{args}: rc {p.returncode}, {err!r}")
    check(not problems, "\n  ".join(problems))


# ---- main ---------------------------------------------------------------------


def require_curl():
    if not ARGS.curl or ARGS.curl == "NOTFOUND" or not os.access(ARGS.curl, os.X_OK):
        raise TestFailure(
            f"this case needs curl built with HTTP/3, but --curl is {ARGS.curl!r}. "
            "Configure with -DH3WT_CURL=/path/to/curl (eval $(bash "
            "scripts/bootstrap.sh) prints H3WT_CURL).")
    p = run([ARGS.curl, "--version"], timeout=10)
    check(b"HTTP3" in p.stdout,
          f"{ARGS.curl} has no HTTP3 feature (curl --version: {short(p.stdout)!r})")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", help="h3wt-server binary")
    ap.add_argument("--client", help="h3wt-client binary")
    ap.add_argument("--curl", default="", help="curl with HTTP/3")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("case", nargs="?")
    ARGS = ap.parse_args()
    if ARGS.list:
        for name, (fn, _) in CASES.items():
            print(f"{name}: {' '.join(fn.__doc__.split())}")
        return 0
    if ARGS.case not in CASES:
        ap.error(f"unknown case {ARGS.case!r}; one of: {', '.join(CASES)}")
    for what in ("server", "client"):
        path = getattr(ARGS, what)
        if not path or not os.access(path, os.X_OK):
            ap.error(f"--{what} {path!r} is not an executable")
    fn, needs_curl = CASES[ARGS.case]
    t = Test()
    failure = None
    t0 = time.monotonic()
    log(f"case {ARGS.case}: {' '.join(fn.__doc__.split())}")
    log(f"temp dir {t.dir}")
    try:
        if needs_curl:
            require_curl()
        fn(t)
    except TestFailure as e:
        failure = str(e)
    except Exception:
        failure = "unexpected error in the test:\n" + traceback.format_exc()
    finally:
        t.cleanup()
        for srv in t.servers:
            try:
                if failure is None:
                    srv.stop()
                elif srv.alive():
                    srv.stop()
            except TestFailure as e:
                failure = failure or str(e)
            finally:
                srv.kill()
    took = time.monotonic() - t0
    if failure:
        print(f"\nFAIL {ARGS.case} ({took:.1f} s): {failure}", flush=True)
        for srv in t.servers:
            tail = srv.stderr().splitlines()[-40:]
            print(f"\n--- {srv.name} stderr (last {len(tail)} lines, port {srv.port}) ---")
            print("\n".join(tail))
        for root, _, names in os.walk(t.dir):  # keep logs, not 10 MB files
            for n in names:
                if os.path.getsize(os.path.join(root, n)) > 1 << 20:
                    os.unlink(os.path.join(root, n))
        print(f"\n(temp dir kept: {t.dir})")
        return 1
    print(f"\nPASS {ARGS.case} ({took:.1f} s)", flush=True)
    if not ARGS.keep:
        shutil.rmtree(t.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
