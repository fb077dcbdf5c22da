#!/usr/bin/env python3
"""WebTransport integration tests: h3wt-client --wt against h3wt-server.

Usage:
    wt_itest.py --server PATH --client PATH CASE
    wt_itest.py --list

Each case starts its own h3wt-server (--port 0 --addr 127.0.0.1 --no-http,
a private temporary --cert-dir), drives its WebTransport routes (/wt/echo,
/wt/ticker) with h3wt-client --wt, and asserts on the client's summary lines
and on the server's log.  Whatever happens, the server is stopped with
SIGTERM at the end and must exit 0 within 10 s with "stopped" on stderr (in
the sanitizer build a leak or memory error makes that exit status non-zero).

Python 3 standard library only.  Every subprocess has a timeout; each case
takes a few seconds (a 3-5x slower ASan build included).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from lossy_proxy import LossyProxy

STARTUP_TIMEOUT = 20.0  # server start (it makes a certificate first)
STOP_TIMEOUT = 10.0  # SIGTERM -> exit
# H3WT_SERVER_WRAPPER runs every server under a tool, e.g. valgrind (see
# scripts/valgrind.sh); such a tool makes it ~20x slower, so waits grow.
WRAPPER = os.environ.get("H3WT_SERVER_WRAPPER", "").split()
if WRAPPER:
    STARTUP_TIMEOUT *= 10
    STOP_TIMEOUT *= 10
CLIENT_TIMEOUT = 300 if WRAPPER else 30  # the client's own --timeout
SLOW = 10 if WRAPPER else 1  # scales the waits of timing-sensitive cases
BIG = 10 * 1024 * 1024

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")

ARGS = None
CASES = {}


class TestFailure(Exception):
    """Something the server or client did was not what it should be."""


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


def log(msg):
    print(f"[wt-itest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def short(text, limit=1500):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"...[{len(text)} chars]"


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.lower() in ("sslkeylogfile", "h3wt_cert_dir", "http_proxy",
                         "https_proxy", "all_proxy", "no_proxy"):
            del env[k]
    return env


def describe_rc(rc):
    if rc is not None and rc < 0:
        return f"killed by signal {-rc} ({signal.Signals(-rc).name})"
    return f"exit status {rc}"


# ---- the server -------------------------------------------------------------


class Server:
    """One h3wt-server on an ephemeral UDP port of 127.0.0.1."""

    def __init__(self, t, name, log_level="info", extra=()):
        self.t = t
        self.name = name
        self.out_path = os.path.join(t.dir, name + ".stdout")
        self.err_path = os.path.join(t.dir, name + ".stderr")
        self.cmd = WRAPPER + [ARGS.server, "--port", "0", "--addr", "127.0.0.1",
                    "--no-http", "--cert-dir", t.certdir,
                    "--log-level", log_level, *map(str, extra)]
        self.proc = None
        self.port = None
        self.stopped = False

    def start(self):
        log(f"start {self.name}: {' '.join(self.cmd)}")
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
                log(f"{self.name} listening on port {self.port}")
                return self
            if self.proc.poll() is not None:
                raise TestFailure(f"{self.name} exited ({describe_rc(self.proc.returncode)}) "
                                  f"before listening: {short(self.stderr())}")
            time.sleep(0.02)
        raise TestFailure(f"{self.name} printed no port within {STARTUP_TIMEOUT} s")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, when):
        check(self.alive(), f"{self.name} died {when} ({describe_rc(self.proc.returncode)})")

    def wait_log(self, pattern, count=1, timeout=5.0):
        """Waits until the server's stderr has count matches of pattern;
        returns all matches (re.findall)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.stderr(), re.M)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def stop(self):
        if self.stopped or self.proc is None:
            return
        self.terminate()
        self.wait_exit(STOP_TIMEOUT)

    def terminate(self, what="SIGTERM"):
        """Sends SIGTERM; the server must have been alive."""
        check(self.alive(), f"{self.name} was dead before {what} "
                            f"({describe_rc(self.proc.returncode)})")
        log(f"{what} {self.name}")
        self.stopped = True
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout):
        """Waits for the exit after terminate(): status 0, 'stopped' said,
        no sanitizer report.  Returns the seconds waited."""
        t0 = time.monotonic()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {timeout} s of SIGTERM")
        took = time.monotonic() - t0
        log(f"{self.name} exited {rc} after {took:.2f} s")
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            check(marker not in err, f"{self.name}: sanitizer report ({marker!r}) on stderr")
        check_eq(rc, 0, f"{self.name} exit status after SIGTERM")
        check("stopped" in err, f"{self.name}: no 'stopped' on stderr after SIGTERM")
        return took

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)


# ---- the client --------------------------------------------------------------


class Result:
    """One h3wt-client --wt run: exit status, output, parsed summary."""

    def __init__(self, cmd, rc, out, err, took):
        self.cmd = cmd
        self.rc = rc
        self.out = out
        self.err = err
        self.took = took

    def __repr__(self):
        return (f"<h3wt-client {describe_rc(self.rc)} after {self.took:.2f} s\n"
                f"stdout:\n{short(self.out)}\nstderr:\n{short(self.err)}>")

    def line(self, regex, what):
        m = re.search(regex, self.out, re.M)
        check(m, f"no {what} line (/{regex}/) in the client's output: {self!r}")
        return m

    def sessions_ready(self):
        return int(self.line(r"^sessions: (\d+) ready$", "sessions").group(1))

    def datagrams(self):
        m = self.line(r"^datagrams: sent (\d+), received (\d+), lost (\d+), "
                      r"rtt p50 (\S+) ms, p99 (\S+) ms, p999 (\S+) ms, "
                      r"max payload (\d+)$", "datagrams")
        g = m.groups()
        return {"sent": int(g[0]), "received": int(g[1]), "lost": int(g[2]),
                "p50": float(g[3]), "p99": float(g[4]), "p999": float(g[5]),
                "max_payload": int(g[6])}

    def streams(self):
        m = self.line(r"^streams: (\d+) ok, (\d+) failed, bytes (\d+)$", "streams")
        return tuple(int(x) for x in m.groups())

    def uni(self):
        m = self.line(r"^uni: (\d+) ok, (\d+) failed$", "uni")
        return tuple(int(x) for x in m.groups())

    def resets(self):
        return [(int(a, 16), None if b == "none" else int(b, 16))
                for a, b in re.findall(r"^reset: sent (0x[0-9a-f]+), received "
                                       r"(0x[0-9a-f]+|none)$", self.out, re.M)]

    def closes(self):
        return [(int(e), int(c), r) for e, c, r in
                re.findall(r"^session closed: err (-?\d+) code (\d+) reason '(.*)'$",
                           self.out, re.M)]

    def check_ok(self, what):
        check(self.rc == 0, f"{what}: expected exit status 0, got {describe_rc(self.rc)}: {self!r}")


def client_cmd(url, extra, timeout):
    return [str(c) for c in (ARGS.client, "-k", "--timeout", timeout, "--wt",
                             url, *extra)]


def client_done(t, cmd, rc, out, err, took, expect_rc, quiet=False):
    """Builds the Result of a finished h3wt-client and checks what every
    run must satisfy (no crash, no sanitizer report, the exit status)."""
    r = Result(cmd, rc, out.decode("utf-8", "replace"),
               err.decode("utf-8", "replace"), took)
    log(f"  -> {describe_rc(r.rc)} in {r.took:.2f} s")
    if not quiet:
        for l in r.out.splitlines():
            if not re.match(r"^s\d+ (stream|datagram)", l):
                log(f"  | {l}")
        for l in r.err.splitlines()[:20]:
            log(f"  ! {l}")
    for marker in SANITIZER_MARKERS:
        check(marker not in r.err, f"client sanitizer report ({marker!r}): {short(r.err, 4000)}")
    check(r.rc is not None and r.rc >= 0, f"h3wt-client crashed: {r!r}")
    if expect_rc == 0:
        r.check_ok(" ".join(cmd[5:]))
    t.clients.append(r)
    return r


