#!/usr/bin/env python3
"""API requests per second on shoald's busy endpoints, against a baseline served by the
same HTTP server in the same run: GET /api/v1/tasks (a page of every task, with hundreds of
hosts and tasks in the store) and GET /boot?mac= (the iPXE script for a known host), each
against GET /clientos/static.txt (a 300-byte file, the cheapest thing the server does).
The store is SQLite, then PostgreSQL (a private cluster started here when run as root).

C worker processes each keep one HTTP/1.1 connection alive and send requests back to back
for D seconds; the figure is answers per second over all workers (every answer's status
checked). The load generator is Python on the same machine: it costs CPU the server does
not get, so read the ratio to the baseline, not the absolute figure.

  bench/e2e/api.py [--quick] [--shoald build/control/shoald] [--hosts 500] [--clients 8]
                   [--seconds 5] [--backends sqlite,postgresql]
"""
import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(conn, method, path, body=None, token=None, ctype="application/json"):
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def worker(port, path, token, seconds, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": "Bearer " + token} if token else {}
    n = 0
    bad = 0
    end = time.monotonic() + seconds
    paths = path if isinstance(path, list) else [path]
    i = 0
    while time.monotonic() < end:
        conn.request("GET", paths[i % len(paths)], headers=headers)
        r = conn.getresponse()
        r.read()
        i += 1
        if r.status == 200:
            n += 1
        else:
            bad += 1
    out.put((n, bad))


def load(port, path, token, clients, seconds):
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(port, path, token, seconds, q))
             for _ in range(clients)]
    start = time.monotonic()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - start
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    if bad:
        raise SystemExit("%d requests to %s failed" % (bad, path if isinstance(path, str) else path[0]))
    return ok / max(elapsed, 1e-9)


class pg_cluster:
    """initdb + pg_ctl as the postgres user in a temp dir (as tests/control/pg_fixture.h)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="shoal-bench-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()

    def run(self, *argv):
        subprocess.run(["runuser", "-u", "postgres", "--"] + list(argv), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        self.run(PG_BIN + "/initdb", "-D", self.dir + "/data", "-U", "postgres", "-A", "trust",
                 "-E", "UTF8")
        self.run(PG_BIN + "/pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/server.log",
                 "-w", "-t", "60", "-o",
                 "-k %s -p %d -c listen_addresses=127.0.0.1 -c max_connections=50"
                 % (self.dir, self.port), "start")
        self.run(PG_BIN + "/psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres",
                 "-c", "CREATE DATABASE shoal")
        return "host=%s port=%d user=postgres dbname=shoal" % (self.dir, self.port)

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/pg_ctl", "-D",
                        self.dir + "/data", "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_backend(args, backend, store_url, work):
    port = free_port()
    clientos = os.path.join(work, "clientos")
    os.makedirs(clientos, exist_ok=True)
    with open(os.path.join(clientos, "static.txt"), "w") as f:
        f.write("x" * 300)
    cfg = os.path.join(work, "shoald-%s.json" % backend)
    with open(cfg, "w") as f:
        json.dump({"store": store_url, "images": work, "clientos": clientos,
                   "admin": {"password": "bench-password"},
                   "boot": {"tftp": {"enabled": False},
                            "http": {"address": "127.0.0.1", "port": port,
                                     "threads": args.threads}}}, f)
    log = open(os.path.join(work, "shoald-%s.log" % backend), "w")
    p = subprocess.Popen([args.shoald, "-c", cfg, "--log", "warn"], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        conn = None
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                request(conn, "GET", "/metrics")
                break
            except OSError:
                conn = None
                time.sleep(0.1)
        if conn is None:
            raise SystemExit("shoald did not start: see " + log.name)
        st, body = request(conn, "POST", "/api/v1/login",
                           json.dumps({"user": "admin", "password": "bench-password"}))
        if st != 200:
            raise SystemExit("login failed: %s" % body)
        token = json.loads(body)["token"]
        st, body = request(conn, "POST", "/api/v1/images", json.dumps({"name": "win11"}), token)
        image = json.loads(body)["id"]
        macs = ["02:00:00:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255)
                for i in range(1, args.hosts + 1)]
        csv = "".join('"%s","pc%d","","bench","","win11"\n' % (m, i) for i, m in enumerate(macs))
        st, body = request(conn, "POST", "/api/v1/hosts/import", csv, token, "text/csv")
        if st != 201:
            raise SystemExit("import failed: %s" % body)
        st, body = request(conn, "GET", "/api/v1/hosts?limit=1000", token=token)
        for h in json.loads(body)["items"]:
            st, body = request(conn, "POST", "/api/v1/tasks",
                               json.dumps({"kind": "deploy", "host_id": h["id"],
                                           "image_id": image}), token)
            if st != 201:
                raise SystemExit("task failed: %s" % body)
        tasks_path = "/api/v1/tasks?limit=%d" % min(args.hosts, 1000)
        st, body = request(conn, "GET", tasks_path, token=token)
        assert len(json.loads(body)["items"]) == min(args.hosts, 1000)
        random.seed(1)
        boot_paths = ["/boot?mac=" + m for m in random.sample(macs, min(len(macs), 64))]
        conn.close()
        rows = []
        for name, path, tok in (("GET /api/v1/tasks (%d tasks)" % min(args.hosts, 1000),
                                 tasks_path, token),
                                ("GET /boot?mac=", boot_paths, None)):
            base = load(port, "/clientos/static.txt", None, args.clients, args.seconds)
            rate = load(port, path, tok, args.clients, args.seconds)
            rows.append((backend, name, rate, base))
        return rows
    finally:
        p.terminate()
        p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shoald", default=os.path.join(ROOT, "build", "control", "shoald"))
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20 hosts, 1 s, SQLite")
    args = ap.parse_args()
    if args.quick:
        args.hosts, args.seconds, args.clients, args.backends = 20, 0.5, 2, "sqlite"
    rows = []
    work = tempfile.mkdtemp(prefix="shoal-bench-api-")
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                rows += run_backend(args, backend, "sqlite://" + work + "/shoald.db", work)
            elif backend == "postgresql":
                if os.geteuid() != 0 or not os.path.exists(PG_BIN + "/initdb"):
                    print("postgresql: skipped (needs root and PostgreSQL 15)")
                    continue
                pg = pg_cluster()
                try:
                    rows += run_backend(args, backend, pg.start(), work)
                finally:
                    pg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%-11s %-28s %12s %14s %7s" % ("store", "endpoint", "req/s", "static req/s", "ratio"))
    for backend, name, rate, base in rows:
        print("%-11s %-28s %12.0f %14.0f %7.2f" % (backend, name, rate, base, rate / base))


if __name__ == "__main__":
    main()
