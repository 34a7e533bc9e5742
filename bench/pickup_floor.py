#!/usr/bin/python3
"""The floor of the pickup-latency bench: the container work a job does
before its first script line, done directly on the local Docker socket
with no runner in between.  As flotilla's executor does for a job with
GIT_STRATEGY=none: a helper container created and started twice
(prepare_script, get_sources; each start waits for the exit), then the
build container created and started; the build container's first line
prints /proc/uptime, the same clock the job uses.

    pickup_floor.py SOCKET HELPER_IMAGE BUILD_IMAGE N

Prints one latency in ms per line (queue time = the moment before the
first call).  Python 3 standard library only.
"""
import http.client
import json
import socket
import sys
import time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(c, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    hdr = {"Content-Type": "application/json"} if data is not None else {}
    c.request(method, path, body=data, headers=hdr)
    r = c.getresponse()
    raw = r.read()
    if r.status >= 300:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, raw[:200]))
    return json.loads(raw) if raw and raw[:1] in b"{[" else raw


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def one(c, helper, build):
    t0 = uptime()
    h = call(c, "POST", "/containers/create", {
        "Image": helper, "Cmd": ["sh", "-c", "echo stage"],
        "HostConfig": {"NetworkMode": "host"}})["Id"]
    for _ in range(2):
        call(c, "POST", "/containers/%s/start" % h)
        call(c, "POST", "/containers/%s/wait" % h)
    b = call(c, "POST", "/containers/create", {
        "Image": build,
        "Cmd": ["sh", "-c", "echo START $(cut -d' ' -f1 /proc/uptime)"],
        "HostConfig": {"NetworkMode": "host"}})["Id"]
    call(c, "POST", "/containers/%s/start" % b)
    call(c, "POST", "/containers/%s/wait" % b)
    logs = call(c, "GET", "/containers/%s/logs?stdout=1" % b)
    start = float(logs.split(b"START ")[1].split()[0])
    for x in (h, b):
        call(c, "DELETE", "/containers/%s?force=1" % x)
    return (start - t0) * 1000


def main():
    sock, helper, build, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = UnixHTTP(sock)
    for _ in range(n):
        print("%.1f" % one(c, helper, build))
        sys.stdout.flush()
        time.sleep(0.2)


if __name__ == "__main__":
    main()