def wt_client(t, url, *extra, timeout=CLIENT_TIMEOUT, expect_rc=0, env=None):
    """Runs h3wt-client -k --wt url extra...; a hang is a failure.  env:
    variables added to the client's environment."""
    cmd = client_cmd(url, extra, timeout)
    log("$ " + " ".join(cmd))
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout + 15,
                           env={**clean_env(), **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"h3wt-client did not finish within {timeout + 15} s "
                          f"(its own --timeout is {timeout}): {' '.join(cmd)}\n"
                          f"stdout: {short(e.stdout or b'')}\nstderr: {short(e.stderr or b'')}")
    return client_done(t, cmd, p.returncode, p.stdout, p.stderr,
                       time.monotonic() - t0, expect_rc)


def wt_client_start(url, *extra, timeout=CLIENT_TIMEOUT):
    """Starts h3wt-client -k --wt url extra... in the background; finish it
    with wt_client_finish()."""
    cmd = client_cmd(url, extra, timeout)
    return (cmd, timeout, time.monotonic(), subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, env=clean_env()))


def wt_client_finish(t, started, expect_rc=0, quiet=False):
    """Waits for a client from wt_client_start(); a hang is a failure."""
    cmd, timeout, t0, p = started
    try:
        out, err = p.communicate(timeout=timeout + 15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise TestFailure(f"h3wt-client did not finish within {timeout + 15} s: "
                          f"{' '.join(cmd)}\nstderr: {short(err)}")
    return client_done(t, cmd, p.returncode, out, err, time.monotonic() - t0,
                       expect_rc, quiet)


def wt_clients(t, runs, timeout=CLIENT_TIMEOUT):
    """Runs several h3wt-client --wt at once; runs is a list of
    (url, extra args); all must exit 0.  Returns their Results."""
    started = [wt_client_start(url, *extra, timeout=timeout) for url, extra in runs]
    log(f"$ {len(started)} x {' '.join(started[0][0])}")
    results, failure = [], None
    for st in started:
        try:
            results.append(wt_client_finish(t, st, quiet=True))
        except TestFailure as e:
            failure = failure or str(e)
    if failure:
        raise TestFailure(failure)
    return results


def check_clean_closes(r, n, code=0, reason=""):
    closes = r.closes()
    check_eq(len(closes), n, f"number of 'session closed' lines ({closes})")
    for c in closes:
        check_eq(c, (0, code, reason), "how a session ended (err, code, reason)")


class Redis:
    """A redis-server of the test's own (Debian's, installed by
    scripts/bootstrap.sh) on a free TCP port of 127.0.0.1: nothing saved,
    never the system service."""

    def __init__(self, t):
        self.t = t
        self.port = free_tcp_port()
        self.proc = None
        self.log_path = os.path.join(t.dir, f"redis-{self.port}.log")

    def start(self):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        check(os.access(exe, os.X_OK),
              "redis-server is not installed (scripts/bootstrap.sh installs it)")
        cmd = [exe, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", self.log_path]
        log("$ " + " ".join(repr(c) if not c else c for c in cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == "+PONG":
                    log(f"redis-server on port {self.port}")
                    return self
            except OSError:
                pass
            check(self.proc.poll() is None, f"redis-server exited: {self.log()}")
            time.sleep(0.05)
        raise TestFailure(f"redis-server did not answer within 10 s: {self.log()}")

    def log(self):
        try:
            with open(self.log_path) as f:
                return short(f.read())
        except FileNotFoundError:
            return ""

    def command(self, *words, timeout=5.0):
        """One command in the inline protocol; the first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout) as c:
            c.sendall((" ".join(words) + "\r\n").encode())
            buf = b""
            while b"\r\n" not in buf:
                more = c.recv(4096)
                if not more:
                    break
                buf += more
            return buf.split(b"\r\n")[0].decode()

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            log(f"SIGKILL redis-server on port {self.port}")
            self.proc.kill()
            self.proc.wait(10)


class Test:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="h3wt-wt-itest-")
        self.certdir = os.path.join(self.dir, "certs")
        self.servers = []
        self.clients = []
        self.redises = []

    def redis(self):
        r = Redis(self)
        self.redises.append(r)
        return r.start()

    def server(self, log_level="info", extra=()):
        s = Server(self, f"server{len(self.servers)}", log_level, extra)
        self.servers.append(s)
        return s.start()


# ---- cases ---------------------------------------------------------------------


@case
def datagrams_1000(t):
    """1000 datagrams echoed by /wt/echo at 500/s: none lost on loopback,
    RTT percentiles printed and ordered; then max-size datagrams (following
    h3wt_session_max_datagram()) echoed too, every loss explained by the
    server's own (smaller) maximum."""
    srv = t.server(log_level="debug")
    r = wt_client(t, srv.url("/wt/echo"), "--datagrams", 1000, "--rate", 500,
                  "--window", 32, "--dgram-size", 200)
    check_eq(r.sessions_ready(), 1, "sessions ready")
    d = r.datagrams()
    check_eq((d["sent"], d["received"], d["lost"]), (1000, 1000, 0),
             "datagrams sent, received, lost")
    check(0 < d["p50"] <= d["p99"] <= d["p999"] < 1000,
          f"RTT percentiles not plausible: {d}")
    check(1000 <= d["max_payload"] <= 65535,
          f"max datagram payload {d['max_payload']} is not plausible on loopback")
    check(r.took >= 1.5, f"1000 datagrams at 500/s took {r.took:.2f} s: no pacing?")
    check_clean_closes(r, 1)
    log(f"RTT p50 {d['p50']} ms, p99 {d['p99']} ms, p999 {d['p999']} ms")
    # Each endpoint discovers the path MTU on its own: for a moment the
    # client's maximum can exceed the server's, and the server's echo of such
    # a datagram is refused with H3WT_ERR_TOO_LARGE (logged at debug).  Those
    # and only those may be missing.
    refused = r"echo: datagram of \d+ bytes not echoed: over a configured limit"
    before = len(re.findall(refused, srv.stderr()))
    r = wt_client(t, srv.url("/wt/echo"), "--datagrams", 200, "--rate", 200,
                  "--dgram-size", "max", "--max-loss", 5)
    d2 = r.datagrams()
    check_eq(d2["sent"], 200, "max-size datagrams sent")
    refused_now = len(srv.wait_log(refused, before + d2["lost"], 2.0)) - before
    check_eq(d2["lost"], refused_now,
             f"max-size datagrams lost ({d2['received']} of 200 came back) vs "
             f"echoes the server refused as too large")
    srv.check_alive("after the datagrams")


@case
def stream_10mb(t):
    """One 10 MiB bidi stream echoed byte-exact (the client honours
    WOULDBLOCK and on_stream_writable)."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--streams", 1, "--stream-bytes", BIG)
    check_eq(r.streams(), (1, 0, BIG), "streams ok, failed, bytes")
    m = re.search(r"^stream time: (\S+) s", r.out, re.M)
    check(m, f"no stream time line: {r!r}")
    log(f"10 MiB echoed in {m.group(1)} s")
    check_clean_closes(r, 1)


@case
def streams_100(t):
    """100 concurrent bidi streams in one session, each echoed byte-exact
    (the server's 100-stream QUIC limit includes the CONNECT stream: the
    client opens more as credit comes back)."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--streams", 100, "--stream-bytes", 20000)
    check_eq(r.streams(), (100, 0, 100 * 20000), "streams ok, failed, bytes")
    check_clean_closes(r, 1)


@case
def sessions_10(t):
    """10 sessions on one connection, each doing 100 datagrams, a bidi
    stream, a uni stream and a reset; each session's traffic stays its
    own (the client checks the session index inside every echo)."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--sessions", 10, "--datagrams", 100,
                  "--rate", 500, "--streams", 1, "--stream-bytes", 100000,
                  "--uni", 1, "--reset-code", 5, "--close-code", 10,
                  "--close-reason", "ten")
    check_eq(r.sessions_ready(), 10, "sessions ready")
    d = r.datagrams()
    check_eq((d["sent"], d["received"], d["lost"]), (1000, 1000, 0),
             "datagrams over 10 sessions")
    check_eq(r.streams(), (10, 0, 10 * 100000), "streams over 10 sessions")
    check_eq(r.uni(), (10, 0), "uni streams over 10 sessions")
    check_eq(r.resets(), [(5, 5)] * 10, "resets over 10 sessions")
    check_clean_closes(r, 10, 10, "ten")
    ids = srv.wait_log(r"\[/wt/echo s(\d+)\] session closed: code 10 reason 'ten'$", 10)
    check_eq(len(set(ids)), 10, f"sessions the server saw closed with code 10 ({ids})")
    conns = set(re.findall(r"\[([0-9a-f]+)/\d+\] session ready /wt/echo", srv.stderr()))
    check_eq(len(conns), 1, f"connections carrying the 10 sessions ({conns})")


@case
def uni_answered(t):
    """A client uni stream is answered on a server-opened uni stream with the
    same bytes; then 20 at once, each matched by its tag."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--uni", 1, "--stream-bytes", 5000)
    check_eq(r.uni(), (1, 0), "uni ok, failed")
    r = wt_client(t, srv.url("/wt/echo"), "--uni", 20, "--stream-bytes", 100000)
    check_eq(r.uni(), (20, 0), "20 uni ok, failed")
    check_clean_closes(r, 1)


@case
def close_codes(t):
    """The client closes with code 4242 and reason 'bye': the client reports
    it, and the server's log shows exactly that code and reason (in the
    library's line and the route's), not a lost connection."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--datagrams", 10, "--close-code",
                  4242, "--close-reason", "bye")
    check_clean_closes(r, 1, 4242, "bye")
    lib = srv.wait_log(r"peer closed the session: code (\d+) reason '(.*)'$")
    check_eq(lib, [("4242", "bye")], "the library's 'peer closed the session' lines")
    demo = srv.wait_log(r"\[/wt/echo s\d+\] session closed: (.*)$")
    check_eq(demo, ["code 4242 reason 'bye'"], "the route's 'session closed' lines")


@case
def close_then_disconnect(t):
    """Like close_codes, but the client closes the connection from inside
    on_session_close (--linger 0), as an application that is done would:
    the server must still see code 4242 and reason 'bye'."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--close-code", 4242,
                  "--close-reason", "bye", "--linger", 0)
    check_clean_closes(r, 1, 4242, "bye")
    demo = srv.wait_log(r"\[/wt/echo s\d+\] session closed: (.*)$")
    check_eq(demo, ["code 4242 reason 'bye'"],
             "the route's 'session closed' lines (the WT_CLOSE_SESSION capsule "
             "was queued before h3wt_client_close())")


@case
def reset_mapping(t):
    """Stream resets with WT codes 0x1e (the first code past a GREASE gap),
    0 and 0xffffffff (the ends of the range) cross the HTTP/3 code mapping
    both ways: the server sees the code, mirrors it, the client gets it."""
    srv = t.server()
    for code in (0x1e, 0, 0xffffffff, 0x1d, 0x1f):
        r = wt_client(t, srv.url("/wt/echo"), "--reset-code", hex(code))
        check_eq(r.resets(), [(code, code)], f"reset with code {code:#x}")
        check_clean_closes(r, 1)
        seen = srv.wait_log(rf"reset by the peer with code {code}: mirrored$")
        check(seen, f"the server did not log a reset with WT code {code} "
                    f"(it logs 'not a WT code' when the mapping fails): "
                    f"{short(srv.stderr()[-2000:])}")


@case
def close_with_open_streams(t):
    """Sessions closed while two 200 MiB streams are in flight: the client
    sees each session end cleanly with its code, the streams cut short (not
    failed); the server logs the close and serves a new session (datagrams,
    streams) on a new connection afterwards."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--sessions", 2, "--streams", 2,
                  "--stream-bytes", "200M", "--close-after", 0.5,
                  "--close-code", 7, "--close-reason", "closing with streams open",
                  # The server must read the close capsule behind a backlog
                  # of stream data before the connection goes.
                  "--linger", 200 * SLOW)
    check_clean_closes(r, 2, 7, "closing with streams open")
    ok, failed, nbytes = r.streams()
    check_eq((ok, failed), (0, 0), "streams ok, failed (cut short ones are neither)")
    check(nbytes > 0, "no bytes came back before the close: nothing was in flight")
    check(re.search(r"^streams: 4 cut short by the session close$", r.out, re.M),
          f"no 'streams: 4 cut short' line: {r!r}")
    demo = srv.wait_log(r"\[/wt/echo s\d+\] session closed: (.*)$", 2)
    check_eq(demo, ["code 7 reason 'closing with streams open'"] * 2,
             "the route's 'session closed' lines")
    srv.check_alive("after sessions closed with streams open")
    r = wt_client(t, srv.url("/wt/echo"), "--datagrams", 50, "--streams", 3,
                  "--stream-bytes", 300000, "--uni", 2)
    check_eq(r.streams(), (3, 0, 900000), "streams of the next session")
    check_eq(r.uni(), (2, 0), "uni streams of the next session")
    d = r.datagrams()
    check_eq((d["received"], d["lost"]), (50, 0), "datagrams of the next session")
    check(not re.search(r"peers? sends? faster than it reads", srv.stderr()),
          "the server gave up on an echo stream")


@case
def echo_backpressure(t):
    """A client that sends faster than the echo can send back: h3wt-client
    unpaced (H3WT_PACING=0: bursts of 64 packets whenever its window
    allows) against the paced server, 128 MiB on one stream.  The echo
    stops reading once 1 MiB waits for the way back and reads again when
    it drains, so the client waits on flow control; before, the echo
    buffered 16 MiB and then reset the stream ("peer sends faster than it
    reads")."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/echo"), "--streams", 1, "--stream-bytes",
                  "128M", env={"H3WT_PACING": "0"})
    check_eq(r.streams(), (1, 0, 128 << 20), "streams ok, failed, bytes")
    check(not re.search(r"peers? sends? faster than it reads", srv.stderr()),
          "the server gave up on the echo stream")


@case
def ticker(t):
    """/wt/ticker: the server-opened uni stream, read for 1.5 s, carries at
    least 2 JSON tick lines with increasing n; the client then closes, and
    the server logs that close with its code and reason."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/ticker"), "--read-server-streams", 1.5,
                  "--close-code", 1000, "--close-reason", "enough ticks")
    lines = re.findall(r"^s0 stream (\d+): (.*)$", r.out, re.M)
    ticks = []
    for sid, text in lines:
        if text.startswith("end ("):
            continue
        try:
            msg = json.loads(text)
        except ValueError:
            raise TestFailure(f"stream {sid} line is not JSON: {text!r}")
        check(msg.get("type") == "tick", f"not a tick: {msg}")
        ticks.append(msg["n"])
    check(len(ticks) >= 2, f"{len(ticks)} tick lines in 1.5 s: {r!r}")
    check_eq(ticks, sorted(ticks), "tick numbers in order")
    check_eq(len({sid for sid, _ in lines}), 1, "streams the ticks came on")
    sid = int(lines[0][0])
    check(sid % 4 == 3, f"stream {sid} is not a server-initiated uni stream")
    check_clean_closes(r, 1, 1000, "enough ticks")
    seen = srv.wait_log(r"\[/wt/ticker s\d+\] session closed: (.*)$")
    check_eq(seen, ["code 1000 reason 'enough ticks'"], "the ticker's close log")


@case
def graceful_shutdown(t):
    """SIGTERM drains (GOAWAY, WT_DRAIN_SESSION): (1) a 100 MiB stream echo
    in flight finishes byte-exact and the server exits as soon as it has,
    long before the deadline; (2) a session that stays open (the ticker)
    is closed at the deadline with code 0 and 'server shutting down', new
    connections are not accepted meanwhile, and the server exits 0;
    (3) a second SIGTERM closes at once."""
    srv = t.server(extra=["--drain-timeout", 60000])
    # 100 MiB, or 20 MiB under valgrind: there the echo runs at about
    # 1.5 MB/s, and 100 MiB came within seconds of the 60 s deadline on a
    # busy machine.
    size = 10 * BIG if SLOW == 1 else 2 * BIG
    echo = wt_client_start(srv.url("/wt/echo"), "--streams", 1,
                           "--stream-bytes", size, "--close-code", 7,
                           "--close-reason", "done")
    check(srv.wait_log(r"session ready /wt/echo$", 1, 10 * SLOW),
          "the echo session never became ready")
    srv.terminate()
    r = wt_client_finish(t, echo)
    check_eq(r.streams(), (1, 0, size), "the stream in flight at SIGTERM")
    check(re.search(r"^session drain: s0$", r.out, re.M),
          f"the client was not asked to drain: {r!r}")
    check_clean_closes(r, 1, 7, "done")
    took = srv.wait_exit(STOP_TIMEOUT)
    check(took < 30, f"the server waited {took:.1f} s after its last session ended")
    check(srv.wait_log(r" server +drained$"), "no 'drained' line")

    srv = t.server(extra=["--drain-timeout", int(1500 * SLOW)])
    ticker = wt_client_start(srv.url("/wt/ticker"), "--read-server-streams", 60)
    check(srv.wait_log(r"session ready /wt/ticker$", 1, 10 * SLOW),
          "the ticker session never became ready")
    t0 = time.monotonic()
    srv.terminate()
    check(srv.wait_log(r"draining 1 connection", 1, 5 * SLOW), "no 'draining' line")
    late = wt_client(t, srv.url("/wt/echo"), "--datagrams", 1, timeout=2 * SLOW,
                     expect_rc=None)
    check(late.rc != 0 and late.sessions_ready() == 0,
          f"a new connection was served while draining: {late!r}")
    srv.wait_exit(STOP_TIMEOUT + 3 * SLOW)
    waited = time.monotonic() - t0
    check(waited >= 1.4 * SLOW, f"the server exited {waited:.2f} s after SIGTERM, "
                                f"before its 1.5 s deadline")
    r = wt_client_finish(t, ticker, expect_rc=None)
    check(re.search(r"^session drain: s0$", r.out, re.M), f"no drain line: {r!r}")
    check_eq(r.closes(), [(0, 0, "server shutting down")],
             "how the ticker session ended")
    check(srv.wait_log(r"drain deadline: closing 1 connection\(s\), 1 session\(s\)"),
          "no 'drain deadline' line")

    srv = t.server(extra=["--drain-timeout", 60000])
    ticker = wt_client_start(srv.url("/wt/ticker"), "--read-server-streams", 60)
    check(srv.wait_log(r"session ready /wt/ticker$", 1, 10 * SLOW),
          "the ticker session never became ready")
    srv.terminate()
    check(srv.wait_log(r"draining 1 connection", 1, 5 * SLOW), "no 'draining' line")
    srv.proc.send_signal(signal.SIGTERM)
    took = srv.wait_exit(5 * SLOW)
    check("SIGTERM again, closing now" in srv.stderr(), "no 'closing now' line")
    r = wt_client_finish(t, ticker, expect_rc=None)
    check_eq(len(r.closes()), 1, f"the ticker session did not end: {r!r}")


@case
def unknown_path(t):
    """--wt to /wt/nowhere is rejected with 404: the client says so on
    stderr, reports the session as rejected, exits non-zero; the server
    serves /wt/echo afterwards."""
    srv = t.server()
    r = wt_client(t, srv.url("/wt/nowhere"), "--datagrams", 5, expect_rc=1)
    check(r.rc != 0, f"a rejected session exited 0: {r!r}")
    check(re.search(r"rejected.*404", r.err), f"stderr does not say 'rejected ... 404': {r!r}")
    check_eq(r.closes(), [(-502, 0, "")], "how the session ended (H3WT_SESSION_REJECTED)")
    check_eq(r.sessions_ready(), 0, "sessions ready")
    check("session ready /wt/nowhere" not in srv.stderr(),
          "the server made a session for /wt/nowhere")
    r = wt_client(t, srv.url("/wt/echo"), "--datagrams", 5)
    check_eq(r.datagrams()["received"], 5, "datagrams after the 404")


@case
def connect_headers(t):
    """h3wt-client --wt -H 'x-token: abc' puts the header on every session's
    CONNECT: the server's session sees it (the demo routes log its length at
    debug level, never its value); the name is lower-cased, and a run
    without -H carries none."""
    srv = t.server(log_level="debug")
    line = r"\[/wt/echo s\d+\] x-token: (\d+) bytes"
    r = wt_client(t, srv.url("/wt/echo"), "-H", "x-token: abc",
                  "--datagrams", 1)
    check_eq(r.sessions_ready(), 1, "sessions ready")
    check_eq(srv.wait_log(line, 1), ["3"], "x-token lengths the server saw")
    r = wt_client(t, srv.url("/wt/echo"), "-H", "X-Token: hello",
                  "--sessions", 2, "--datagrams", 1)
    check_eq(r.sessions_ready(), 2, "sessions ready")
    check_eq(srv.wait_log(line, 3), ["3", "5", "5"],
             "x-token lengths the server saw (one per session)")
    r = wt_client(t, srv.url("/wt/echo"), "--datagrams", 1)
    check_eq(r.sessions_ready(), 1, "sessions ready")
    check(srv.wait_log(r"session ready \(origin", 4),
          "the session without -H never became ready")
    check_eq(re.findall(line, srv.stderr()), ["3", "5", "5"],
             "x-token lengths after a run without -H")


def ch_cmd(url, args, timeout):
    return [str(c) for c in (ARGS.client, "-k", "--timeout", timeout, *args,
                             url)]


def ch_client_start(url, *args, timeout=CLIENT_TIMEOUT):
    cmd = ch_cmd(url, args, timeout)
    log("$ " + " ".join(cmd))
    return (cmd, timeout, time.monotonic(), subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, env=clean_env()))


def ch_events(r):
    """The JSON lines of a channel-mode run."""
    return [json.loads(l) for l in r.out.splitlines() if l.startswith("{")]


def get_stats(srv):
    """GET /stats over HTTP/3 with h3wt-client, parsed."""
    cmd = [str(ARGS.client), "-k", "-s", "--timeout", 10 * SLOW, srv.url("/stats")]
    log("$ " + " ".join(str(c) for c in cmd))
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       timeout=30 * SLOW, env=clean_env())
    check(p.returncode == 0, f"GET /stats: {p.stderr!r}")
    return json.loads(p.stdout)


class ChWatcher:
    """A channel-mode h3wt-client whose JSON lines are read as they come,
    each with the monotonic time it arrived."""

    def __init__(self, url, *args, timeout=CLIENT_TIMEOUT):
        self.cmd = ch_cmd(url, args, timeout)
        log("$ " + " ".join(self.cmd))
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, env=clean_env(),
                                  text=True)
        self.events, self.lock = [], threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.p.stdout:
            if line.startswith("{"):
                with self.lock:
                    self.events.append((time.monotonic(), json.loads(line)))

    def wait_for(self, pred, what, timeout):
        """Waits until pred(list of events) is true; returns its value."""
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                got = pred([e for _, e in self.events])
            if got:
                return got
            if time.monotonic() > end or self.p.poll() is not None:
                self.thread.join(1)
                with self.lock:
                    evs = [e for _, e in self.events]
                raise TestFailure(f"{what}: not seen within {timeout:.1f} s "
                                  f"(exit {self.p.poll()}); events {evs}; "
                                  f"stderr {short(self.p.stderr.read() if self.p.poll() is not None else '')}")
            time.sleep(0.05)

    def timed(self, pred):
        with self.lock:
            return [(t0, e) for t0, e in self.events if pred(e)]

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.thread.join(5)


@case
def channels_cli(t):
    """h3wt-client's channel modes against the demo's /wt/channels: a
    subscriber gets three reliable messages in order with offsets 1..3 and
    sees the publisher join; a second subscriber that saw offset 1 recovers
    2 and 3 (recovered true), one naming another epoch is told recovered
    false; unreliable publications arrive as datagrams; "private.*" is
    refused by the permission hook; with --channels-token a CONNECT without
    the token is refused (403) and one with ?token= is served."""
    srv = t.server()
    url = srv.url("/wt/channels")
    sub = ch_client_start(url, "--subscribe", "chat", "--count", 3)
    time.sleep(0.5 * SLOW)
    pub = ch_client_start(url, "--publish", "chat", "-d", 'hi "there"',
                          "--repeat", 3, "--interval", 10)
    rp = wt_client_finish(t, pub)
    rs = wt_client_finish(t, sub)
    ev = ch_events(rs)
    check_eq(ev[0]["event"], "subscribed", "the subscriber's first event")
    msgs = [e for e in ev if e["event"] == "message"]
    check_eq([(m["offset"], m["data"]) for m in msgs],
             [(1, 'hi "there"'), (2, 'hi "there"'), (3, 'hi "there"')],
             "messages in order with their offsets")
    check(any(e["event"] == "join" for e in ev), f"no join seen: {ev}")
    check_eq([e["offset"] for e in ch_events(rp) if e["event"] == "published"],
             [1, 2, 3], "the publisher's acknowledgements")
    epoch = ev[0]["epoch"]
    r = wt_client_finish(t, ch_client_start(
        url, "--subscribe", "chat", "--since", f"{epoch}:1", "--count", 2))
    ev = ch_events(r)
    check_eq((ev[0]["recovered"], ev[0]["missed"]), (True, 2),
             "recovery from offset 1")
    check_eq([m["offset"] for m in ev if m["event"] == "message"], [2, 3],
             "the recovered messages")
    r = wt_client_finish(t, ch_client_start(
        url, "--subscribe", "chat", "--since", f"{int(epoch) ^ 1}:1",
        "--timeout", 1 * SLOW))
    check_eq(ch_events(r)[0]["recovered"], False, "recovery across epochs")
    # Unreliable: datagrams, not kept (a later reliable offset is still 4).
    sub = ch_client_start(url, "--subscribe", "pos", "--count", 1)
    time.sleep(0.5 * SLOW)
    wt_client_finish(t, ch_client_start(
        url, "--publish", "pos", "-d", "x=1", "--unreliable", "--repeat", 20,
        "--interval", 20))
    ev = ch_events(wt_client_finish(t, sub))
    check(any(e.get("unreliable") and e["data"] == "x=1" for e in ev),
          f"no unreliable message: {ev}")
    r = wt_client_finish(t, ch_client_start(url, "--subscribe", "private.x"),
                         expect_rc=1)
    check_eq([(e["event"], e["code"]) for e in ch_events(r)],
             [("error", 3)], "the permission hook's refusal")
    # A token in the CONNECT's query, checked by the demo's on_connect.
    srv2 = t.server(extra=("--channels-token", "s3cret"))
    r = wt_client_finish(t, ch_client_start(
        srv2.url("/wt/channels"), "--subscribe", "c", "--timeout", 5 * SLOW),
        expect_rc=1)
    check(not ch_events(r), f"a session without the token was served: {r!r}")
    r = wt_client_finish(t, ch_client_start(
        srv2.url("/wt/channels?token=s3cret"), "--subscribe", "c",
        "--timeout", 2 * SLOW))
    check_eq(ch_events(r)[0]["event"], "subscribed", "with the token")
    check("s3cret" not in srv2.stderr(), "the token reached the server's log")
    # The hub's counters in GET /stats.
    ch = get_stats(srv)["channels"]
    check_eq((ch["recoveries"], ch["recoveries_failed"],
              ch["refused_subscribe"], ch["publishes_reliable"]),
             (1, 1, 1, 3), "the hub's counters in /stats")
    check(ch["deliveries_unreliable"] >= 1, f"no unreliable delivery: {ch}")


@case
def channels_presence_abrupt(t):
    """Presence after abrupt ends: three subscribers of one channel are seen
    joining by a fourth; two are killed with SIGKILL (no CONNECTION_CLOSE,
    their socket simply gone), one is interrupted (SIGINT: it closes its
    session); the watcher sees a leave for each of the three, the killed
    ones within the server's liveness timeout (1.5 s here) plus slack; a
    message published afterwards still reaches the watcher, in order after
    the leaves; /stats shows one session and one subscription left."""
    srv = t.server(extra=("--keep-alive", 300,
                          "--liveness-timeout", 1500))
    url = srv.url("/wt/channels")
    watcher = ChWatcher(url, "--subscribe", "room", timeout=60 * SLOW)
    try:
        # Alone in the channel, the watcher sees itself join first.
        me = watcher.wait_for(
            lambda ev: next((e["member"] for e in ev if e["event"] == "join"),
                            None), "the watcher's own join", 10 * SLOW)
        victims = [ChWatcher(url, "--subscribe", "room", timeout=60 * SLOW)
                   for _ in range(3)]
        joins = watcher.wait_for(
            lambda ev: (lambda j: j if len(j) == 3 else None)(
                [e["member"] for e in ev
                 if e["event"] == "join" and e["member"] != me]),
            "three joins", 10 * SLOW)
        check_eq(len(set(joins)), 3, "three distinct members joined")
        for v in victims:
            v.wait_for(lambda ev: ev and ev[0]["event"] == "subscribed",
                       "a victim's subscription", 10 * SLOW)
        t_kill = time.monotonic()
        victims[0].kill(signal.SIGKILL)
        victims[1].kill(signal.SIGKILL)
        victims[2].kill(signal.SIGINT)
        leaves = watcher.wait_for(
            lambda ev: (lambda l: l if len(l) == 3 else None)(
                [e["member"] for e in ev if e["event"] == "leave"]),
            "three leaves", 10 * SLOW)
        check_eq(sorted(leaves), sorted(joins), "who left is who joined")
        last = max(t0 for t0, _ in watcher.timed(lambda e: e["event"] == "leave"))
        log(f"the last leave came {last - t_kill:.2f} s after the kills")
        check(last - t_kill < 1.5 + 3.0 * SLOW,
              f"leaves came {last - t_kill:.2f} s after the kills "
              "(liveness timeout 1.5 s)")
        wt_client_finish(t, ch_client_start(url, "--publish", "room", "-d",
                                            "after"))
        watcher.wait_for(lambda ev: any(e["event"] == "message" for e in ev),
                         "the message after the leaves", 10 * SLOW)
        kinds = [e["event"] for _, e in watcher.events
                 if e["event"] in ("leave", "message")]
        check_eq(kinds[:4], ["leave"] * 3 + ["message"],
                 "leaves, then the message, in order")
        st = get_stats(srv)["channels"]
        # The watcher; /stats itself is a plain request, not a session.
        check_eq((st["sessions_current"], st["subscriptions_current"]),
                 (1, 1), "channel sessions and subscriptions left")
    finally:
        watcher.kill(signal.SIGINT)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- channels across servers through Redis ------------------------------------


def redis_servers(t, redis, n=2, extra=()):
    """n servers sharing redis as their channels' broker."""
    return [t.server(extra=("--broker", redis.url(), *extra)) for _ in range(n)]


