#!/usr/bin/python3
"""A git smart-HTTP server for tests: `git http-backend` behind a small
CGI bridge, with GitLab's job-token authentication (HTTP basic auth, user
gitlab-ci-token, password the job token) so that a job's clone works the
way it does against GitLab.  Python 3 standard library only.

Run:
    /usr/bin/python3 tests/fakes/git_http.py --root DIR --port-file F
        [--listen 127.0.0.1] [--port 0] [--log requests.log]
    The accepted token comes from the environment (GIT_HTTP_TOKEN), never
    argv.  Repositories are DIR/<path>.git (bare); every one is exported.
    The chosen port is written to --port-file once the socket listens.

Answers: 401 with WWW-Authenticate: Basic realm="GitLab" without or with
wrong credentials (git then asks its credential helpers, then fails);
otherwise what git http-backend says (Status: header honoured).  Request
bodies: Content-Length or chunked; gzip bodies are passed through with
HTTP_CONTENT_ENCODING as the CGI spec for git says.
"""

import argparse
import base64
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 256 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-git-http/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        logf = self.server.logf
        if logf is not None:
            with self.server.loglock:
                logf.write("%s %s\n" % (self.address_string(), fmt % args))
                logf.flush()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(16)
                if len(out) > MAX_BODY:
                    raise ValueError("body too big")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too big")
        return self.rfile.read(n) if n > 0 else b""

    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == "gitlab-ci-token" and pw == self.server.token

    def handle_git(self):
        body = self.read_body()
        if not self.authorized():
            with self.server.lock:
                self.server.denied += 1
            return self.send(401, [("WWW-Authenticate", 'Basic realm="GitLab"'),
                                   ("Content-Type", "text/plain")], b"HTTP Basic: Access denied\n")
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "gitlab-ci-token",
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for h, e in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                     ("Git-Protocol", "HTTP_GIT_PROTOCOL")):
            if self.headers.get(h):
                env[e] = self.headers.get(h)
        p = subprocess.run(["git", "http-backend"], input=body, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        head, _, out = p.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, out = p.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k.strip(), v.strip()))
        with self.server.lock:
            self.server.served += 1
        self.send(status, headers, out)

    do_GET = handle_git
    do_POST = handle_git
    do_HEAD = handle_git


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    token = os.environ.get("GIT_HTTP_TOKEN", "")
    if not token:
        sys.exit("git_http: GIT_HTTP_TOKEN is not set")
    srv = Server((a.listen, a.port), Handler)
    srv.root = os.path.abspath(a.root)
    srv.token = token
    srv.lock = threading.Lock()
    srv.loglock = threading.Lock()
    srv.served = srv.denied = 0
    srv.logf = open(a.log, "a") if a.log else None
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
