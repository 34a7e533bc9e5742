#!/usr/bin/python3
"""A git smart-HTTP server for flotilla's tests (executor, jobscript,
helper image), as GitLab serves project repositories to CI jobs: `git
http-backend` (CGI) behind HTTP Basic authentication where the user is
"gitlab-ci-token" and the password a job token GitLab issued.  Python 3
standard library only.

Run:
    /usr/bin/python3 tests/fakes/fake_git_http.py --root DIR --tokens FILE
        --port-file F [--listen 127.0.0.1] [--port 0] [--log requests.log]

DIR holds bare repositories ("group/project.git"), every one exported.
FILE lists the valid job tokens, one a line (tokens never in argv); it is
read again on every request, so a test can add the token of each job it
queues.  The chosen port is written to --port-file once the socket
listens.  Without credentials, or with a wrong user or token, the answer
is 401 "HTTP Basic: Access denied" with WWW-Authenticate: Basic
realm="GitLab", as GitLab (git then asks its credential helpers or uses
the URL's credentials, then fails with "Authentication failed");
otherwise what git http-backend says (its Status: header honoured).
GET, POST and HEAD; request bodies by Content-Length or chunked, at most
MAX_BODY bytes; gzip bodies are passed through with HTTP_CONTENT_ENCODING
as the CGI spec for git says.  Every request is logged as one line
"METHOD PATH STATUS user=U" (tokens never logged).
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
        pass

    def log_line(self, status, user):
        with self.server.loglock:
            if self.server.logf is not None:
                self.server.logf.write("%s %s %d user=%s\n" % (
                    self.command, self.path.split("?")[0], status, user))
                self.server.logf.flush()

    def send(self, status, headers, body, user):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_line(status, user)

    def deny(self, user=""):
        self.send(401, [("WWW-Authenticate", 'Basic realm="GitLab"'),
                        ("Content-Type", "text/plain")],
                  b"HTTP Basic: Access denied\n", user)

    def tokens(self):
        try:
            with open(self.server.tokens_file) as f:
                return set(l.strip() for l in f if l.strip())
        except OSError:
            return set()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise ValueError("body too big")
                out += self.rfile.read(size)
                self.rfile.readline(16)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too big")
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self):
        body = self.read_body()
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return self.deny()
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return self.deny()
        if user != "gitlab-ci-token" or pw not in self.tokens():
            return self.deny(user)
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": self.client_address[0],
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        for h, e in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                     ("Git-Protocol", "HTTP_GIT_PROTOCOL")):
            if self.headers.get(h):
                env[e] = self.headers[h]
        p = subprocess.run(["git", "http-backend"], input=body, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = p.stdout
        head, sep, rest = out.partition(b"\r\n\r\n")
        if not sep:
            head, sep, rest = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k.strip(), v.strip()))
        self.send(status, headers, rest, user)

    do_GET = do_POST = do_HEAD = handle_any


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    a = ap.parse_args()
    srv = ThreadingHTTPServer((a.listen, a.port), Handler)
    srv.daemon_threads = True
    srv.root = os.path.abspath(a.root)
    srv.tokens_file = a.tokens
    srv.logf = open(a.log, "a") if a.log else None
    srv.loglock = threading.Lock()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