def events_of(w, kind):
    return [e for _, e in w.events if e["event"] == kind]


@case
def redis_two_servers(t):
    """Two h3wt-server processes share channels through a real redis-server
    started by the test: a subscriber on server A receives, in order and
    exactly once, the reliable messages a publisher on server B sends
    (offsets 1..20, one epoch), and B's unreliable publications as
    datagrams; A's subscriber sees B's publisher join and leave (members
    are unique across servers); a client that saw offset 5 on A and moves
    to B recovers 6..20 there (recovered true); MEMBERS on B lists a member
    of A; both servers count broker round trips in /stats."""
    redis = t.redis()
    a, b = redis_servers(t, redis)
    watcher = ChWatcher(a.url("/wt/channels"), "--subscribe", "room",
                        timeout=60 * SLOW)
    try:
        first = watcher.wait_for(
            lambda ev: ev and ev[0]["event"] == "subscribed" and ev[0],
            "the subscription on A", 10 * SLOW)
        pub = ch_client_start(b.url("/wt/channels"), "--publish", "room",
                              "-d", "m", "--repeat", 20, "--interval", 5)
        rp = wt_client_finish(t, pub)
        acks = [e for e in ch_events(rp) if e["event"] == "published"]
        check_eq([e["offset"] for e in acks], list(range(1, 21)),
                 "the publisher's acknowledgements, from B")
        check_eq({e["epoch"] for e in acks}, {first["epoch"]},
                 "one epoch on both servers")
        watcher.wait_for(lambda ev: len([e for e in ev if e["event"] == "message"]) >= 20,
                         "20 messages on A", 10 * SLOW)
        time.sleep(0.3 * SLOW)  # a duplicate would come now
        msgs = events_of(watcher, "message")
        check_eq([m["offset"] for m in msgs], list(range(1, 21)),
                 "A's subscriber: every offset once, in order")
        me = next((e["member"] for e in events_of(watcher, "join")), None)
        joins = [e["member"] for e in events_of(watcher, "join") if e["member"] != me]
        leaves = [e["member"] for e in events_of(watcher, "leave")]
        check(joins and joins[0] in leaves,
              f"B's publisher seen joining and leaving on A: joins {joins}, leaves {leaves}")
        check(joins[0] != me, "members are unique across servers")
        # Unreliable, B -> A, until one arrives (datagrams may be lost).
        for _ in range(10):
            wt_client_finish(t, ch_client_start(
                b.url("/wt/channels"), "--publish", "room", "-d", "pos",
                "--unreliable", "--repeat", 5, "--interval", 20))
            if any(e.get("unreliable") for e in events_of(watcher, "message")):
                break
        check(any(e.get("unreliable") and e["data"] == "pos"
                  for e in events_of(watcher, "message")),
              "no unreliable message from B reached A")
        # A client that saw offset 5 (on A) moves to B and recovers there.
        r = wt_client_finish(t, ch_client_start(
            b.url("/wt/channels"), "--subscribe", "room", "--since",
            f"{first['epoch']}:5", "--count", 15))
        ev = ch_events(r)
        check_eq((ev[0]["recovered"], ev[0]["missed"]), (True, 15),
                 "recovery on B of what was published meanwhile")
        check_eq([m["offset"] for m in ev if m["event"] == "message"],
                 list(range(6, 21)), "the recovered messages")
        # PRESENCE on B lists A's watcher (through Redis).
        stb = get_stats(b)
        sb = stb["channels"]
        check(sb["broker_round_trips"] > 0, f"B: no broker round trip: {sb}")
        check_eq(sb["broker_link_up"], len(stb.get("workers", [0])),
                 "B's links to Redis (one per worker's hub)")
    finally:
        watcher.kill(signal.SIGINT)


