#!/usr/bin/python3
"""A strict fake GitLab coordinator for flotilla's tests.

It answers the runner API the way GitLab (Rails behind Workhorse) does, as
described in ../shared/reference/runner-jobs-docker.md section 1, and it
checks what GitLab itself does not but a well-behaved runner must do.
Python 3 standard library only (http.server, threading, ssl).

Run:
    /usr/bin/python3 tests/fakes/fake_gitlab.py --port-file F [--port 0]
        [--listen 127.0.0.1] [--jobs jobs.json] [--log requests.jsonl]
        [--hold SECONDS] [--update-interval SECONDS]
        [--tls-cert cert.pem --tls-key key.pem]
    Runner tokens come from the environment, never argv: FAKE_GITLAB_TOKENS
    (comma-separated); registration tokens (legacy registration, POST
    runners) likewise from FAKE_GITLAB_REGISTRATION_TOKENS.  The chosen port is written to --port-file once the
    socket listens.

GitLab semantics implemented (/api/v4):
  POST   runners/verify      token (body) required: 400 "token is missing";
                             unknown 403; else 200 {id, token,
                             token_expires_at}; remembers system_id.
  DELETE runners/managers    token and system_id required (400); unknown
                             token 403; unknown manager 404; else 204.
  POST   runners             legacy registration: token (body) required
                             400 "token is missing"; access_level other than
                             not_protected/ref_protected 400; paused and
                             active together 400; not a registration token
                             403 "403 Forbidden - invalid token supplied";
                             registration disallowed (control) 410;
                             maximum_timeout < 600 or no tags with
                             run_untagged false: 400 validation error; else
                             201 {id, token: "glrtr-...", token_expires_at:
                             null}, the token valid from then on.
  DELETE runners             unknown token 403; else 204 and the runner is
                             gone (its token and managers forgotten: verify
                             answers 403 from then on).
  POST   jobs/request        400 without token; 403 unknown token; 422 when
                             the runner is "orphaned" (control); Workhorse
                             long polling when --hold > 0 and the body has
                             token and last_update: if last_update equals the
                             queue value it waits up to --hold seconds and
                             answers 204 with no body (also when the queue
                             changes meanwhile); otherwise Rails: last_update
                             equal to the queue value -> 204 with
                             X-GitLab-Last-Update; a queued job -> 201
                             application/json (the job waits for the runner's
                             ack when info.features.two_phase_job_commit is
                             true); none -> 204 with X-GitLab-Last-Update.
  PUT    jobs/:id            400 without body token; the token is the body's
                             (JOB-TOKEN header as fallback); unknown job or
                             wrong token or forbidden job 403; a job that is
                             not processing (not pending-ack, running,
                             canceling) 403 with Job-Status.  Waiting for ack:
                             state running -> running 200, pending 200, else
                             400.  Else running 200 (keep-alive); success /
                             failed 200 (a canceling job becomes canceled),
                             or 202 with X-GitLab-Trace-Update-Interval while
                             "accept_pending" rounds are left (control) and a
                             checksum was sent; other states 400.  Every
                             answer: Job-Status, body = the status as text.
  PATCH  jobs/:id/trace      job authentication as PUT (token from the query
                             or JOB-TOKEN); 400 without Content-Range; GitLab
                             uses only the range start: start != stored
                             length -> 416 with Range 0-<length>; over the
                             trace limit (control) -> 403 and the job drops;
                             else append, 202 with Job-Status, Range
                             0-<length>, X-GitLab-Trace-Update-Interval.
  POST   jobs/:id/artifacts  job authentication; multipart/form-data (also
                             chunked) with a "file" part (else 400);
                             artifact_format / artifact_type checked against
                             GitLab's values (400); a second artifact of the
                             same type 400 "another artifact of the same type
                             already exists"; else 201 "201".  A zip that is
                             not a zip, or an "archive" not in zip, is a
                             violation.
  GET    jobs/:id/artifacts  JOB-TOKEN of any running job (a dependent job);
                             unknown 403, no artifacts 404, else 200 bytes.

Strictness beyond GitLab (recorded as violations, see /__fake/violations):
a token anywhere in a URL (the request is refused with 400), RUNNER-TOKEN
missing or different from the body token, JOB-TOKEN missing, a PUT without
info, a checksum not "crc32:<8 hex>", Content-Range whose end is not
start + length - 1, a patch over 1 MiB or with a Content-Type other than
text/plain, a final update whose checksum or bytesize disagrees with the
stored trace.

Control API (/__fake/, JSON):
  POST /__fake/jobs                 body: a job payload (id and token are
                                    made up when absent) -> {"id", "token"}
  POST /__fake/jobs/ID/cancel       canceling (?hard=1: canceled)
  POST /__fake/jobs/ID/forbid       every job call answers 403 from now on
  POST /__fake/jobs/ID/truncate?len=N   drop stored trace bytes after N
  POST /__fake/jobs/ID/accept_pending?n=N  next N final updates answer 202
  GET  /__fake/jobs/ID              the job's state, updates, patches,
                                    trace length, crc32, checksum_ok
  GET  /__fake/jobs/ID/trace        the stored trace bytes
  POST /__fake/fail?status=502&seconds=5   answer every /api/v4 request
                                    with that status for that long
  POST /__fake/inject               body {"method", "path" (prefix),
                                    "status", "headers", "body", "count"}:
                                    one-shot answers, first match wins
  POST /__fake/config               body {"hold", "update_interval",
                                    "trace_limit", "orphaned",
                                    "registration_disallowed"}
  POST /__fake/runners              body {"token"}: another valid token
  GET  /__fake/registered           runners made by POST runners: their
                                    id and parameters (no tokens)
  GET  /__fake/requests             every request seen (no bodies)
  GET  /__fake/violations           the list above
  GET  /__fake/health               200

Every request is also logged as one JSON line to --log, tokens masked.
"""

