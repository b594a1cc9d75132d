#!/usr/bin/env python3
"""Tollgate load benchmark orchestrator (started by bench/load/run.sh, which installs and builds).

Runs the same load directly against the fake upstream (bench/Tollgate.Bench.Upstream) and through
Tollgate, on this machine, loopback only, and prints / writes one comparison table.

* wrk (bench/load/post.lua) for non-streaming JSON and streaming, at each concurrency: req/s and
  full-response latency p50/p99.
* A small HTTP/1.1 client (below) for time to the first SSE event: sequential (c=1) for a fast
  stream (22 events, no delay) and a slowed one (model ...-delayN: N ms between events) that shows
  whether the gateway passes events through as they arrive; and the fast stream on N concurrent
  keep-alive connections (--first-event-conc, default 8), driven by one asyncio event loop.
* Gateway CPU (from /proc/<pid>/stat) and RSS (sampled every 0.25 s) for every point; CPU used by
  anything else on the machine is tracked so that disturbed points are re-run or flagged.
* The shared-storage path (--storage postgres, --limiter redis): a private PostgreSQL (and Redis)
  server started for the run only, on the load CPUs, in a temp dir removed at the end; --limited
  gives the client key limits that every request reserves and settles against.

Standard library only. Every process started here runs in its own process group and is stopped by
that group at exit, on Ctrl-C (SIGINT), SIGTERM and SIGHUP; they also get SIGTERM from the kernel
if this script dies (PR_SET_PDEATHSIG). Only 127.0.0.1 is ever contacted.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime as dt
import gc
import json
import os
import platform
import pwd
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
HOST = "127.0.0.1"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "no_proxy", "NO_PROXY")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# processes: own session/process group each, recorded, stopped by group
# ------------------------------------------------------------------------------------------------
_STARTED: list[tuple[str, subprocess.Popen]] = []
_LIBC = None
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:
    pass


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def clean_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1"
    env["DOTNET_NOLOGO"] = "1"
    if extra:
        env.update(extra)
    return env


def pinned(cmd: list[str], cpus: str) -> list[str]:
    return (["taskset", "-c", cpus] + cmd) if cpus else cmd


def as_user(user: str | None) -> dict:
    """Popen arguments that run the child as `user` (only root can): the switch happens in the
    child right before exec, so no runuser/su stays in between as the parent (runuser would SIGKILL
    the server 2 s after our SIGTERM, before a clean shutdown, and drops the parent-death signal)."""
    if not user:
        return {}
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def start(name: str, cmd: list[str], cpus: str, logfile: Path | None, env: dict,
          user: str | None = None) -> subprocess.Popen:
    out = open(logfile, "ab") if logfile else subprocess.DEVNULL
    try:
        # preexec_fn is only safe while no other thread runs (the RSS sampler thread starts later;
        # wrk is bounded by its -d anyway and stopped by group like the rest). It runs after the
        # switch to `user`, which would otherwise clear the parent-death signal.
        pre = _die_with_parent if threading.active_count() == 1 else None
        p = subprocess.Popen(pinned(cmd, cpus), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                             start_new_session=True, preexec_fn=pre, **as_user(user))
    finally:
        if logfile:
            out.close()
    _STARTED.append((name, p))
    return p


def stop(p: subprocess.Popen, name: str = "", grace: float = 8.0) -> None:
    for i, (_, q) in enumerate(_STARTED):
        if q is p:
            _STARTED.pop(i)
            break
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)  # the group this script created for it (start_new_session)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=5)
    if name:
        log(f"stopped {name} (pid {p.pid})")


def stop_all() -> None:
    for name, p in reversed(list(_STARTED)):
        try:
            stop(p, name)
        except Exception as e:  # keep stopping the others
            log(f"could not stop {name} (pid {p.pid}): {e}")
    _STARTED.clear()


def _on_signal(signum, _frame):
    # First signal: ignore further ones so that the clean-up below cannot be cut short, then
    # unwind through the finally blocks, which stop every process group started here.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------------------------
# /proc accounting
# ------------------------------------------------------------------------------------------------
def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
            ppid = int(s[s.rindex(b")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                s = f.read()
            fields = s[s.rindex(b")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_ns(pids: list[int]) -> int:
    """CPU time (ns, all threads) from /proc/<pid>/task/*/schedstat: exact even over a fraction of a
    second, unlike the tick-based utime/stime (not for this process: use time.process_time_ns())."""
    total = 0
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def rss_kb(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except (OSError, ValueError, IndexError):
            pass
    return total


def machine_busy_ticks() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user + nice + system + irq + softirq, all CPUs. Tick-based per-process stime also counts ticks
    # that land in (soft)irq context (e.g. loopback packet processing), so irq/softirq belong here.
    return v[0] + v[1] + v[2] + v[5] + v[6]


def self_ticks() -> float:
    t = os.times()
    return (t.user + t.system) * CLK_TCK


def children_ticks() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * CLK_TCK


class Meter:
    """CPU of the gateway, the upstream, the storage servers (PostgreSQL, Redis: their whole process
    trees, so that their work is not taken for noise) and of everything else, over one measured step."""

    def __init__(self, gw_pid: int | None, up_pid: int, store_pids: list[int] | None = None):
        self.gw_pid, self.up_pid, self.store_pids = gw_pid, up_pid, list(store_pids or [])

    def snap(self):
        gw = cpu_ticks(tree_pids(self.gw_pid)) if self.gw_pid else 0
        up = cpu_ticks(tree_pids(self.up_pid))
        store = cpu_ticks([q for p in self.store_pids for q in tree_pids(p)])
        return time.monotonic(), machine_busy_ticks(), gw, up, self_ticks() + children_ticks(), store

    @staticmethod
    def delta(a, b) -> dict:
        wall = max(b[0] - a[0], 1e-6)
        gw, up, mine, store = b[2] - a[2], b[3] - a[3], b[4] - a[4], b[5] - a[5]
        other = (b[1] - a[1]) - gw - up - mine - store
        pct = lambda t: 100.0 * t / CLK_TCK / wall
        return {"wall_s": wall, "gw_ticks": gw, "gw_cpu_pct": pct(gw), "upstream_cpu_pct": pct(up),
                "loadgen_cpu_pct": pct(mine), "storage_cpu_pct": pct(store), "other_cpu_pct": pct(other)}


def wait_quiet(meter: Meter, threshold: float, max_wait: float) -> float:
    """Wait (bounded) until processes other than ours use less than `threshold` % of a core."""
    deadline = time.monotonic() + max_wait
    while True:
        a = meter.snap()
        time.sleep(0.5)
        other = Meter.delta(a, meter.snap())["other_cpu_pct"]
        if other < threshold or time.monotonic() >= deadline:
            return other


# ------------------------------------------------------------------------------------------------
# machine check: CPU speed and cross-CPU wake-up cost, at the start and the end of a run
# ------------------------------------------------------------------------------------------------
def _loop_ms(cpu: int) -> float:
    os.sched_setaffinity(0, {cpu})
    t = time.perf_counter()
    s = 0
    for i in range(1_000_000):
        s += i
    return (time.perf_counter() - t) * 1000


def _pingpong_us(here: int, there: int, n: int = 2000) -> tuple[float, float]:
    """Round trips of one byte over a socketpair between a process on `here` and one on `there`."""
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # child: echo until told to stop; nothing else, then _exit
        try:
            os.sched_setaffinity(0, {there})
            a.close()
            while True:
                d = b.recv(1)
                if not d or d == b"q":
                    break
                b.send(d)
        finally:
            os._exit(0)
    b.close()
    os.sched_setaffinity(0, {here})
    ts = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            a.send(b"x")
            a.recv(1)
            ts.append(time.perf_counter() - t)
    finally:
        try:
            a.send(b"q")
        except OSError:
            pass
        a.close()
        os.waitpid(pid, 0)
    ts.sort()
    return ts[len(ts) // 2] * 1e6, ts[int(len(ts) * 0.99)] * 1e6


def machine_check(args) -> dict:
    """A fixed Python loop on the gateway's and the load CPU (ms; lower = faster CPU right now) and
    the round trip between them (µs). On this VM a cross-CPU round trip costs ~40-90 µs when the
    other CPU is idle (vs ~8 µs on one CPU), and the host's load changes it: runs whose checks
    differ much are not comparable."""
    ncpu = os.cpu_count() or 1
    gw = cpu_list(args.gw_cpus)[0] if args.gw_cpus else 0
    ld = cpu_list(args.load_cpus)[0] if args.load_cpus else min(1, ncpu - 1)
    before = os.sched_getaffinity(0)
    try:
        out = {"gw_cpu": gw, "load_cpu": ld,
               "loop_ms_gw_cpu": round(min(_loop_ms(gw) for _ in range(3)), 1),
               "loop_ms_load_cpu": round(min(_loop_ms(ld) for _ in range(3)), 1)}
        p50, p99 = _pingpong_us(ld, gw)
        out.update(roundtrip_cross_cpu_us_p50=round(p50, 1), roundtrip_cross_cpu_us_p99=round(p99, 1))
        p50, p99 = _pingpong_us(ld, ld)
        out.update(roundtrip_same_cpu_us_p50=round(p50, 1), roundtrip_same_cpu_us_p99=round(p99, 1))
    finally:
        os.sched_setaffinity(0, before)
    return out


def fmt_check(c: dict) -> str:
    return (f"loop {c['loop_ms_gw_cpu']:.0f} ms on CPU {c['gw_cpu']} / {c['loop_ms_load_cpu']:.0f} ms on CPU "
            f"{c['load_cpu']}; round trip CPU {c['load_cpu']}<->{c['gw_cpu']} p50 "
            f"{c['roundtrip_cross_cpu_us_p50']:.0f} µs (same CPU {c['roundtrip_same_cpu_us_p50']:.0f} µs)")


# ------------------------------------------------------------------------------------------------
# minimal HTTP/1.1 client (keep-alive, chunked) for sanity checks and first-event timing: one
# response parser without I/O (RespParser), used by the blocking client (Http) and by the asyncio
# connections of the concurrent first-event probe (FirstEventConn, further down)
# ------------------------------------------------------------------------------------------------
def build_request(method: str, path: str, port: int, body: bytes = b"", headers: dict | None = None) -> bytes:
    h = {"Host": f"{HOST}:{port}", "Content-Length": str(len(body))}
    if body:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
            + "\r\n").encode() + body


# parser states
_P_STATUS, _P_HEADERS, _P_SIZE, _P_CHUNK, _P_CHUNK_END, _P_TRAILERS, _P_LENGTH, _P_CLOSE, _P_DONE = range(9)


class RespParser:
    """One HTTP/1.1 response, parsed incrementally from the bytes handed to feed(): status line,
    headers, then the body by chunked transfer encoding, Content-Length or until the connection
    closes (feed_eof()). feed() returns True once the response is complete; head_done turns True
    with the end of the headers, first_event with the end of the first SSE event in the decoded
    body (the first b'\\n\\n' or b'\\r\\n\\r\\n'), so that the caller can time both with the
    timestamp it took when it read those bytes. Bytes after the response stay in `buf`."""

    __slots__ = ("buf", "state", "status", "headers", "head_done", "first_event", "body",
                 "keep_body", "received", "_scanned", "_remaining", "_head_only")

    def __init__(self, head_only: bool = False, keep_body: bool = True):
        self.buf = bytearray()
        self.state = _P_STATUS
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = self.first_event = False
        self.body = bytearray()
        self.keep_body, self._head_only = keep_body, head_only
        self.received = self._scanned = self._remaining = 0

    @property
    def done(self) -> bool:
        return self.state == _P_DONE

    @property
    def until_close(self) -> bool:
        """The body runs until the server closes the connection (neither chunked nor a length)."""
        return self.state == _P_CLOSE

    def feed_eof(self) -> None:
        if self.state == _P_CLOSE:
            self.state = _P_DONE
        elif self.state != _P_DONE:
            raise ConnectionError("connection closed mid-response")

    def _data(self, start: int, end: int) -> None:
        """Body bytes buf[start:end]: kept (always until the first event has been seen)."""
        b = self.body
        b += self.buf[start:end]
        if not self.first_event:
            if (b.find(b"\n\n", max(0, self._scanned - 1)) >= 0
                    or b.find(b"\r\n\r\n", max(0, self._scanned - 3)) >= 0):
                self.first_event = True
            self._scanned = len(b)

    def _body_state(self) -> tuple[int, int]:
        h = self.headers
        if self._head_only or self.status in (204, 304):
            return _P_DONE, 0
        if "chunked" in h.get("transfer-encoding", "").lower():
            return _P_SIZE, 0
        if "content-length" in h:
            n = int(h["content-length"])
            return (_P_LENGTH if n else _P_DONE), n
        return _P_CLOSE, 0

    def feed(self, data: bytes) -> bool:
        # One pass over buf by offset (consumed bytes are cut once at the end), and body bytes are
        # not copied once the first event has been seen unless keep_body: the concurrent probe
        # parses every response on the load CPU, so this is kept cheap.
        buf = self.buf
        if data:
            buf += data
            self.received += len(data)
        pos, end, st, rem = 0, len(buf), self.state, self._remaining
        keep = self.keep_body or not self.first_event
        try:
            while True:
                if st == _P_CHUNK or st == _P_LENGTH:
                    n = min(end - pos, rem)
                    if n <= 0:
                        break
                    if keep:
                        self._data(pos, pos + n)
                        keep = self.keep_body or not self.first_event
                    pos += n
                    rem -= n
                    if rem:
                        break
                    st = _P_CHUNK_END if st == _P_CHUNK else _P_DONE
                elif st == _P_SIZE:
                    i = buf.find(b"\r\n", pos)
                    if i < 0:
                        break
                    try:
                        rem = int(buf[pos:i], 16)
                    except ValueError:  # chunk extensions (";name=value")
                        rem = int(buf[pos:i].partition(b";")[0] or b"0", 16)
                    pos = i + 2
                    if not rem:
                        st = _P_TRAILERS
                    elif not keep and end - pos >= rem + 2:  # a whole chunk not needed: skip it
                        pos += rem
                        if buf[pos] != 13 or buf[pos + 1] != 10:
                            raise ValueError(f"chunk not followed by CRLF: {bytes(buf[pos:pos + 20])!r}")
                        pos += 2
                    else:
                        st = _P_CHUNK
                elif st == _P_CHUNK_END:
                    if end - pos < 2:
                        break
                    if buf[pos] != 13 or buf[pos + 1] != 10:
                        raise ValueError(f"chunk not followed by CRLF: {bytes(buf[pos:pos + 20])!r}")
                    pos += 2
                    st = _P_SIZE
                elif st == _P_DONE:
                    break
                elif st == _P_CLOSE:
                    if keep and end > pos:
                        self._data(pos, end)
                    pos = end
                    break
                else:  # the line states: status line, headers, trailers
                    i = buf.find(b"\r\n", pos)
                    if i < 0:
                        break
                    line = bytes(buf[pos:i])
                    pos = i + 2
                    if st == _P_STATUS:
                        self.status = int(line.split(b" ", 2)[1])
                        st = _P_HEADERS
                    elif st == _P_HEADERS:
                        if line:
                            k, _, v = line.decode("latin-1").partition(":")
                            self.headers[k.strip().lower()] = v.strip()
                        else:
                            self.head_done = True
                            st, rem = self._body_state()
                    elif not line:  # _P_TRAILERS: trailers, then the empty line
                        st = _P_DONE
        finally:
            self.state, self._remaining = st, rem
            del buf[:pos]
        return st == _P_DONE


class Http:
    def __init__(self, port: int, timeout: float = 30.0):
        self.port, self.timeout, self.sock, self.buf = port, timeout, None, bytearray()

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, bytearray()

    def _connect(self):
        self.sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _recv(self, p: RespParser) -> int:
        """One recv() into the parser; returns time.perf_counter_ns() taken right after it."""
        data = self.sock.recv(65536)
        t = time.perf_counter_ns()
        if data:
            p.feed(data)
        else:
            p.feed_eof()  # ConnectionError unless the body runs until close
        return t

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                keep_body: bool = True) -> dict:
        """Returns status, headers, body and timings (s, from just before the send): to the response
        headers, to the end of the first SSE event (first b'\\n\\n' in the body), to the end."""
        if self.sock is None:
            self._connect()
        req = build_request(method, path, self.port, body, headers)
        for attempt in (0, 1):
            p = RespParser(head_only=method == "HEAD", keep_body=keep_body)
            if self.buf:
                p.feed(bytes(self.buf))
            t0 = time.perf_counter_ns()
            try:
                self.sock.sendall(req)
                t = t0
                while not p.head_done:
                    t = self._recv(p)
                break
            except (ConnectionError, OSError):
                if attempt or p.received:
                    raise
                # a kept-alive connection the server had closed: one retry on a new one
                self.close()
                self._connect()
        t_head = t
        t_first = t if p.first_event else None
        while not p.done:
            t = self._recv(p)
            if t_first is None and p.first_event:
                t_first = t
        self.buf = p.buf
        if p.until_close or p.headers.get("connection", "").lower() == "close":
            self.close()
        s = lambda ns: (ns - t0) / 1e9
        return {"status": p.status, "headers": p.headers, "body": bytes(p.body) if keep_body else b"",
                "t_head": s(t_head), "t_first_event": s(t_first if t_first is not None else t),
                "t_end": s(t)}


def wait_http_ok(port: int, path: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before it was ready")
        c = Http(port, timeout=3)
        try:
            r = c.request("GET", path)
            if r["status"] == 200:
                return
            last = f"HTTP {r['status']}"
        except OSError as e:
            last = str(e)
        finally:
            c.close()
        time.sleep(0.2)
    raise BenchError(f"{what} not ready on {HOST}:{port}{path} after {timeout:.0f}s ({last})")


def port_busy(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------
# the shared-storage path: a private PostgreSQL (and Redis) for this run only, on the load CPUs
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's pick). Another process could take
    it before our server binds it; the server then fails at start, which is reported."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def log_tail(p: Path, n: int = 3000) -> str:
    try:
        return p.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def pg_bin() -> Path:
    """bin/ of the newest PostgreSQL in Debian's layout, /usr/lib/postgresql/<version>/bin."""
    dirs = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if not dirs:
        raise BenchError("PostgreSQL not found (/usr/lib/postgresql/<version>/bin/initdb); bench/load/run.sh "
                         "installs Debian's postgresql when given --storage postgres")
    return max(dirs, key=lambda d: [int(x) for x in d.parent.name.split(".") if x.isdigit()])


def pg_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, initdb and the server run as the 'postgres' user
    (Debian's package creates it); otherwise as whoever runs this script."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise BenchError("running as root, but there is no 'postgres' user to run PostgreSQL as "
                         "(it refuses to run as root; Debian's postgresql package creates that user)") from None
    return "postgres"


def pg_tool(bin_dir: Path, tool: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """A PostgreSQL client tool against the private server (trust auth, as user tollgate)."""
    return subprocess.run([str(bin_dir / tool), *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=clean_env(), timeout=timeout)


def start_postgres(args, work: Path, out: Path) -> dict:
    """initdb into <work>/pg and start a server there on a free port, pinned to the load CPUs, with
    stock settings (fsync, synchronous_commit and full_page_writes on: the benchmark shows what a
    default server costs). Stopped with everything else by start()/stop_all()."""
    bin_dir, user = pg_bin(), pg_user()
    pgdir = work / "pg"
    pgdir.mkdir(mode=0o700)
    if user:
        shutil.chown(pgdir, user, user)
        work.chmod(0o711)  # mkdtemp made it 0700: the postgres user must be able to reach its data dir
    logfile = out / "postgres.log"
    with open(logfile, "ab") as lf:
        # the locale is fixed so that initdb does not depend on the caller's LANG (one that is not
        # installed makes it fail)
        r = subprocess.run([str(bin_dir / "initdb"), "-D", str(pgdir), "-U", "tollgate", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"],
                           stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, env=clean_env(),
                           cwd=str(pgdir), timeout=300, **as_user(user))
    if r.returncode != 0:
        raise BenchError(f"initdb failed (rc {r.returncode}); {logfile} tail:\n{log_tail(logfile)}")
    port = free_port()
    # -k: the Unix socket goes into the data dir, not into the system's /var/run/postgresql
    p = start("postgres", [str(bin_dir / "postgres"), "-D", str(pgdir), "-p", str(port), "-k", str(pgdir),
                           "-c", f"listen_addresses={HOST}"],
              args.load_cpus, logfile, clean_env(), user)
    log(f"started PostgreSQL ({bin_dir.parent.name}): pid {p.pid}, cpus {args.load_cpus or 'any'}, {HOST}:{port}, "
        f"data dir {pgdir} (log {logfile})")
    deadline = time.monotonic() + 60
    while pg_tool(bin_dir, "pg_isready", "-q", "-h", HOST, "-p", str(port), "-U", "tollgate", "-d", "postgres",
                  "-t", "1").returncode != 0:
        if p.poll() is not None:
            raise BenchError(f"PostgreSQL exited with code {p.returncode} at start; {logfile} tail:\n{log_tail(logfile)}")
        if time.monotonic() > deadline:
            raise BenchError(f"PostgreSQL not accepting connections on {HOST}:{port} after 60 s; see {logfile}")
        time.sleep(0.2)
    r = pg_tool(bin_dir, "createdb", "-h", HOST, "-p", str(port), "-U", "tollgate", "tollgate")
    if r.returncode != 0:
        raise BenchError(f"createdb tollgate failed: {r.stdout.strip()}")
    r = pg_tool(bin_dir, "psql", "-h", HOST, "-p", str(port), "-U", "tollgate", "-d", "tollgate", "-Atc",
                "SHOW server_version")
    return {"proc": p, "port": port, "dir": pgdir,
            "version": r.stdout.strip().split()[0] if r.returncode == 0 and r.stdout.strip() else None}


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(args, work: Path, out: Path) -> dict:
    """A private redis-server on a free port, pinned to the load CPUs, without persistence (Tollgate
    makes its counters again from PostgreSQL's ledger when Redis has lost them). Its working dir is
    the temp dir, so nothing is ever written into the repository."""
    exe = shutil.which("redis-server")
    if not exe:
        raise BenchError("redis-server not found; bench/load/run.sh installs it when given --limiter redis")
    port = free_port()
    logfile = out / "redis.log"
    p = start("redis", [exe, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                        "--daemonize", "no", "--dir", str(work)],
              args.load_cpus, logfile, clean_env())
    log(f"started Redis: pid {p.pid}, cpus {args.load_cpus or 'any'}, {HOST}:{port} (log {logfile})")
    deadline = time.monotonic() + 30
    while not redis_ping(port):
        if p.poll() is not None:
            raise BenchError(f"redis-server exited with code {p.returncode} at start; {logfile} tail:\n{log_tail(logfile)}")
        if time.monotonic() > deadline:
            raise BenchError(f"redis-server not answering PING on {HOST}:{port} after 30 s; see {logfile}")
        time.sleep(0.1)
    v = subprocess.run([exe, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       env=clean_env(), timeout=10).stdout
    version = next((w[2:] for w in v.split() if w.startswith("v=")), None)
    return {"proc": p, "port": port, "version": version}


# ------------------------------------------------------------------------------------------------
# request bodies and checks
# ------------------------------------------------------------------------------------------------
SYSTEM = "You are a concise support assistant. Answer in plain text."
USER = ("Summarize the following support ticket in two sentences and suggest one next step. "
        "Ticket: since the last release, invoices exported as CSV show amounts with a comma as the "
        "decimal separator, and the customer's accounting import rejects every file. They need "
        "this fixed before the end of the month. ")
EXPECTED_TEXT = ("Hello! This is a canned reply from the Tollgate bench upstream, served straight "
                 "from memory.")


def make_body(model: str, stream: bool) -> bytes:
    b = {"model": model,
         "messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": (USER * 4)[:1000]}],
         "max_tokens": 64, "temperature": 0}
    if stream:
        b["stream"] = True
        b["stream_options"] = {"include_usage": True}
    return json.dumps(b, separators=(",", ":")).encode()


def parse_sse(body: bytes) -> tuple[list, bool]:
    events, done = [], False
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
            elif data:
                try:
                    events.append(json.loads(data))
                except ValueError:
                    events.append({"_unparsed": data[:200].decode("utf-8", "replace")})
    return events, done


def check_json(r: dict) -> list[str]:
    if r["status"] != 200:
        return [f"HTTP {r['status']}: {r['body'][:300].decode('utf-8', 'replace')}"]
    problems = []
    try:
        d = json.loads(r["body"])
    except ValueError:
        return ["body is not JSON: " + r["body"][:200].decode("utf-8", "replace")]
    try:
        if d["choices"][0]["message"]["content"] != EXPECTED_TEXT:
            problems.append("content differs from the upstream's")
    except (KeyError, IndexError, TypeError):
        problems.append("no choices[0].message.content")
    if not isinstance(d.get("usage"), dict) or not d["usage"].get("total_tokens"):
        problems.append("no usage.total_tokens")
    return problems


def check_stream(r: dict) -> list[str]:
    if r["status"] != 200:
        return [f"HTTP {r['status']}: {r['body'][:300].decode('utf-8', 'replace')}"]
    problems = []
    if "text/event-stream" not in r["headers"].get("content-type", ""):
        problems.append(f"content-type is {r['headers'].get('content-type')!r}")
    events, done = parse_sse(r["body"])
    if not done:
        problems.append("no data: [DONE]")
    text = "".join((c.get("delta") or {}).get("content") or ""
                   for e in events for c in (e.get("choices") or []) if isinstance(c, dict))
    if text != EXPECTED_TEXT:
        problems.append(f"streamed text differs: {text[:80]!r}")
    if not any(isinstance(e.get("usage"), dict) and e["usage"].get("total_tokens") for e in events):
        problems.append("no usage chunk")
    return problems


# ------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------
class Target:
    def __init__(self, name: str, port: int, auth: str):
        self.name, self.port, self.auth = name, port, auth
        self.url = f"http://{HOST}:{port}/v1/chat/completions"
        assert self.url.startswith("http://127.0.0.1:")

    def headers(self) -> dict:
        return {"Authorization": self.auth} if self.auth else {}


def run_wrk(t: Target, body_file: Path, conc: int, duration: float, args, work: Path) -> dict:
    out = work / f"wrk-{os.getpid()}-{time.monotonic_ns()}.json"
    threads = max(1, min(conc, len(cpu_list(args.load_cpus)) if args.load_cpus else os.cpu_count() or 1))
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
           "-s", str(HERE / "post.lua"), t.url]
    env = clean_env({"TG_BODY": str(body_file), "TG_AUTH": t.auth, "TG_OUT": str(out)})
    p = start("wrk", cmd, args.load_cpus, work / "wrk.log", env)
    try:
        rc = p.wait(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        stop(p, "wrk")
        raise BenchError("wrk did not finish in time")
    stop(p)
    if rc != 0 or not out.exists():
        raise BenchError(f"wrk failed (rc {rc}); see {work / 'wrk.log'}")
    d = json.loads(out.read_text())
    out.unlink()
    return d


def settle(pid: int, min_s: float, max_s: float, busy_pct: float = 5.0) -> float:
    """Idle pause after load: at least min_s, then until the server process (pid) itself goes quiet
    (background JIT compilation finished), at most max_s. Returns the seconds waited."""
    t0 = time.monotonic()
    time.sleep(min_s)
    while time.monotonic() - t0 < max_s:
        a = cpu_ticks(tree_pids(pid))
        time.sleep(0.5)
        if 100.0 * (cpu_ticks(tree_pids(pid)) - a) / CLK_TCK / 0.5 < busy_pct:
            break
    return time.monotonic() - t0


def warm_up(t: Target, server_pid: int, bodies: dict, args, work: Path) -> list[dict]:
    """Unrecorded load in rounds until req/s stops rising. The pauses matter for .NET pinned to
    one CPU: its tiered JIT keeps hot methods at tier 0 while the CPU stays saturated and compiles
    the optimized code once the load pauses (until then the gateway runs at a fraction of its
    steady-state req/s). Each pause lasts until the server is idle again (at most 8 s)."""
    rounds: list[dict] = []
    # the fake upstream runs with DOTNET_TC_CallCountingDelayMs=0 and is warm after one round
    max_rounds = max(1, args.warmup_rounds if t.name == "tollgate" else min(2, args.warmup_rounds))
    for r in range(max_rounds):
        rec = {m: round(run_wrk(t, bodies[m], 8, args.warmup, args, work)["rps"]) for m in args.mode_list}
        if r == 0 and max(args.concs) > 8:
            for m in args.mode_list:
                run_wrk(t, bodies[m], max(args.concs), 1, args, work)
        rounds.append(rec)
        waited = settle(server_pid, args.warmup_pause, 8)
        log(f"warm-up {t.name:8s} round {r + 1}: " + ", ".join(f"{m} {v:,} req/s" for m, v in rec.items())
            + f"; idle pause {waited:.1f} s")
        # stable: every mode within ±5 % of the previous round (a drop is not "stable": tiering
        # and host noise both make single rounds dip)
        if r > 0 and all(abs(rec[m] - rounds[-2][m]) <= 0.05 * rounds[-2][m] for m in rec):
            break
    return rounds


def measure(t: Target, mode: str, conc: int, bodies: dict, args, ctx) -> dict:
    """One point, re-run while disturbed by other processes (at most --retries more times)."""
    best = None
    for attempt in range(1 + args.retries):
        idle_other = wait_quiet(ctx["meter"], args.max_noise / 2, args.quiet_wait)
        ctx["rss_during"].take()  # reset the per-point maximum
        a = ctx["meter"].snap()
        w = run_wrk(t, bodies[mode], conc, args.duration, args, ctx["work"])
        b = ctx["meter"].snap()
        m = Meter.delta(a, b)
        rec = {"target": t.name, "mode": mode, "conc": conc, "attempt": attempt + 1,
               "idle_other_cpu_pct_before": round(idle_other, 1), **w,
               **{k: round(v, 2) for k, v in m.items() if k != "gw_ticks"}}
        if t.name == "tollgate":
            rec["gw_cpu_us_per_req"] = round(m["gw_ticks"] / CLK_TCK * 1e6 / max(1, w["requests"]), 1)
            rec["gw_rss_max_mb"] = round(ctx["rss_during"].take() / 1024, 1)
        err = sum(w["errors"].values())
        log(f"{t.name:8s} {mode:6s} c={conc:<3d} {w['rps']:>9.0f} req/s  p50 {w['latency_us']['p50'] / 1000:7.3f} ms"
            f"  p99 {w['latency_us']['p99'] / 1000:7.3f} ms  errors {err}  other CPU {m['other_cpu_pct']:.0f}%"
            + (f"  gw CPU {m['gw_cpu_pct']:.0f}%" if t.name == "tollgate" else "")
            + (f"  db CPU {m['storage_cpu_pct']:.0f}%" if t.name == "tollgate" and ctx["meter"].store_pids else ""))
        if best is None or rec["other_cpu_pct"] < best["other_cpu_pct"]:
            best = rec
        if rec["other_cpu_pct"] <= args.max_noise:
            break
        log(f"  disturbed: {rec['other_cpu_pct']:.0f}% of a core used by other processes"
            + (" - re-running" if attempt < args.retries else ""))
    best["noisy"] = best["other_cpu_pct"] > args.max_noise
    return best


class RssDuring:
    """Background RSS sampler (every 0.25 s) for the gateway's process tree over the whole
    measurement phase; take() returns the maximum since the last take() and resets it."""

    def __init__(self, pid: int):
        self.pid, self.max_kb, self.overall_kb, self.overall_at = pid, 0, 0, ""
        self.label = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            kb = rss_kb(tree_pids(self.pid))
            with self._lock:
                self.max_kb = max(self.max_kb, kb)
                if kb > self.overall_kb:
                    self.overall_kb, self.overall_at = kb, self.label
            self._stop.wait(0.25)

    def take(self) -> int:
        with self._lock:
            kb, self.max_kb = self.max_kb, 0
        return kb

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=2)


def first_event_probe(t: Target, body: bytes, n: int, max_s: float) -> dict:
    """Sequential (c=1) stream requests on one keep-alive connection; time to the end of the first
    SSE event and to the end of the stream, in ms."""
    c = Http(t.port)
    firsts, ends, bad = [], [], 0
    deadline = time.monotonic() + max_s
    try:
        for _ in range(3):  # not recorded: connection set-up
            c.request("POST", "/v1/chat/completions", body, t.headers(), keep_body=False)
        while len(firsts) < n and time.monotonic() < deadline:
            r = c.request("POST", "/v1/chat/completions", body, t.headers(), keep_body=False)
            if r["status"] != 200:
                bad += 1
                continue
            firsts.append(r["t_first_event"] * 1000)
            ends.append(r["t_end"] * 1000)
    finally:
        c.close()
    return {"n": len(firsts), "non_200": bad, "first_event_ms": dist(firsts), "full_ms": dist(ends)}


class _ConcRun:
    """State shared by the connections of one first_event_probe_conc run (one target)."""

    def __init__(self, loop, port: int, request: bytes, n: int, max_s: float):
        self.loop, self.port, self.request, self.n = loop, port, request, n
        self.deadline = time.monotonic() + max_s
        self.sent = 0  # recorded requests sent (in flight or answered 200): the budget
        self.firsts: list[float] = []
        self.ends: list[float] = []
        self.non_200 = self.conn_errors = 0
        self.t_start = self.t_last = 0  # perf_counter_ns of the first recorded send, last response


class FirstEventConn(asyncio.Protocol):
    """One keep-alive connection of the concurrent first-event probe. It sends its next request
    from the event loop's callback as soon as a response is complete (no task switch per request)
    and takes its timestamps in data_received, i.e. right after the loop's recv() returned and
    before the bytes are parsed. The first `warm` responses are not recorded."""

    def __init__(self, run: _ConcRun, warm: int):
        self.run, self.warm = run, warm
        self.transport = None
        self.p: RespParser | None = None  # the response in flight, if any
        self.t0 = self.t_first = 0
        self.eof = False
        self.finished = run.loop.create_future()  # True: budget spent; False: reconnect

    def _finish(self, result: bool) -> None:
        if not self.finished.done():
            self.finished.set_result(result)

    def connection_made(self, transport):
        self.transport = transport
        self._send()

    def _send(self):
        r = self.run
        if self.warm <= 0:
            if r.sent >= r.n or time.monotonic() >= r.deadline:
                self.transport.close()
                self._finish(True)
                return
            r.sent += 1
        self.p = RespParser(keep_body=False)
        self.t_first = 0
        self.t0 = time.perf_counter_ns()
        if self.warm <= 0 and not r.t_start:
            r.t_start = self.t0
        self.transport.write(r.request)

    def data_received(self, data):
        t = time.perf_counter_ns()
        p = self.p
        if p is None:
            self.transport.abort()  # bytes nobody asked for
            return
        try:
            done = p.feed(data)
        except (ValueError, IndexError):
            self.transport.abort()  # counted in connection_lost
            return
        if not self.t_first and p.first_event:
            self.t_first = t
        if done:
            self._complete(t)

    def _complete(self, t: int):
        p, r = self.p, self.run
        self.p = None
        if self.warm > 0:
            self.warm -= 1
        elif p.status != 200:
            r.sent -= 1  # as in first_event_probe: a non-200 does not count towards the budget
            r.non_200 += 1
        else:
            r.firsts.append(((self.t_first or t) - self.t0) / 1e6)
            r.ends.append((t - self.t0) / 1e6)
            r.t_last = t
        if self.eof or p.headers.get("connection", "").lower() == "close":
            self.transport.close()
            self._finish(False)
        else:
            self._send()

    def eof_received(self):
        self.eof = True
        if self.p is not None and self.p.until_close:
            t = time.perf_counter_ns()
            self.p.feed_eof()
            self._complete(t)
        return False  # close; connection_lost follows

    def connection_lost(self, exc):
        if self.p is not None:  # lost with a request in flight: not recorded, sent again
            self.run.conn_errors += 1
            if self.warm <= 0:
                self.run.sent -= 1
            self.p = None
        self._finish(False)


async def _conc_connection(run: _ConcRun, warm: int) -> None:
    while True:
        try:
            _, conn = await run.loop.create_connection(lambda: FirstEventConn(run, warm), HOST, run.port)
        except OSError:
            run.conn_errors += 1
            await asyncio.sleep(0.05)
        else:
            if await conn.finished:
                return
        if run.conn_errors > 20:
            raise BenchError(f"first-event probe: {run.conn_errors} connection errors on {HOST}:{run.port}")
        warm = 1  # a new connection's first request is not recorded either


def first_event_probe_conc(t: Target, body: bytes, conc: int, n: int, max_s: float,
                           pids: dict[str, int] | None = None) -> dict:
    """`conc` keep-alive connections at once, each sending stream requests one after the other
    (closed loop), n recorded requests in all (at most max_s seconds); per request the time from
    just before sending to the end of the first SSE event and to the end of the stream, in ms.
    One thread: an asyncio event loop (FirstEventConn) rather than `conc` threads taking turns
    on the GIL, and without Python's cyclic garbage collector (collected before, paused during).
    Also the CPU used meanwhile (% of a core) by this process and by the process trees in `pids`
    (name: pid), from start to end of the probe."""
    async def go() -> _ConcRun:
        run = _ConcRun(asyncio.get_running_loop(), t.port,
                       build_request("POST", "/v1/chat/completions", t.port, body, t.headers()), n, max_s)
        try:
            await asyncio.wait_for(asyncio.gather(*(_conc_connection(run, 3) for _ in range(conc))), max_s + 60)
        except asyncio.TimeoutError:
            raise BenchError(f"first-event probe c={conc} against {t.name} did not finish in {max_s + 60:.0f} s") from None
        return run

    def cpu() -> dict:
        return {"probe": time.process_time_ns(), **{k: cpu_ns(tree_pids(p)) for k, p in (pids or {}).items()}}

    gc.collect()
    c0, w0 = cpu(), time.perf_counter_ns()
    gc.disable()
    try:
        run = asyncio.run(go())
    finally:
        gc.enable()
    wall, c1 = time.perf_counter_ns() - w0, cpu()
    out = {"conc": conc, "n": len(run.firsts), "non_200": run.non_200, "conn_errors": run.conn_errors,
           "first_event_ms": dist(run.firsts), "full_ms": dist(run.ends),
           "rps": round(len(run.firsts) / ((run.t_last - run.t_start) / 1e9)) if run.t_last > run.t_start else None}
    out["wall_s"] = round(wall / 1e9, 3)
    out["cpu_pct"] = {k: round(100 * (c1[k] - c0[k]) / wall) for k in c0}
    return out


def pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def dist(vals: list[float]) -> dict:
    s = sorted(vals)
    return {"p50": r3(pct(s, 50)), "p90": r3(pct(s, 90)), "p99": r3(pct(s, 99)),
            "min": r3(s[0] if s else None), "max": r3(s[-1] if s else None),
            "mean": r3(sum(s) / len(s) if s else None)}


def r3(v):
    return None if v is None else round(v, 3)


# ------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------
def sub(a, b):
    return None if a is None or b is None else round(a - b, 3)


def median(vals: list[float]) -> float | None:
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def build_rows(points: list[dict]) -> list[dict]:
    """One row per (mode, conc): medians over rounds (--repeats), direct vs Tollgate."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["target"], p["mode"], p["conc"]), []).append(p)
    rows = []
    for (tgt, mode, conc), gs in groups.items():
        if tgt != "tollgate":
            continue
        ds = groups.get(("direct", mode, conc), [])
        med = lambda ps, fn: median([fn(p) for p in ps]) if ps else None
        rps = lambda p: p["rps"]
        lat = lambda k: (lambda p: p["latency_us"][k] / 1000)
        d_rps, g_rps = med(ds, rps), med(gs, rps)
        d50, d99, g50, g99 = med(ds, lat("p50")), med(ds, lat("p99")), med(gs, lat("p50")), med(gs, lat("p99"))
        rows.append({
            "mode": mode, "conc": conc, "rounds": len(gs),
            "rps_direct": round(d_rps) if d_rps is not None else None, "rps_tollgate": round(g_rps),
            "rps_direct_min_max": [round(min(map(rps, ds))), round(max(map(rps, ds)))] if ds else None,
            "rps_tollgate_min_max": [round(min(map(rps, gs))), round(max(map(rps, gs)))],
            "ratio": round(g_rps / d_rps, 3) if d_rps else None,
            "p50_direct_ms": r3(d50), "p99_direct_ms": r3(d99),
            "p50_tollgate_ms": r3(g50), "p99_tollgate_ms": r3(g99),
            "added_p50_ms": sub(g50, d50), "added_p99_ms": sub(g99, d99),
            "gw_cpu_pct": round(med(gs, lambda p: p["gw_cpu_pct"])),
            "gw_cpu_us_per_req": round(med(gs, lambda p: p["gw_cpu_us_per_req"]), 1),
            "gw_rss_max_mb": max(p["gw_rss_max_mb"] for p in gs),
            "storage_cpu_pct": round(med(gs, lambda p: p.get("storage_cpu_pct", 0))),
            "errors_direct": sum(sum(p["errors"].values()) for p in ds) if ds else None,
            "errors_tollgate": sum(sum(p["errors"].values()) for p in gs),
            "other_cpu_pct_direct": round(max(p["other_cpu_pct"] for p in ds)) if ds else None,
            "other_cpu_pct_tollgate": round(max(p["other_cpu_pct"] for p in gs)),
            "noisy": any(p.get("noisy") for p in gs + ds),
        })
    return rows


def f(v, nd=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def storage_desc(res: dict) -> str:
    """One line saying which storage path was measured (old results.json files have no such options)."""
    o, s = res["options"], res.get("storage") or {}
    if o.get("storage", "sqlite") == "postgres":
        pg = " ".join(filter(None, ["PostgreSQL", (s.get("postgres") or {}).get("version")]))
        if o.get("limiter") == "redis":
            rd = " ".join(filter(None, ["Redis", (s.get("redis") or {}).get("version")]))
            where, what = f"**{pg}**, limit counters in **{rd}** (no persistence)", "private servers"
        else:
            where, what = f"**{pg}**, limit counters in PostgreSQL", "a private server"
        line = (f"Storage: {where} (`--storage postgres --limiter {o.get('limiter', 'database')}`): {what} "
                "started for this run with stock settings (fsync on), on the load CPUs, where they compete "
                "with the upstream and wrk, so the Tollgate numbers are pessimistic; `db CPU %` is their CPU "
                "(% of a core) during the Tollgate point.")
    else:
        line = "Storage: **embedded SQLite** (`--storage sqlite`)."
    if o.get("limited"):
        line += (" Client key **limited** (`--limited`, monthlyTokens 10^12): every request reserves and settles "
                 "against the limit counters, none is refused.")
    else:
        line += " Client key without limits: requests touch no limit counters."
    return line


def render(res: dict) -> str:
    L = [storage_desc(res), ""]
    db = res["options"].get("storage", "sqlite") == "postgres"
    L.append("| mode | conc | req/s direct | req/s Tollgate | ratio | p50 direct ms | p99 direct ms "
             "| p50 Tollgate ms | p99 Tollgate ms | added p50 ms | added p99 ms | gw CPU % | gw CPU µs/req "
             "| gw RSS max MB |" + (" db CPU % |" if db else "") + " errors d/t | other CPU % d/t |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if db else "")
             + "---:|---:|")
    rng = lambda v, mm: f(v) + (f" [{mm[0]:,}–{mm[1]:,}]" if mm and mm[0] != mm[1] else "")
    for r in res["rows"]:
        L.append(f"| {r['mode']}{' *' if r['noisy'] else ''} | {r['conc']} | {rng(r['rps_direct'], r['rps_direct_min_max'])} "
                 f"| {rng(r['rps_tollgate'], r['rps_tollgate_min_max'])} | {f(r['ratio'])} | {f(r['p50_direct_ms'])} | {f(r['p99_direct_ms'])} "
                 f"| {f(r['p50_tollgate_ms'])} | {f(r['p99_tollgate_ms'])} | {f(r['added_p50_ms'])} "
                 f"| {f(r['added_p99_ms'])} | {f(r['gw_cpu_pct'])} | {f(r['gw_cpu_us_per_req'], 1)} "
                 f"| {f(r['gw_rss_max_mb'], 1)} |" + (f" {f(r.get('storage_cpu_pct'))} |" if db else "")
                 + f" {f(r['errors_direct'])}/{f(r['errors_tollgate'])} "
                 f"| {f(r['other_cpu_pct_direct'])}/{f(r['other_cpu_pct_tollgate'])} |")
    fe = res.get("first_event") or {}
    if fe:
        L.append("")
        L.append("| stream probe | n | first event p50 ms direct | first event p99 ms direct "
                 "| first event p50 ms Tollgate | first event p99 ms Tollgate | **added first event p50 ms** "
                 "| added p99 ms | full stream p50 ms direct | full stream p50 ms Tollgate |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        kc = res["options"].get("first_event_conc") or 0
        for k, label in (("fast", "fast (22 events, no delay), c=1"),
                         (f"fast_c{kc}", f"fast, c={kc} ({kc} connections)"),
                         ("slow", f"slowed ({res['options']['slow_delay_ms']} ms between events), c=1"),
                         (f"slow_c{kc}", f"slowed, c={kc} ({kc} streams always in flight)")):
            e = fe.get(k)
            if not e:
                continue
            if "skipped" in e:
                L.append(f"| {label} | - | skipped: {e['skipped']} | | | | | | | |")
                continue
            d, g = e["direct"], e["tollgate"]
            L.append(f"| {label} | {d['n']}/{g['n']} | {f(d['first_event_ms']['p50'])} | {f(d['first_event_ms']['p99'])} "
                     f"| {f(g['first_event_ms']['p50'])} | {f(g['first_event_ms']['p99'])} "
                     f"| **{f(e['added_first_event_p50_ms'])}** | {f(e['added_first_event_p99_ms'])} "
                     f"| {f(d['full_ms']['p50'])} | {f(g['full_ms']['p50'])} |")
        ec = fe.get(f"fast_c{kc}")
        if ec:
            d, g = ec["direct"], ec["tollgate"]
            cpu = lambda e, who: (e.get("cpu_pct") or {}).get(who)
            L.append("")
            L.append(f"First event at c={kc}: {kc} keep-alive connections, each sending the next request as soon as "
                     f"a stream ends, from one asyncio thread on the load CPU. CPU during the probe, % of a core: "
                     f"direct ({f(d['rps'])} req/s) upstream {f(cpu(d, 'upstream'))} + probe {f(cpu(d, 'probe'))}; "
                     f"Tollgate ({f(g['rps'])} req/s) gateway {f(cpu(g, 'gateway'))}, upstream "
                     f"{f(cpu(g, 'upstream'))} + probe {f(cpu(g, 'probe'))}"
                     + "".join(f" + {n} {f(cpu(g, k))}" for k, n in (("postgres", "PostgreSQL"), ("redis", "Redis"))
                               if cpu(g, k) is not None)
                     + f". Non-200 {d['non_200']}/{g['non_200']}, "
                     f"connection errors {d['conn_errors']}/{g['conn_errors']}.")
    rss = res.get("gateway_rss_mb") or {}
    L.append("")
    L.append(f"Gateway RSS: {f(rss.get('idle_after_start'), 1)} MB idle after start, "
             f"**max {f(rss.get('max'), 1)} MB** under load ({rss.get('max_at') or '-'}), "
             f"{f(rss.get('idle_at_end'), 1)} MB idle at the end. "
             f"Gateway data dir at the end: {f(res.get('gateway_data_dir_mb'), 1)} MB."
             + (f" PostgreSQL data dir at the end: {f(res['postgres_data_dir_mb'], 1)} MB."
                if res.get("postgres_data_dir_mb") is not None else ""))
    if any(r["noisy"] for r in res["rows"]):
        L.append(f"`*` = other processes used more than {res['options']['max_noise']}% of a core during that "
                 "point even after re-running it; treat it with care.")
    return "\n".join(L)


def machine_meta(args) -> dict:
    def sh(cmd):
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=20, cwd=str(REPO), env=clean_env())
            return r.stdout.strip() if r.returncode == 0 or cmd[0] == "wrk" else None
        except (OSError, subprocess.TimeoutExpired):
            return None
    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = open("/proc/meminfo").readline().split()[1] + " kB"
    except OSError:
        pass
    return {"utc": args.stamp, "host_cpu": cpu, "cpus": os.cpu_count(), "mem_total": mem,
            "kernel": platform.release(), "dotnet": sh(["dotnet", "--version"]),
            "wrk": ((sh(["wrk", "-v"]) or "").splitlines() or [None])[0],
            "python": platform.python_version(),
            "git_commit": sh(["git", "rev-parse", "HEAD"]) or None,
            "git_dirty": bool(sh(["git", "status", "--porcelain", "--", "src"])),
            "gateway_dll": str(args.gateway_dll), "upstream_dll": str(args.upstream_dll)}


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
def cpu_list(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/load/run.sh",
                                description="Tollgate load benchmark: direct-to-upstream vs through Tollgate.")
    p.add_argument("--duration", type=float, default=10, help="seconds per measured point (default 10)")
    p.add_argument("--warmup", type=float, default=2,
                   help="seconds of unrecorded wrk load (c=8) per mode in each warm-up round (default 2)")
    p.add_argument("--warmup-rounds", type=int, default=6,
                   help="max warm-up rounds for the gateway (the upstream gets at most 2); they stop once "
                        "req/s of every mode is within 5%% of the previous round (default 6)")
    p.add_argument("--warmup-pause", type=float, default=1,
                   help="minimum idle seconds after each warm-up round, then until the server's own CPU "
                        "use drops (at most 8 s): .NET on one CPU tiers hot code up when the load pauses "
                        "(default 1)")
    p.add_argument("--gw-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment variable for the gateway (repeatable), e.g. DOTNET_TieredPGO=0")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of the whole matrix; the table shows medians and [min–max] of req/s (default 1)")
    p.add_argument("--conc", default="1,8,64", help="wrk concurrencies (default 1,8,64)")
    p.add_argument("--modes", default="json,stream", help="json,stream (default both)")
    p.add_argument("--gw-cpus", default="0", help="taskset CPU list for the gateway (default 0; '' = no pinning)")
    p.add_argument("--load-cpus", default="1",
                   help="taskset CPU list for the upstream, wrk and this script (default 1; '' = no pinning)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 s points, at most 4 warm-up rounds, fewer first-event samples (~2 min)")
    p.add_argument("--first-event-requests", type=int, default=1000,
                   help="stream requests per target for first-event timing (default 1000, max 8 s), for the "
                        "sequential probe and in all for the concurrent one")
    p.add_argument("--first-event-conc", type=int, default=8,
                   help="connections of the concurrent first-event probe (default 8; 0 = skip it)")
    p.add_argument("--slow-requests", type=int, default=25, help="slowed-stream requests per target (default 25)")
    p.add_argument("--slow-delay-ms", type=int, default=5, help="ms between events of the slowed stream (default 5)")
    p.add_argument("--gw-port", type=int, default=5080)
    p.add_argument("--upstream-port", type=int, default=19080)
    p.add_argument("--stream-flush", choices=["event", "once"], default="event",
                   help="fake upstream: flush after every SSE event (default) or write the stream at once")
    p.add_argument("--max-noise", type=float, default=15,
                   help="re-run a point when other processes used more than this %% of a core (default 15)")
    p.add_argument("--retries", type=int, default=1, help="re-runs of a disturbed point (default 1)")
    p.add_argument("--quiet-wait", type=float, default=5,
                   help="max seconds to wait, before each point, for other processes to go quiet (default 5)")
    p.add_argument("--out", default="", help="results dir (default bench/results/<UTC>)")
    p.add_argument("--gateway-dll", default=str(REPO / "artifacts/bin/Tollgate.Server/release/tollgate.dll"))
    p.add_argument("--upstream-dll",
                   default=str(REPO / "artifacts/bin/Tollgate.Bench.Upstream/release/Tollgate.Bench.Upstream.dll"))
    p.add_argument("--config", default=str(HERE / "tollgate.bench.json"), help="gateway config template")
    p.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite",
                   help="gateway storage: sqlite (default, embedded) or postgres (a private PostgreSQL server "
                        "started for the run, on the load CPUs)")
    p.add_argument("--limiter", choices=["database", "redis"], default="database",
                   help="where the limit counters live: database (default) or redis (a private redis-server "
                        "started for the run, on the load CPUs; needs --storage postgres)")
    p.add_argument("--limited", action="store_true",
                   help="create the client key with limits (monthlyTokens 10^12): every request reserves and "
                        "settles against them, none is refused (default: a key without limits)")
    p.add_argument("--no-build", action="store_true", help="(run.sh) skip the Release builds")
    a = p.parse_args(argv)
    if a.limiter == "redis" and a.storage != "postgres":
        p.error("--limiter redis needs --storage postgres (Tollgate keeps counters in Redis only for a shared "
                "PostgreSQL database)")
    if a.quick:
        a.duration = min(a.duration, 3)
        a.warmup = min(a.warmup, 2)
        a.warmup_rounds = min(a.warmup_rounds, 4)
        a.first_event_requests = min(a.first_event_requests, 300)
        a.slow_requests = min(a.slow_requests, 10)
        a.quiet_wait = min(a.quiet_wait, 4)
    if a.first_event_conc < 0:
        p.error("--first-event-conc takes 0 (off) or a number of connections")
    a.concs = [int(x) for x in a.conc.split(",") if x.strip()]
    a.mode_list = [m.strip() for m in a.modes.split(",") if m.strip()]
    if any(m not in ("json", "stream") for m in a.mode_list):
        p.error("--modes takes json and/or stream")
    if a.gw_cpus in ("none", "-"):
        a.gw_cpus = ""
    if a.load_cpus in ("none", "-"):
        a.load_cpus = ""
    ncpu = os.cpu_count() or 1
    for name in ("gw_cpus", "load_cpus"):
        spec = getattr(a, name)
        if spec and any(c >= ncpu for c in cpu_list(spec)):
            log(f"--{name.replace('_', '-')} {spec}: this machine has {ncpu} CPU(s); pinning disabled")
            a.gw_cpus = a.load_cpus = ""
    if a.gw_cpus and a.load_cpus and set(cpu_list(a.gw_cpus)) & set(cpu_list(a.load_cpus)):
        log("warning: --gw-cpus and --load-cpus overlap; the gateway competes with the load generator")
    a.stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    a.out = Path(a.out) if a.out else REPO / "bench" / "results" / a.stamp
    a.gateway_dll, a.upstream_dll = Path(a.gateway_dll), Path(a.upstream_dll)
    return a


def main(argv) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    for tool in ("wrk", "dotnet") + (("taskset",) if args.gw_cpus or args.load_cpus else ()):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found (bench/load/run.sh installs wrk and taskset)")
    for dll, what in ((args.gateway_dll, "gateway"), (args.upstream_dll, "fake upstream")):
        if not dll.exists():
            raise BenchError(f"{what} not built: {dll} missing (run bench/load/run.sh without --no-build)")
    if args.storage == "postgres":  # fail before anything is started
        pg_bin(), pg_user()
    if args.limiter == "redis" and not shutil.which("redis-server"):
        raise BenchError("redis-server not found; bench/load/run.sh installs it when given --limiter redis")
    for port in (args.gw_port, args.upstream_port):
        if port_busy(port):
            raise BenchError(f"{HOST}:{port} is already in use; stop that process or pass --gw-port/--upstream-port")
    if args.load_cpus:
        os.sched_setaffinity(0, set(cpu_list(args.load_cpus)))  # this script is a load generator too

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tollgate-loadbench-"))
    data_dir = work / "gw-data"
    data_dir.mkdir()
    log(f"results -> {out}")
    res = {"meta": machine_meta(args),
           "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                       if k not in ("mode_list", "concs")},
           "storage": {"database": args.storage, "limiter": args.limiter, "limited_key": args.limited},
           "warmup": {}, "points": [], "rows": [], "first_event": {}, "sanity": {}}
    res["options"]["conc"], res["options"]["modes"] = args.concs, args.mode_list
    t_start = time.monotonic()
    rss_during = None
    res["machine_check"] = {"start": machine_check(args)}
    log("machine check: " + fmt_check(res["machine_check"]["start"]))
    try:
        bodies = {"json": work / "body-json.json", "stream": work / "body-stream.json"}
        bodies["json"].write_bytes(make_body("gpt-4o-mini", False))
        bodies["stream"].write_bytes(make_body("gpt-4o-mini", True))
        slow_model = f"gpt-4o-mini-delay{args.slow_delay_ms}"
        slow_body = make_body(slow_model, True)
        for k, pth in bodies.items():
            shutil.copy(pth, out / f"body-{k}.json")

        # --- fake upstream
        up = start("upstream", ["dotnet", str(args.upstream_dll), "--urls", f"http://{HOST}:{args.upstream_port}",
                                "--stream-flush", args.stream_flush],
                   args.load_cpus, out / "upstream.log",
                   # tier hot code up at once even under constant load (see warm_up); the gateway is
                   # measured with its own defaults
                   clean_env({"DOTNET_gcServer": "0", "DOTNET_TC_CallCountingDelayMs": "0"}))
        log(f"started fake upstream: pid {up.pid}, cpus {args.load_cpus or 'any'}, {HOST}:{args.upstream_port}")
        wait_http_ok(args.upstream_port, "/health", up, 30, "fake upstream")

        # --- the shared path's servers (before the gateway, which connects to them at start); they
        # share the load CPUs with the upstream and wrk, so the numbers through Tollgate are pessimistic
        store_env: dict[str, str] = {}
        store_pids: dict[str, int] = {}  # name: pid, for the CPU accounting
        pg = rd = None
        if args.storage == "postgres":
            pg = start_postgres(args, work, out)
            store_env["TOLLGATE_POSTGRES"] = f"Host={HOST};Port={pg['port']};Username=tollgate;Database=tollgate"
            store_pids["postgres"] = pg["proc"].pid
            res["storage"]["postgres"] = {"version": pg["version"], "port": pg["port"]}
        if args.limiter == "redis":
            rd = start_redis(args, work, out)
            store_env["TOLLGATE_REDIS"] = f"{HOST}:{rd['port']}"
            store_pids["redis"] = rd["proc"].pid
            res["storage"]["redis"] = {"version": rd["version"], "port": rd["port"]}

        # --- gateway
        cfg = Path(args.config).read_text()
        cfg = cfg.replace("127.0.0.1:19080", f"127.0.0.1:{args.upstream_port}").replace("delay5", f"delay{args.slow_delay_ms}")
        if args.storage == "postgres":
            try:
                doc = json.loads(cfg)
            except ValueError as e:
                raise BenchError(f"gateway config {args.config} is not plain JSON ({e}); --storage postgres edits it") from None
            doc.setdefault("storage", {})["database"] = "postgres"
            if args.limiter == "redis":
                doc["storage"]["limiter"] = "redis"
            cfg = json.dumps(doc, indent=2) + "\n"
        for url_host in ("localhost", "0.0.0.0"):
            if url_host in cfg:
                raise BenchError(f"gateway config must point at 127.0.0.1 only (found {url_host})")
        cfg_file = out / "tollgate.bench.json"
        cfg_file.write_text(cfg)
        admin_key = "tga-" + secrets.token_hex(24)
        extra = dict(kv.split("=", 1) for kv in args.gw_env if "=" in kv)
        gw_env = clean_env({**extra, "TOLLGATE_ADMIN_KEY": admin_key, "BENCH_UPSTREAM_KEY": "sk-bench", **store_env})
        gw = start("tollgate", ["dotnet", str(args.gateway_dll), "serve", "--config", str(cfg_file),
                                "--urls", f"http://{HOST}:{args.gw_port}", "--data-dir", str(data_dir)],
                   args.gw_cpus, out / "gateway.log", gw_env)
        log(f"started Tollgate: pid {gw.pid}, cpus {args.gw_cpus or 'any'}, {HOST}:{args.gw_port} (log {out / 'gateway.log'})")
        try:
            wait_http_ok(args.gw_port, "/health", gw, 60, "Tollgate")
        except BenchError:
            tail = (out / "gateway.log").read_text(errors="replace")[-3000:]
            raise BenchError(f"Tollgate did not become ready. gateway.log tail:\n{tail}") from None

        key_req: dict = {"name": "bench"}
        if args.limited:
            # a limit that makes every request reserve its worst case and settle afterwards (the
            # limit counters' whole path), but that no run comes near: nothing is ever refused
            key_req["limits"] = {"monthlyTokens": 1_000_000_000_000}
        c = Http(args.gw_port)
        r = c.request("POST", "/admin/keys", json.dumps(key_req).encode(),
                      {"Authorization": f"Bearer {admin_key}"})
        c.close()
        try:
            key_doc = json.loads(r["body"])
            client_key = key_doc["key"]
        except (ValueError, KeyError, TypeError):
            raise BenchError(f"creating a client key failed: HTTP {r['status']} {r['body'][:300]!r}") from None
        if r["status"] not in (200, 201) or not str(client_key).startswith("tg-"):
            raise BenchError(f"unexpected /admin/keys answer: HTTP {r['status']} {r['body'][:300]!r}")
        if args.limited and not key_doc.get("limits"):
            raise BenchError(f"the client key was created without its limits: {r['body'][:300]!r}")
        log("created a client key" + (f" with limits {json.dumps(key_doc['limits'])}" if args.limited else ""))

        direct = Target("direct", args.upstream_port, "Bearer sk-bench")
        tollgate = Target("tollgate", args.gw_port, f"Bearer {client_key}")
        targets = [direct, tollgate]

        # --- sanity: every target answers what the upstream sends
        slow_ok = True
        for t in targets:
            c = Http(t.port)
            try:
                pj = check_json(c.request("POST", "/v1/chat/completions", bodies["json"].read_bytes(), t.headers()))
                ps = check_stream(c.request("POST", "/v1/chat/completions", bodies["stream"].read_bytes(), t.headers()))
                sl = c.request("POST", "/v1/chat/completions", slow_body, t.headers())
                pl = check_stream(sl)
            finally:
                c.close()
            res["sanity"][t.name] = {"json": pj or "ok", "stream": ps or "ok", "slow_stream": pl or "ok"}
            log(f"sanity {t.name}: json {pj or 'ok'}; stream {ps or 'ok'}; slowed stream {pl or 'ok'}")
            if any("HTTP" in x for x in pj + ps):
                raise BenchError(f"{t.name} does not answer chat completions: {pj + ps}")
            if pl and sl["status"] != 200:
                slow_ok = False
        meter = Meter(gw.pid, up.pid, list(store_pids.values()))
        busy = wait_quiet(meter, args.max_noise / 2, 0)
        if busy > args.max_noise:
            log(f"warning: other processes use {busy:.0f}% of a core right now; disturbed points are "
                "re-run and flagged '*' in the table")
        rss_start = rss_kb(tree_pids(gw.pid))
        rss_during = RssDuring(gw.pid)
        rss_during.thread.start()
        ctx = {"meter": meter, "gw_pid": gw.pid, "work": work, "rss_during": rss_during}

        # --- warm-up (JIT tiering, connection pools, thread pool), not recorded
        log(f"warm-up: rounds of {args.warmup:g} s per mode at c=8 and a {args.warmup_pause:g} s pause, "
            f"until req/s is stable within 5% (at most {args.warmup_rounds} rounds for the gateway)")
        for t in targets:
            res["warmup"][t.name] = warm_up(t, gw.pid if t is tollgate else up.pid, bodies, args, work)
        rss_during.take()

        # --- the matrix; direct and Tollgate interleaved point by point, --repeats rounds
        for rnd in range(args.repeats):
            if args.repeats > 1:
                log(f"round {rnd + 1} of {args.repeats}")
            for mode in args.mode_list:
                for conc in args.concs:
                    for t in targets:
                        rss_during.label = f"{mode} c={conc}"
                        res["points"].append({"round": rnd + 1, **measure(t, mode, conc, bodies, args, ctx)})
        rss_during.label = "first-event probes"

        # --- time to first SSE event, c=1
        fe_max_s = 8 if not args.quick else 3
        fast = {t.name: first_event_probe(t, bodies["stream"].read_bytes(), args.first_event_requests, fe_max_s)
                for t in targets}
        res["first_event"]["fast"] = {**fast, **_added(fast)}
        log(f"first event, fast stream: direct p50 {fast['direct']['first_event_ms']['p50']} ms, "
            f"Tollgate p50 {fast['tollgate']['first_event_ms']['p50']} ms")
        # --- the same at --first-event-conc connections at once (one asyncio thread)
        if args.first_event_conc > 0:
            k = args.first_event_conc
            fc = {t.name: first_event_probe_conc(t, bodies["stream"].read_bytes(), k, args.first_event_requests,
                                                 fe_max_s, {"gateway": gw.pid, "upstream": up.pid, **store_pids})
                  for t in targets}
            res["first_event"][f"fast_c{k}"] = {**fc, **_added(fc)}
            log(f"first event, fast stream, c={k}: direct p50 {fc['direct']['first_event_ms']['p50']} ms "
                f"p99 {fc['direct']['first_event_ms']['p99']} ms, Tollgate p50 {fc['tollgate']['first_event_ms']['p50']} ms "
                f"p99 {fc['tollgate']['first_event_ms']['p99']} ms; req/s direct {fc['direct']['rps']}, "
                f"Tollgate {fc['tollgate']['rps']}; non-200 {fc['direct']['non_200']}/{fc['tollgate']['non_200']}")
        if slow_ok:
            slow = {t.name: first_event_probe(t, slow_body, args.slow_requests, 30) for t in targets}
            res["first_event"]["slow"] = {**slow, **_added(slow)}
            log(f"first event, slowed stream: direct p50 {slow['direct']['first_event_ms']['p50']} ms, "
                f"Tollgate p50 {slow['tollgate']['first_event_ms']['p50']} ms "
                f"(full stream {slow['tollgate']['full_ms']['p50']} ms)")
            # --- slowed streams at --first-event-conc connections: that many streams always in flight, as
            # with real token streams, without saturating either side (the fast closed loop above does)
            if args.first_event_conc > 0:
                k = args.first_event_conc
                sc = {t.name: first_event_probe_conc(t, slow_body, k, args.slow_requests * k, 30,
                                                     {"gateway": gw.pid, "upstream": up.pid, **store_pids})
                      for t in targets}
                res["first_event"][f"slow_c{k}"] = {**sc, **_added(sc)}
                log(f"first event, slowed stream, c={k}: direct p50 {sc['direct']['first_event_ms']['p50']} ms, "
                    f"Tollgate p50 {sc['tollgate']['first_event_ms']['p50']} ms")
        else:
            res["first_event"]["slow"] = {"skipped": f"model {slow_model} not routed by the gateway"}

        rss_during.stop()
        time.sleep(1)
        res["gateway_rss_mb"] = {"idle_after_start": round(rss_start / 1024, 1),
                                 "max": round(max(rss_during.overall_kb, max(
                                     (p.get("gw_rss_max_mb", 0) * 1024 for p in res["points"]), default=0)) / 1024, 1),
                                 "max_at": rss_during.overall_at,
                                 "idle_at_end": round(rss_kb(tree_pids(gw.pid)) / 1024, 1)}
        pts_max = max((p for p in res["points"] if p["target"] == "tollgate"),
                      key=lambda p: p.get("gw_rss_max_mb", 0), default=None)
        if pts_max and pts_max["gw_rss_max_mb"] >= res["gateway_rss_mb"]["max"]:
            res["gateway_rss_mb"]["max_at"] = f"{pts_max['mode']} c={pts_max['conc']}"
        res["gateway_data_dir_mb"] = round(sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()) / 2**20, 1)
        if pg:
            res["postgres_data_dir_mb"] = round(sum(f.stat().st_size for f in pg["dir"].rglob("*") if f.is_file()) / 2**20, 1)
        res["rows"] = build_rows(res["points"])
    finally:
        if rss_during:
            rss_during.stop()
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
        trim_log(out / "gateway.log")
    res["machine_check"]["end"] = machine_check(args)
    log("machine check: " + fmt_check(res["machine_check"]["end"]))
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)

    table = render(res)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    shared = ", ".join(([f"PostgreSQL{' + Redis limiter' if args.limiter == 'redis' else ''}"]
                        if args.storage == "postgres" else []) + (["limited key"] if args.limited else []))
    shared = f" — {shared}" if shared else ""
    header = (f"# Tollgate load benchmark {args.stamp}{shared}\n\n"
              f"commit `{res['meta']['git_commit'] or 'none'}`{' (src dirty)' if res['meta']['git_dirty'] else ''}, "
              f"{res['meta']['host_cpu']}, {res['meta']['cpus']} CPUs, dotnet {res['meta']['dotnet']}, "
              f"{res['meta']['wrk']}.\n"
              f"Gateway on CPUs `{args.gw_cpus or 'any'}`, fake upstream + wrk + probes on `{args.load_cpus or 'any'}`. "
              f"{args.duration:g} s per point, {args.repeats} round(s) (medians), after warm-up rounds (req/s per round, direct: "
              f"{_rounds(res['warmup'].get('direct'))}; Tollgate: {_rounds(res['warmup'].get('tollgate'))}); "
              + (f"gateway env: {' '.join(args.gw_env)}; " if args.gw_env else "") +
              f"upstream stream flush: {args.stream_flush}. Latencies are wrk's full-response times; "
              f"added = Tollgate − direct. How to read: bench/load/README.md.\n"
              f"Machine check, start: {fmt_check(res['machine_check']['start'])}; "
              f"end: {fmt_check(res['machine_check']['end'])}.\n\n")
    (out / "results.md").write_text(header + table + "\n")
    print()
    print(header.split("\n", 2)[2].strip())
    print()
    print(table)
    print(f"\n(results: {out}/results.json, results.md; {res['elapsed_s']:.0f} s)")
    return 0


def _rounds(rounds) -> str:
    if not rounds:
        return "-"
    return " → ".join("/".join(f"{v / 1000:.1f}k" for v in r.values()) for r in rounds)


def _added(pair: dict) -> dict:
    d, g = pair["direct"]["first_event_ms"], pair["tollgate"]["first_event_ms"]
    return {"added_first_event_p50_ms": sub(g["p50"], d["p50"]), "added_first_event_p99_ms": sub(g["p99"], d["p99"])}


def trim_log(p: Path, limit: int = 20 * 2**20) -> None:
    try:
        if p.stat().st_size <= limit:
            return
        with open(p, "rb") as fh:
            head = fh.read(2 * 2**20)
            fh.seek(-2 * 2**20, os.SEEK_END)
            tail = fh.read()
        p.write_bytes(head + f"\n\n[... {p.stat().st_size} bytes in total; cut by the bench ...]\n\n".encode() + tail)
    except OSError:
        pass


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        stop_all()
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt as e:
        stop_all()
        log(f"interrupted ({e or 'Ctrl-C'}); stopped everything started here")
        sys.exit(130)
    finally:
        stop_all()