@case
def redis_restart(t):
    """redis-server is killed (SIGKILL) and restarted on its port while a
    subscriber on server A follows a channel: publishes on server B fail
    fast while it is down (ERROR BROKER_UNAVAILABLE, counted), both servers
    reconnect by themselves, A's subscriber is told its history is gone
    (UNSUBSCRIBED 12), subscribes again and is told recovered false, and
    then receives what B publishes after the restart; the servers keep
    answering plain HTTP/3 throughout."""
    redis = t.redis()
    a, b = redis_servers(t, redis, extra=("--broker-timeout", 1000))
    watcher = ChWatcher(a.url("/wt/channels"), "--subscribe", "room",
                        timeout=90 * SLOW)
    try:
        watcher.wait_for(lambda ev: ev and ev[0]["event"] == "subscribed",
                         "the subscription on A", 10 * SLOW)
        wt_client_finish(t, ch_client_start(b.url("/wt/channels"), "--publish",
                                            "room", "-d", "before"))
        watcher.wait_for(lambda ev: any(e["event"] == "message" for e in ev),
                         "the message before the restart", 10 * SLOW)
        redis.kill()
        t0 = time.monotonic()
        r = wt_client_finish(t, ch_client_start(
            b.url("/wt/channels"), "--publish", "room", "-d", "lost",
            "--timeout", 10 * SLOW), expect_rc=1)
        took = time.monotonic() - t0
        check(any(e["event"] == "error" and e["code"] == 12 for e in ch_events(r)),
              f"a publish while Redis is down: {ch_events(r)}")
        log(f"the failed publish took {took:.2f} s")
        check(took < 5 * SLOW, f"a publish while Redis is down took {took:.2f} s")
        # Plain HTTP/3 still served while the broker is gone.
        code = subprocess.run([str(ARGS.client), "-k", "-s", "--timeout",
                               str(10 * SLOW), a.url("/")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=clean_env(), timeout=30 * SLOW).returncode
        check_eq(code, 0, "GET / on A while Redis is down")
        redis.start()  # same port, empty
        resub = watcher.wait_for(
            lambda ev: [e for e in ev if e["event"] == "subscribed"][1:] or None,
            "A's subscriber subscribed again after the restart", 20 * SLOW)
        check_eq(resub[0]["recovered"], False,
                 "the history did not survive the restart: recovered false")
        check(any(e["event"] == "unsubscribed" and e["code"] == 12
                  for _, e in watcher.events), "UNSUBSCRIBED 12 before it")
        for _ in range(20):  # B may still be reconnecting
            r = wt_client_finish(t, ch_client_start(
                b.url("/wt/channels"), "--publish", "room", "-d", "after",
                "--timeout", 10 * SLOW), expect_rc=None)
            if r.rc == 0:
                break
            time.sleep(0.25 * SLOW)
        watcher.wait_for(lambda ev: any(e["event"] == "message" and e["data"] == "after"
                                        for e in ev),
                         "the message after the restart", 10 * SLOW)
        for srv in (a, b):
            # Each worker reconnects on its own, with backoff: the one whose
            # attempt timed out while Redis was down comes back a moment
            # after the first (a subscriber needs only one), so wait.
            deadline = time.monotonic() + 10 * SLOW
            while True:
                full = get_stats(srv)
                st = full["channels"]
                if (st["broker_link_up"] == len(full.get("workers", [0])) or
                        time.monotonic() > deadline):
                    break
                time.sleep(0.1)
            check(st["broker_reconnects"] >= 1, f"{srv.name}: no reconnect counted: {st}")
            check_eq(st["broker_link_up"], len(full.get("workers", [0])),
                     f"{srv.name}: every worker's link up again")
        check(get_stats(b)["channels"]["broker_errors"] >= 1,
              "B counted the failed publish")
    finally:
        watcher.kill(signal.SIGINT)


@case
def redis_node_killed(t):
    """One server of two is killed (SIGKILL) while its client is in a
    channel: the other server's subscriber sees that member leave within
    the presence time-to-live (2 s here) plus slack, MEMBERS no longer
    lists it, and the surviving server keeps serving the channel."""
    redis = t.redis()
    a, b = redis_servers(t, redis, extra=("--broker-presence-ttl", 2000))
    watcher = ChWatcher(b.url("/wt/channels"), "--subscribe", "room",
                        timeout=90 * SLOW)
    victim = None
    try:
        watcher.wait_for(lambda ev: ev and ev[0]["event"] == "subscribed",
                         "the subscription on B", 10 * SLOW)
        me = watcher.wait_for(
            lambda ev: next((e["member"] for e in ev if e["event"] == "join"), None),
            "the watcher's own join", 10 * SLOW)
        victim = ChWatcher(a.url("/wt/channels"), "--subscribe", "room",
                           timeout=90 * SLOW)
        other = watcher.wait_for(
            lambda ev: next((e["member"] for e in ev
                             if e["event"] == "join" and e["member"] != me), None),
            "the member on A joining", 10 * SLOW)
        a.kill()
        a.stopped = True
        t_kill = time.monotonic()
        watcher.wait_for(lambda ev: any(e["event"] == "leave" and e["member"] == other
                                        for e in ev),
                         "the killed server's member leaving", 15 * SLOW)
        took = time.monotonic() - t_kill
        log(f"the leave came {took:.2f} s after the kill")
        check(took < 2.0 + 3.0 * SLOW, f"leave after {took:.2f} s (TTL 2 s)")
        wt_client_finish(t, ch_client_start(b.url("/wt/channels"), "--publish",
                                            "room", "-d", "still"))
        watcher.wait_for(lambda ev: any(e["event"] == "message" and e["data"] == "still"
                                        for e in ev),
                         "a message after the kill", 10 * SLOW)
    finally:
        watcher.kill(signal.SIGINT)
        if victim:
            victim.kill()


@case
def redis_slow(t):
    """Redis stops answering for 3 s (DEBUG SLEEP): the server keeps
    serving plain HTTP/3 at once, a publish meanwhile fails after the
    broker timeout (1 s here) with BROKER_UNAVAILABLE instead of hanging,
    and once Redis answers again publishing works."""
    redis = t.redis()
    (a,) = redis_servers(t, redis, n=1, extra=("--broker-timeout", 1000))
    wt_client_finish(t, ch_client_start(a.url("/wt/channels"), "--publish",
                                        "room", "-d", "warm"))
    sleeper = threading.Thread(target=lambda: redis.command("DEBUG", "SLEEP", "3",
                                                            timeout=10),
                               daemon=True)
    sleeper.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    code = subprocess.run([str(ARGS.client), "-k", "-s", "--timeout",
                           str(10 * SLOW), a.url("/")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=clean_env(), timeout=30 * SLOW).returncode
    took = time.monotonic() - t0
    check_eq(code, 0, "GET / while Redis sleeps")
    log(f"GET / took {took:.2f} s while Redis slept")
    check(took < 1.5 * SLOW, f"GET / took {took:.2f} s while Redis slept")
    t0 = time.monotonic()
    r = wt_client_finish(t, ch_client_start(a.url("/wt/channels"), "--publish",
                                            "room", "-d", "slow",
                                            "--timeout", 10 * SLOW),
                         expect_rc=None)
    took = time.monotonic() - t0
    log(f"the publish ended after {took:.2f} s (rc {r.rc}): {ch_events(r)}")
    check(r.rc == 0 or any(e["event"] == "error" and e["code"] == 12
                           for e in ch_events(r)),
          f"the publish while Redis slept: {ch_events(r)}")
    check(took < 4.5 * SLOW, f"the publish hung for {took:.2f} s")
    sleeper.join(10)
    for _ in range(20):
        r = wt_client_finish(t, ch_client_start(a.url("/wt/channels"), "--publish",
                                                "room", "-d", "again",
                                                "--timeout", 10 * SLOW),
                             expect_rc=None)
        if r.rc == 0:
            break
        time.sleep(0.25 * SLOW)
    check_eq(r.rc, 0, "publishing after Redis woke up")


def reset_after_restart(t, port, secret_args):
    """A session sending datagrams to a server on port; the server killed
    with SIGKILL and a new one started on the same port (secret_args
    given to both).  Returns how long after the restart the client
    ended, or None if it was still running some seconds later (6, or 10
    with the server under a wrapper: only the server is slowed)."""
    window = 10 if WRAPPER else 6
    a = t.server(extra=("--port", port, *secret_args))
    url = a.url("/wt/echo")
    started = wt_client_start(url, "--datagrams", 100000, "--rate", 50,
                              "--max-loss", 100000, timeout=30 * SLOW)
    p = started[3]
    time.sleep(1.5 * SLOW)
    check(p.poll() is None, "the client ended before the restart")
    a.kill()
    a.stopped = True
    b = t.server(extra=("--port", port, *secret_args))
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < window:
        time.sleep(0.05)
    took = time.monotonic() - t0
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    log(f"client: exit {p.returncode} {took:.2f} s after the restart; "
        f"stderr {short(err.decode('utf-8', 'replace'))}")
    b.stop()
    return took if took < window else None


@case
def stateless_reset_restart(t):
    """--secret-file: a server killed and restarted on the same port with
    the same secret answers the old connection's packets with a stateless
    reset the client accepts, so the client stops within a moment instead
    of waiting for its idle timeout; with a fresh random secret (no
    --secret-file) the reset does not verify and the client keeps waiting
    (the control that shows the test can fail).  A short secret file is
    refused at start."""
    secret = os.path.join(t.dir, "secret")
    with open(secret, "wb") as f:
        f.write(os.urandom(32))
    took = reset_after_restart(t, free_udp_port(), ("--secret-file", secret))
    check(took is not None and took < 3,
          f"with the same secret the client did not stop at the reset "
          f"(took {took})")
    took = reset_after_restart(t, free_udp_port(), ())
    check(took is None, f"with another secret the client stopped anyway "
                        f"{took} s after the restart")
    with open(secret, "wb") as f:
        f.write(b"short")
    p = subprocess.run([str(ARGS.server), "--port", "0", "--addr",
                        "127.0.0.1", "--no-http", "--cert-dir", t.certdir,
                        "--secret-file", secret],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, env=clean_env())
    check(p.returncode != 0 and b"shorter than 16 bytes" in p.stderr,
          f"a 5-byte secret file: exit {p.returncode}, {short(p.stderr)}")


@case
def unreachable_server(t):
    """A server that never answers (a UDP port nobody reads): the client
    gives up at its --timeout, exits non-zero with a message, and reports how
    its (never ready) session ended: on_session_close with
    H3WT_SESSION_CONN_LOST (-503), as the header promises for every session
    whose handler was passed to h3wt_client_webtransport()."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        port = sink.getsockname()[1]
        r = wt_client(t, f"https://127.0.0.1:{port}/wt/echo", timeout=2,
                      expect_rc=1)
    finally:
        sink.close()
    check(r.rc != 0, f"exited 0 without a server: {r!r}")
    check(r.took < 15, f"took {r.took:.1f} s to give up with --timeout 2")
    check("timed out" in r.err, f"no 'timed out' on stderr: {r!r}")
    check_eq(r.closes(), [(-503, 0, "")],
             "how the never-ready session ended (no on_session_close came)")


def server_rss_kib(srv):
    with open(f"/proc/{srv.proc.pid}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1))


def is_sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def soak_channels_phase(t, proxy):
    """The soak's channels phase, through the same lossy proxy: 16
    subscribers of one channel, then a publisher sends 150 reliable
    messages of 1500 bytes (two packets each) at 100/s; every subscriber
    must get offsets 1..150, each exactly once, in order, intact."""
    n_subs = int(os.environ.get("H3WT_SOAK_CH_SUBSCRIBERS", "16"))
    n_msgs = int(os.environ.get("H3WT_SOAK_CH_MESSAGES", "150"))
    url = f"https://127.0.0.1:{proxy.port}/wt/channels"
    data = "".join(chr(0x21 + (i * 7) % 90) for i in range(1500)).replace(
        "\\", "/").replace('"', "'")
    subs = [ChWatcher(url, "--subscribe", "soak", "--count", n_msgs,
                      timeout=120 * SLOW) for _ in range(n_subs)]
    try:
        for w in subs:
            w.wait_for(lambda ev: ev and ev[0]["event"] == "subscribed",
                       "a soak subscriber's subscription", 30 * SLOW)
        before = dict(proxy.stats)
        rp = wt_client_finish(t, ch_client_start(
            url, "--publish", "soak", "-d", data, "--repeat", n_msgs,
            "--interval", 10, timeout=120 * SLOW))
        check_eq([e["offset"] for e in ch_events(rp)
                  if e["event"] == "published"], list(range(1, n_msgs + 1)),
                 "the publisher's acknowledgements under loss")
        for i, w in enumerate(subs):
            try:
                w.p.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                pass
            w.thread.join(5)
            msgs = [e for _, e in w.events if e["event"] == "message"]
            check_eq([m["offset"] for m in msgs], list(range(1, n_msgs + 1)),
                     f"subscriber {i}: the offsets it received under loss")
            check(all(m["data"] == data for m in msgs),
                  f"subscriber {i}: a message arrived altered")
            check(w.p.returncode == 0,
                  f"subscriber {i}: exit status {w.p.returncode}; stderr "
                  f"{short(w.p.stderr.read(), 8000)}")
        dropped = proxy.stats["dropped"] - before["dropped"]
        log(f"channels phase: {n_subs} subscribers x {n_msgs} messages "
            f"exactly once and in order; the proxy dropped {dropped} "
            f"packets meanwhile")
        check(dropped > 0, "the proxy dropped nothing during the channels phase")
    finally:
        for w in subs:
            w.kill(signal.SIGKILL)


@case
def soak_lossy(t):
    """Through a proxy that drops 5% of packets each way, duplicates 1% and
    reorders 2%, rounds of sessions (32 at a time, 16 per connection) move
    streams (4 bidi x 32 KiB echoed and one uni stream answered, each
    verified byte for byte by the client: every reliable byte arrives
    exactly once and in order) and datagrams, for 20 s; the server's
    resident memory after the last round is no more than after the warm-up
    rounds (plus a small slack).  Then a channels phase through the same
    proxy (soak_channels_phase).  The long version:
    H3WT_SOAK_SESSIONS=200 H3WT_SOAK_SECONDS=300 wt_itest.py ... soak_lossy"""
    sessions = int(os.environ.get("H3WT_SOAK_SESSIONS", "32"))
    seconds = float(os.environ.get("H3WT_SOAK_SECONDS", "20"))
    loss = float(os.environ.get("H3WT_SOAK_LOSS", "0.05"))
    per_conn, streams, dgrams = 16, 4, 40
    srv = t.server()
    proxy = LossyProxy(("127.0.0.1", srv.port), loss=loss, dup=0.01,
                       reorder=0.02, seed=20261123).start()
    url = f"https://127.0.0.1:{proxy.port}/wt/echo"
    rss, rounds, t_end = [], 0, time.monotonic() + seconds
    totals = {"sessions": 0, "streams": 0, "bytes": 0, "uni": 0,
              "dg_sent": 0, "dg_back": 0}
    try:
        while rounds < 3 or time.monotonic() < t_end:
            runs, left = [], sessions
            while left > 0:
                k = min(per_conn, left)
                left -= k
                runs.append((url, ["--sessions", k, "--streams", streams,
                                   "--stream-bytes", "32K", "--uni", 1,
                                   "--datagrams", dgrams, "--rate", 200,
                                   "--max-loss", dgrams * k, "--linger", 300]))
            for r, (_, extra) in zip(wt_clients(t, runs, timeout=60), runs):
                k = extra[1]
                check_eq(r.sessions_ready(), k, "sessions ready in a lossy round")
                ok, failed, nbytes = r.streams()
                check_eq((ok, failed), (k * streams, 0),
                         "streams echoed byte-exact (ok, failed) under loss")
                check_eq(r.uni(), (k, 0), "uni streams answered (ok, failed) under loss")
                d = r.datagrams()
                totals["sessions"] += k
                totals["streams"] += ok
                totals["bytes"] += nbytes
                totals["uni"] += k
                totals["dg_sent"] += d["sent"]
                totals["dg_back"] += d["received"]
            srv.check_alive(f"after soak round {rounds + 1}")
            time.sleep(0.5)  # closing connections drain
            rss.append(server_rss_kib(srv))
            rounds += 1
            log(f"round {rounds}: server VmRSS {rss[-1]} KiB, proxy {proxy.stats}")
        soak_channels_phase(t, proxy)
    finally:
        proxy.stop()
    log(f"soak: {rounds} rounds, {totals}, proxy {proxy.stats}, rss KiB {rss}")
    check(proxy.stats["dropped"] > 0 and proxy.stats["reordered"] > 0,
          f"the proxy impaired nothing: {proxy.stats}")
    check(totals["dg_back"] >= totals["dg_sent"] // 2,
          f"fewer than half the datagrams came back at {loss:.0%} loss: {totals}")
    if is_sanitized(ARGS.server):
        log("memory: not judged (a sanitizer's quarantine holds freed memory)")
        return
    base = max(rss[:2])
    check(rss[-1] <= base * 1.2 + 4096,
          f"server memory grew over the soak: VmRSS KiB by round {rss}")


# ---- main -------------------------------------------------------------------------


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", help="h3wt-server binary")
    ap.add_argument("--client", help="h3wt-client binary")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("case", nargs="?")
    ARGS = ap.parse_args()
    if ARGS.list:
        for name, fn in CASES.items():
            print(f"{name}: {' '.join(fn.__doc__.split())}")
        return 0
    if ARGS.case not in CASES:
        ap.error(f"unknown case {ARGS.case!r}; one of: {', '.join(CASES)}")
    for what in ("server", "client"):
        path = getattr(ARGS, what)
        if not path or not os.access(path, os.X_OK):
            ap.error(f"--{what} {path!r} is not an executable")
    fn = CASES[ARGS.case]
    t = Test()
    failure = None
    t0 = time.monotonic()
    log(f"case {ARGS.case}: {' '.join(fn.__doc__.split())}")
    log(f"temp dir {t.dir}")
    try:
        fn(t)
    except TestFailure as e:
        failure = str(e)
    except Exception:
        failure = "unexpected error in the test:\n" + traceback.format_exc()
    finally:
        for srv in t.servers:
            try:
                if failure is None or srv.alive():
                    srv.stop()
            except TestFailure as e:
                failure = failure or str(e)
            finally:
                srv.kill()
        for r in t.redises:
            r.kill()
    took = time.monotonic() - t0
    if failure:
        print(f"\nFAIL {ARGS.case} ({took:.1f} s): {failure}", flush=True)
        for srv in t.servers:
            tail = srv.stderr().splitlines()[-40:]
            print(f"\n--- {srv.name} stderr (last {len(tail)} lines, port {srv.port}) ---")
            print("\n".join(tail))
        print(f"\n(temp dir kept: {t.dir})")
        return 1
    print(f"\nPASS {ARGS.case} ({took:.1f} s)", flush=True)
    if not ARGS.keep:
        shutil.rmtree(t.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