import argparse
import binascii
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATCH_LIMIT = 1024 * 1024
# GitLab's Ci::JobArtifact file formats and file types (the query's values).
ARTIFACT_FORMATS = ("raw", "zip", "gzip")
ARTIFACT_TYPES = ("archive", "metadata", "trace", "junit", "sast", "dependency_scanning",
                  "container_scanning", "dast", "codequality", "license_scanning",
                  "performance", "metrics", "metrics_referee", "network_referee",
                  "lsif", "dotenv", "cobertura", "terraform", "accessibility",
                  "cluster_applications", "secret_detection", "requirements",
                  "coverage_fuzzing", "browser_performance", "load_performance",
                  "api_fuzzing", "cluster_image_scanning", "cyclonedx",
                  "requirements_v2", "annotations", "repository_xray", "jacoco")
MAX_BODY = 64 * 1024 * 1024


class Job:
    def __init__(self, payload):
        self.payload = payload
        self.id = int(payload["id"])
        self.token = payload["token"]
        self.status = "queued"
        self.trace = bytearray()
        self.updates = []
        self.patches = []
        self.failure_reason = None
        self.exit_code = None
        self.checksum = None
        self.bytesize = None
        self.checksum_ok = None
        self.forbidden = False
        self.accept_pending = 0
        self.artifacts = None
        self.artifacts_meta = None
        self.artifact_types = {}    # artifact_type -> bytes
        self.system_id = None
        self.requested_at = None    # time.time() when a runner took it
        self.finished_at = None     # ... when its final state came


class State:
    def __init__(self, tokens, hold, update_interval):
        self.lock = threading.Condition()
        self.runner_tokens = {t: i + 1 for i, t in enumerate(tokens)}
        self.registration_tokens = []
        self.registration_disallowed = False
        self.registered = []        # [{id, params}] from POST runners
        self.managers = {}          # token -> set(system_id)
        self.queue = []
        self.queue_tick = 1
        self.jobs = {}
        self.next_id = 1000
        self.hold = hold
        self.update_interval = update_interval
        self.trace_limit = 0
        self.orphaned = False
        self.fail_status = 0
        self.fail_until = 0.0
        self.injections = []
        self.requests = []
        self.violations = []

    def queue_value(self):
        return "q%08x" % self.queue_tick

    def bump(self):
        self.queue_tick += 1
        self.lock.notify_all()

    def all_tokens(self):
        toks = list(self.runner_tokens) + list(self.registration_tokens)
        toks += [j.token for j in self.jobs.values()]
        toks += [j["token"] for j in self.queue]
        return [t for t in toks if t]

    def violate(self, what):
        self.violations.append(what)


