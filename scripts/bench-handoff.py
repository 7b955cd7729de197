#!/usr/bin/env python3
"""The hand-off from the application's exit to the push: the hello-world step
(`launch -- sh -c 'echo hello > out.txt'` beside a `sidecar`) run N times per agent,
through a TCP front that timestamps every byte the agent sends to the registry.

For each run: from the exit record's mtime (written by the launcher when the
application ended) to the first byte of the first blob request (`/blobs/`: the dedup
`HEAD` or the upload's `POST`) the sidecar sent after it: what the hand-off costs
before the output starts to travel. Also from the exit to the sidecar's first byte of
any request (a sidecar that reaches the registry only now sends `GET /v2/` first).
Prints the medians and the spread per agent. Part of `make bench-agent`; not a test.

    bench-handoff.py REGISTRY_HOST RUNS LABEL=AGENT [LABEL=AGENT ...]
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE"}


class Front:
    """Passes traffic to the registry; records when each request from a client arrived
    (a chunk that starts with a method), with its request line."""

    def __init__(self, upstream):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.arrivals = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.upstream)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.down, args=(upstream, client), daemon=True).start()

    def up(self, client, upstream):
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                break
            if not data:
                break
            arrived = time.time_ns()
            if data.split(b" ", 1)[0] in METHODS:
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                with self.lock:
                    self.arrivals.append((arrived, line))
            try:
                upstream.sendall(data)
            except OSError:
                break
        try:
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def down(self, upstream, client):
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                break
            if not data:
                break
            try:
                client.sendall(data)
            except OSError:
                break
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def first_after(self, ns, blobs_only):
        with self.lock:
            later = [
                t for t, line in self.arrivals if t > ns and (not blobs_only or "/blobs/" in line)
            ]
        return min(later) if later else None


def one_run(agent, front, work, tag):
    share = os.path.join(work, f"share-{tag}")
    env = dict(os.environ, ORAS_AGENT_RETRY_SECONDS="20", RUST_LOG="warn")
    output = f"127.0.0.1:{front.port}/bench/handoff:{tag}"
    sidecar = subprocess.Popen(
        [agent, "sidecar", "--share", share, "--output", output, "--plain-http"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    # The application's container starts a moment after the sidecar's.
    time.sleep(0.3)
    launched = subprocess.run(
        [agent, "launch", "--share", share, "--output-path", "out.txt", "--wait-push",
         "--", "sh", "-c", f"echo hello {tag} > out.txt"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    sidecar.send_signal(signal.SIGTERM)
    sidecar.wait()
    if launched.returncode != 0:
        sys.exit(f"{agent}: launch failed: {launched.stderr.decode()}")
    with open(os.path.join(share, "state", "push")) as f:
        if not f.read().startswith("ok "):
            sys.exit(f"{agent}: the push failed")
    exited = os.stat(os.path.join(share, "state", "exit")).st_mtime_ns
    first_blob = front.first_after(exited, blobs_only=True)
    first_any = front.first_after(exited, blobs_only=False)
    if first_blob is None or first_any is None:
        sys.exit(f"{agent}: no blob request reached the registry after the exit")
    return (first_blob - exited) / 1e6, (first_any - exited) / 1e6


def main():
    host, runs, agents = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    front = Front(host)
    medians = {}
    with tempfile.TemporaryDirectory() as work:
        for index, spec in enumerate(agents):
            label, agent = spec.split("=", 1)
            delays = [one_run(agent, front, work, f"{index}-{run}") for run in range(runs)]
            blob = [b for b, _ in delays]
            first = [a for _, a in delays]
            medians[label] = statistics.median(blob)
            print(
                f"exit -> first blob request, {label}: median {medians[label]:.1f} ms "
                f"(min {min(blob):.1f}, max {max(blob):.1f}, {runs} runs); "
                f"exit -> first request: median {statistics.median(first):.1f} ms"
            )
    labels = list(medians)
    for label in labels[1:]:
        print(
            f"hand-off ratio {labels[0]} / {label}: {medians[labels[0]] / medians[label]:.2f}"
        )


if __name__ == "__main__":
    main()