def crc32_hex(data):
    return "%08x" % (binascii.crc32(bytes(data)) & 0xffffffff)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16          # one write per answer (flushed per request)
    server_version = "fake-gitlab/1"
    sys_version = ""

    def log_message(self, fmt, *args):  # silence stderr
        pass

    # ---- plumbing ----

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(16)
                if len(out) > MAX_BODY:
                    raise ValueError("body too big")
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too big")
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, status, body=b"", headers=None, ctype=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            ctype = ctype or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.status_sent = status

    def error(self, status, message, headers=None):
        self.reply(status, {"message": message}, headers)

    def mask(self, s):
        st = self.server.state
        for t in st.all_tokens():
            s = s.replace(t, "[MASKED]")
        return s

    def record(self, started):
        st = self.server.state
        entry = {
            "time": round(time.time(), 3),
            "method": self.command,
            "path": self.mask(self.path),
            "status": getattr(self, "status_sent", 0),
            "ms": int((time.time() - started) * 1000),
            "len": len(getattr(self, "body", b"") or b""),
        }
        for h in ("Content-Range", "Content-Type", "User-Agent", "X-Request-Id",
                  "Accept"):
            if self.headers.get(h) is not None:
                entry[h] = self.mask(self.headers.get(h))
        entry["has_runner_token"] = "RUNNER-TOKEN" in self.headers
        entry["has_job_token"] = "JOB-TOKEN" in self.headers
        with st.lock:
            st.requests.append(entry)
        logf = self.server.logf
        if logf is not None:
            with self.server.loglock:
                logf.write(json.dumps(entry) + "\n")
                logf.flush()

    def handle_any(self):
        started = time.time()
        self.status_sent = 0
        try:
            try:
                self.body = self.read_body()
            except ValueError:
                self.body = b""
                self.error(413, "413 Request Entity Too Large")
                self.close_connection = True
                return
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.record(started)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    # ---- routing ----

    def route(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = url.path
        if path.startswith("/__fake/"):
            return self.control(path[len("/__fake/"):])
        if not path.startswith("/api/v4/"):
            return self.error(404, "404 Not Found")
        raw = urllib.parse.unquote(self.path)
        with st.lock:
            toks = st.all_tokens()
        for t in toks:
            if t in self.path or t in raw:
                with st.lock:
                    st.violate("token in URL: %s %s" % (self.command, self.mask(self.path)))
                return self.error(400, "token in URL")
        with st.lock:
            for inj in st.injections:
                if inj["count"] > 0 and inj["method"] == self.command and \
                        path.startswith(inj["path"]):
                    inj["count"] -= 1
                    status, headers, body = inj["status"], inj.get("headers", {}), \
                        inj.get("body", {"message": "%d injected" % inj["status"]})
                    break
            else:
                status = None
            if status is None and st.fail_status and time.time() < st.fail_until:
                status, headers, body = st.fail_status, {}, \
                    {"message": "%d fake outage" % st.fail_status}
        if status is not None:
            return self.reply(status, body, headers)
        api = path[len("/api/v4/"):]
        m = re.fullmatch(r"jobs/(\d+)(/trace|/artifacts)?", api)
        if api == "runners/verify" and self.command == "POST":
            return self.verify()
        if api == "runners/managers" and self.command == "DELETE":
            return self.unregister_manager()
        if api == "runners" and self.command == "DELETE":
            return self.unregister()
        if api == "runners" and self.command == "POST":
            return self.register()
        if api == "jobs/request" and self.command == "POST":
            return self.request_job()
        if m and m.group(2) is None and self.command == "PUT":
            return self.update_job(int(m.group(1)))
        if m and m.group(2) == "/trace" and self.command == "PATCH":
            return self.patch_trace(int(m.group(1)))
        if m and m.group(2) == "/artifacts" and self.command == "POST":
            return self.upload_artifacts(int(m.group(1)))
        if m and m.group(2) == "/artifacts" and self.command == "GET":
            return self.download_artifacts(int(m.group(1)))
        return self.error(404, "404 Not Found")

    def json_body(self):
        """The body as a JSON object (Grape: 400 when unparsable)."""
        if not self.body:
            return {}
        try:
            v = json.loads(self.body)
        except ValueError:
            return None
        return v if isinstance(v, dict) else None

    # ---- runner endpoints ----

    def runner_auth(self, body):
        """Grape's `requires :token` then authenticate_runner!."""
        st = self.server.state
        if body is None:
            self.error(400, "400 Bad request - malformed JSON")
            return None
        tok = body.get("token")
        if not isinstance(tok, str) or tok == "":
            self.reply(400, {"error": "token is missing"})
            return None
        hdr = self.headers.get("RUNNER-TOKEN")
        if hdr is None:
            st.violate("RUNNER-TOKEN header missing on %s %s" % (self.command, self.path))
        elif hdr != tok:
            st.violate("RUNNER-TOKEN differs from body token on %s %s" % (self.command, self.path))
        if tok not in st.runner_tokens:
            self.error(403, "403 Forbidden")
            return None
        return tok

    def verify(self):
        st = self.server.state
        body = self.json_body()
        with st.lock:
            tok = self.runner_auth(body)
            if tok is None:
                return
            if st.orphaned:
                return self.error(422, "Runner is orphaned")
            if "info" not in body:
                st.violate("verify without info")
            sid = body.get("system_id")
            st.managers.setdefault(tok, set()).add(sid or "<legacy>")
            rid = st.runner_tokens[tok]
        self.reply(200, {"id": rid, "token": tok, "token_expires_at": None})

    def unregister_manager(self):
        st = self.server.state
        body = self.json_body()
        with st.lock:
            tok = self.runner_auth(body)
            if tok is None:
                return
            sid = body.get("system_id")
            if not isinstance(sid, str) or sid == "":
                return self.reply(400, {"error": "system_id is missing"})
            mgrs = st.managers.get(tok, set())
            if sid not in mgrs:
                return self.error(404, "404 Runner manager not found")
            mgrs.discard(sid)
        self.reply(204)

    def unregister(self):
        st = self.server.state
        body = self.json_body()
        with st.lock:
            tok = self.runner_auth(body)
            if tok is None:
                return
            # Ci::Runners::UnregisterRunnerService destroys the runner.
            del st.runner_tokens[tok]
            st.managers.pop(tok, None)
        self.reply(204)

    def register(self):
        """POST /runners (lib/api/ci/runner.rb, RegisterRunnerService)."""
        st = self.server.state
        body = self.json_body()
        if body is None:
            return self.error(400, "400 Bad request - malformed JSON")
        tok = body.get("token")
        if not isinstance(tok, str) or tok == "":
            return self.reply(400, {"error": "token is missing"})
        if body.get("access_level") not in (None, "not_protected", "ref_protected"):
            return self.reply(400, {"error": "access_level does not have a valid value"})
        if "active" in body and "paused" in body:
            return self.reply(400, {"error": "active, paused are mutually exclusive"})
        for k in ("paused", "locked", "run_untagged"):
            if k in body and not isinstance(body[k], bool):
                return self.reply(400, {"error": "%s is invalid" % k})
        mt = body.get("maximum_timeout")
        if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool)):
            return self.reply(400, {"error": "maximum_timeout is invalid"})
        tags = body.get("tag_list") or []
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        with st.lock:
            hdr = self.headers.get("RUNNER-TOKEN")
            if hdr is None:
                st.violate("RUNNER-TOKEN header missing on POST /runners")
            elif hdr != tok:
                st.violate("RUNNER-TOKEN differs from body token on POST /runners")
            if "info" not in body:
                st.violate("register without info")
            if tok not in st.registration_tokens:
                return self.error(403, "403 Forbidden - invalid token supplied")
            if st.registration_disallowed:
                return self.reply(410, {"message": "410 Gone",
                                        "reason": "runner registration disallowed"})
            if mt is not None and mt < 600:
                return self.reply(400, {"message": {"maximum_timeout": [
                    "needs to be at least 10 minutes"]}})
            if body.get("run_untagged") is False and not tags:
                return self.reply(400, {"message": {"tags_list": [
                    "can not be empty when runner is not allowed to pick untagged jobs"]}})
            new = "glrtr-" + secrets.token_hex(10)
            rid = 100 + len(st.registered) + len(st.runner_tokens)
            st.runner_tokens[new] = rid
            params = {k: body.get(k) for k in (
                "description", "maintenance_note", "run_untagged", "locked",
                "access_level", "maximum_timeout", "paused")}
            params["tag_list"] = tags
            params["info_executor"] = (body.get("info") or {}).get("executor")
            st.registered.append({"id": rid, "params": params})
        self.reply(201, {"id": rid, "token": new, "token_expires_at": None})

    def request_job(self):
        st = self.server.state
        body = self.json_body()
        with st.lock:
            tok = self.runner_auth(body)
            if tok is None:
                return
            info = body.get("info")
            if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
                st.violate("jobs/request without info.features")
                info = {"features": {}}
            last = body.get("last_update") or ""
            sid = body.get("system_id")
            # Workhorse long polling: only with a token and a last_update.
            if st.hold > 0 and last:
                if last == st.queue_value():
                    deadline = time.time() + st.hold
                    while last == st.queue_value() and time.time() < deadline:
                        st.lock.wait(deadline - time.time())
                    # Changed while watching, or timed out: 204, no body.
                    return self.reply(204)
            if st.orphaned:
                return self.error(422, "Runner is orphaned")
            if last and last == st.queue_value():
                return self.reply(204, headers={"X-GitLab-Last-Update": st.queue_value()})
            if not st.queue:
                return self.reply(204, headers={"X-GitLab-Last-Update": st.queue_value()})
            payload = st.queue.pop(0)
            job = Job(payload)
            job.system_id = sid
            two_phase = info["features"].get("two_phase_job_commit") is True
            job.status = "pending" if two_phase else "running"
            job.requested_at = time.time()
            st.jobs[job.id] = job
        self.reply(201, json.dumps(payload), ctype="application/json")

    # ---- job endpoints ----

    def job_auth(self, job_id, body_token=None):
        """authenticate_job!: 403 for everything; Job-Status when the job
        is not processing.  Returns the job or None (answered)."""
        st = self.server.state
        hdr = self.headers.get("JOB-TOKEN")
        qtok = (self.query.get("token") or [None])[0]
        token = body_token or qtok or hdr or ""
        if hdr is None:
            st.violate("JOB-TOKEN header missing on %s %s" % (self.command, self.mask(self.path)))
        job = st.jobs.get(job_id)
        if job is None or token != job.token or job.forbidden:
            self.error(403, "403 Forbidden")
            return None
        if job.status not in ("pending", "running", "canceling"):
            self.error(403, "403 Forbidden - Job is not processing on runner",
                       {"Job-Status": job.status})
            return None
        return job

    def update_job(self, job_id):
        st = self.server.state
        body = self.json_body()
        if body is None:
            return self.error(400, "400 Bad request - malformed JSON")
        tok = body.get("token")
        if not isinstance(tok, str) or tok == "":
            return self.reply(400, {"error": "token is missing"})
        for k, typ in (("state", str), ("checksum", str), ("failure_reason", str),
                       ("exit_code", int), ("output", dict)):
            if k in body and body[k] is not None and not isinstance(body[k], typ):
                return self.reply(400, {"error": "%s is invalid" % k})
        out = body.get("output") or {}
        if "bytesize" in out and not isinstance(out["bytesize"], int):
            return self.reply(400, {"error": "output[bytesize] is invalid"})
        with st.lock:
            job = self.job_auth(job_id, tok)
            if job is None:
                return
            if self.headers.get("JOB-TOKEN") not in (None, tok):
                st.violate("JOB-TOKEN differs from body token on PUT %d" % job_id)
            if "info" not in body:
                st.violate("PUT %d without info" % job_id)
            state = body.get("state") or ""
            checksum = out.get("checksum") or body.get("checksum")
            if checksum is not None and not re.fullmatch(r"crc32:[0-9a-f]{8}", checksum):
                st.violate("PUT %d: checksum %r is not crc32:<8 hex>" % (job_id, checksum))
            if out.get("checksum") and body.get("checksum") and \
                    out["checksum"] != body["checksum"]:
                st.violate("PUT %d: checksum and output.checksum differ" % job_id)
            job.updates.append({"state": state, "checksum": checksum,
                                "bytesize": out.get("bytesize"),
                                "failure_reason": body.get("failure_reason"),
                                "exit_code": body.get("exit_code"),
                                "job_status": job.status,
                                "time": round(time.time(), 3)})
            status, hdrs = self.apply_update(job, state, body, checksum, out)
            hdrs["Job-Status"] = job.status
        self.reply(status, str(status), hdrs, ctype="text/plain")

    def apply_update(self, job, state, body, checksum, out):
        st = self.server.state
        if job.status == "pending":          # two-phase commit: the ack
            if state == "pending":
                return 200, {}
            if state != "running":
                return 400, {}
            job.status = "running"
            return 200, {}
        if state == "running":
            return 200, {}
        if state not in ("success", "failed"):
            return 400, {}
        if checksum and job.accept_pending > 0:
            job.accept_pending -= 1
            return 202, {"X-GitLab-Trace-Update-Interval": str(st.update_interval)}
        job.checksum = checksum
        job.bytesize = out.get("bytesize")
        job.failure_reason = body.get("failure_reason")
        job.exit_code = body.get("exit_code")
        stored = "crc32:" + crc32_hex(job.trace)
        job.checksum_ok = checksum == stored and \
            (job.bytesize or 0) == len(job.trace)
        if checksum and not job.checksum_ok:
            st.violate("PUT %d: final checksum %s/%s, stored %s/%d" % (
                job.id, checksum, job.bytesize, stored, len(job.trace)))
        if job.status == "canceling":
            job.status = "canceled"
        else:
            job.status = state
        if job.finished_at is None:
            job.finished_at = time.time()
        return 200, {}

    def patch_trace(self, job_id):
        st = self.server.state
        with st.lock:
            job = self.job_auth(job_id)
            if job is None:
                return
            if job.status == "pending":
                # GitLab: the job is not running until the ack.
                return self.error(403, "403 Forbidden - Job is not processing on runner",
                                  {"Job-Status": job.status})
            cr = self.headers.get("Content-Range")
            if cr is None:
                return self.error(400, "400 Missing header Content-Range")
            ctype = self.headers.get("Content-Type", "")
            if ctype != "text/plain":
                st.violate("PATCH %d: Content-Type %r" % (job_id, ctype))
            if len(self.body) > PATCH_LIMIT:
                st.violate("PATCH %d: %d bytes, over 1 MiB" % (job_id, len(self.body)))
            if len(self.body) == 0:
                st.violate("PATCH %d: empty patch" % job_id)
            parts = cr.split("-")
            start = ruby_to_i(parts[0])
            if len(parts) != 2 or ruby_to_i(parts[1]) != start + len(self.body) - 1:
                st.violate("PATCH %d: Content-Range %r for %d bytes" % (job_id, cr, len(self.body)))
            dbg = (self.query.get("debug_trace") or [None])[0]
            if dbg not in ("true", "false"):
                st.violate("PATCH %d: debug_trace=%r" % (job_id, dbg))
            job.patches.append({"start": start, "len": len(self.body),
                                "stored": len(job.trace),
                                "time": round(time.time(), 3)})
            end = start + len(self.body)
            if st.trace_limit and end > st.trace_limit:
                job.status = "failed"
                job.failure_reason = "trace_size_exceeded"
                return self.error(403, "403 Forbidden")
            if start != len(job.trace):
                return self.error(416, "416 Range Not Satisfiable",
                                  {"Range": "0-%d" % len(job.trace)})
            job.trace += self.body
            hdrs = {"Job-Status": job.status, "Range": "0-%d" % len(job.trace),
                    "X-GitLab-Trace-Update-Interval": str(st.update_interval)}
        self.reply(202, "", hdrs)

    def upload_artifacts(self, job_id):
        st = self.server.state
        with st.lock:
            job = self.job_auth(job_id)
            if job is None:
                return
        ctype = self.headers.get("Content-Type", "")
        m = re.match(r'multipart/form-data;\s*boundary="?([^";]+)"?', ctype)
        if not m:
            return self.error(400, "400 Bad request - file is missing")
        parts = parse_multipart(self.body, m.group(1).encode())
        f = parts.get("file")
        if f is None:
            return self.reply(400, {"error": "file is missing"})
        # Grape's `values:` checks on the query (GitLab 400s otherwise).
        q = {k: v[0] for k, v in self.query.items()}
        fmt = q.get("artifact_format", "zip")
        typ = q.get("artifact_type", "archive")
        if fmt not in ARTIFACT_FORMATS:
            return self.reply(400, {"error": "artifact_format does not have a valid value"})
        if typ not in ARTIFACT_TYPES:
            return self.reply(400, {"error": "artifact_type does not have a valid value"})
        if typ == "archive" and fmt != "zip":
            st.violate("artifacts %d: archive in format %r (GitLab lists zip only)" % (job_id, fmt))
        if fmt == "zip" and not f[1].startswith(b"PK"):
            st.violate("artifacts %d: zip format but the file is not a zip" % job_id)
        with st.lock:
            # Ci::JobArtifacts::CreateService: one artifact of each type.
            if typ in job.artifact_types:
                return self.reply(400, {"message": "another artifact of the same type already exists"})
            job.artifact_types[typ] = f[1]
            if typ == "archive":
                job.artifacts = f[1]
                job.artifacts_meta = {"filename": f[0], "query": q}
        self.reply(201, "201", ctype="text/plain")

    def download_artifacts(self, job_id):
        st = self.server.state
        hdr = self.headers.get("JOB-TOKEN")
        if hdr is None:
            st.violate("JOB-TOKEN header missing on GET artifacts %d" % job_id)
        with st.lock:
            ok = any(j.token == hdr and j.status in ("running", "canceling")
                     for j in st.jobs.values())
            job = st.jobs.get(job_id)
            if not ok or job is None:
                return self.error(403, "403 Forbidden")
            data = job.artifacts
        if data is None:
            return self.error(404, "404 Not Found")
        self.reply(200, data, ctype="application/octet-stream")

    # ---- control ----

    def control(self, what):
        st = self.server.state
        q = {k: v[0] for k, v in self.query.items()}
        path = what.split("?")[0]
        body = self.json_body() if self.command == "POST" else {}
        if body is None:
            return self.error(400, "bad JSON")
        if path == "health":
            return self.reply(200, {"ok": True})
        if path == "jobs" and self.command == "POST":
            with st.lock:
                payload = dict(body)
                if "id" not in payload:
                    st.next_id += 1
                    payload["id"] = st.next_id
                if "token" not in payload:
                    payload["token"] = "glcbt-" + secrets.token_hex(10)
                st.queue.append(payload)
                st.bump()
            return self.reply(201, {"id": payload["id"], "token": payload["token"]})
        m = re.fullmatch(r"jobs/(\d+)(?:/(\w+))?", path)
        if m:
            with st.lock:
                job = st.jobs.get(int(m.group(1)))
                if job is None:
                    return self.error(404, "no such job (not yet requested?)")
                act = m.group(2)
                if act is None and self.command == "GET":
                    return self.reply(200, {
                        "id": job.id, "status": job.status,
                        "failure_reason": job.failure_reason,
                        "exit_code": job.exit_code, "checksum": job.checksum,
                        "bytesize": job.bytesize, "checksum_ok": job.checksum_ok,
                        "trace_len": len(job.trace),
                        "trace_crc32": crc32_hex(job.trace),
                        "updates": job.updates, "patches": job.patches,
                        "system_id": job.system_id,
                        "requested_at": job.requested_at,
                        "finished_at": job.finished_at,
                        "artifacts": job.artifacts_meta})
                if act == "trace" and self.command == "GET":
                    return self.reply(200, bytes(job.trace), ctype="application/octet-stream")
                if act == "cancel":
                    job.status = "canceled" if q.get("hard") else "canceling"
                    return self.reply(200, {"status": job.status})
                if act == "forbid":
                    job.forbidden = True
                    return self.reply(200, {})
                if act == "truncate":
                    n = int(q.get("len", "0"))
                    del job.trace[n:]
                    return self.reply(200, {"trace_len": len(job.trace)})
                if act == "accept_pending":
                    job.accept_pending = int(q.get("n", "1"))
                    return self.reply(200, {})
            return self.error(404, "unknown control")
        if path == "fail":
            with st.lock:
                st.fail_status = int(q.get("status", "502"))
                st.fail_until = time.time() + float(q.get("seconds", "5"))
            return self.reply(200, {})
        if path == "inject":
            inj = {"method": body["method"], "path": body["path"],
                   "status": int(body["status"]), "headers": body.get("headers", {}),
                   "count": int(body.get("count", 1))}
            if "body" in body:
                inj["body"] = body["body"]
            with st.lock:
                st.injections.append(inj)
            return self.reply(200, {})
        if path == "config":
            with st.lock:
                for k in ("hold", "update_interval", "trace_limit", "orphaned",
                          "registration_disallowed"):
                    if k in body:
                        setattr(st, k, body[k])
            return self.reply(200, {})
        if path == "runners":
            with st.lock:
                st.runner_tokens[body["token"]] = len(st.runner_tokens) + 1
            return self.reply(200, {})
        if path == "registered":
            with st.lock:
                return self.reply(200, list(st.registered))
        if path == "requests":
            with st.lock:
                return self.reply(200, list(st.requests))
        if path == "violations":
            with st.lock:
                return self.reply(200, list(st.violations))
        return self.error(404, "unknown control")


def ruby_to_i(s):
    """Ruby's String#to_i: leading whitespace, sign, digits; else 0."""
    m = re.match(r"\s*([+-]?\d+)", s)
    return int(m.group(1)) if m else 0


def parse_multipart(body, boundary):
    """{name: (filename, bytes)} of a multipart/form-data body."""
    out = {}
    delim = b"--" + boundary
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disp = ""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:"):
                disp = line.decode("latin-1")
        name = re.search(r'\bname="([^"]*)"', disp)
        fname = re.search(r'\bfilename="([^"]*)"', disp)
        if name:
            out[name.group(1)] = (fname.group(1) if fname else None, data)
    return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--jobs")
    ap.add_argument("--log")
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--update-interval", type=int, default=3)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    tokens = [t for t in os.environ.get("FAKE_GITLAB_TOKENS", "").split(",") if t]
    state = State(tokens, a.hold, a.update_interval)
    state.registration_tokens = [t for t in os.environ.get(
        "FAKE_GITLAB_REGISTRATION_TOKENS", "").split(",") if t]
    if a.jobs:
        with open(a.jobs) as f:
            for payload in json.load(f):
                state.queue.append(payload)
        state.queue_tick += 1
    srv = Server((a.listen, a.port), Handler)
    srv.state = state
    srv.logf = open(a.log, "a") if a.log else None
    srv.loglock = threading.Lock()
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
