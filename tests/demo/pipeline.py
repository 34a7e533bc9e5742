#!/usr/bin/python3
"""The demo pipeline: feeds a sample pipeline to the demo coordinator
(tests/fakes/fake_gitlab.py, a stand-in for GitLab that speaks its runner
API; it is NOT GitLab) stage by stage, shows progress while flotilla works,
and prints a summary table at the end.

    pipeline.py --url http://127.0.0.1:PORT [--image IMAGE]
                [--instances-dir DIR] [--timeout SECONDS]

Exit status 0 when every job ended in the state the pipeline expects
(one job is meant to fail), 1 otherwise.  Python 3 standard library only.
"""

import argparse
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request

STAGES = [
    ("build", [
        ("compile", ["echo compiling...", "mkdir -p out",
                     "echo 'int main(void) { return 0; }' > out/main.c",
                     "sleep 2", "echo built > out/BUILD_OK"],
         {"artifacts": ["out/"]}),
        ("lint", ["echo linting...", "sleep 1", "echo lint ok"], {}),
        ("docs", ["echo building docs...", "sleep 2"], {}),
    ]),
    ("test", [
        ("unit-1", ["cat out/BUILD_OK", "sleep 2", "echo 12 tests passed"],
         {"needs": "compile"}),
        ("unit-2", ["cat out/BUILD_OK", "sleep 3", "echo 9 tests passed"],
         {"needs": "compile"}),
        ("integration", ["echo starting...", "sleep 3",
                         "echo one test failed >&2", "exit 1"],
         {"expect": "failed"}),
        ("masked", ["echo the secret is $DEMO_SECRET", "sleep 1"],
         {"secret": True}),
    ]),
    ("deploy", [
        ("package", ["echo packaging...", "sleep 2"], {}),
        ("review-app", ["echo deploying review app...", "sleep 1"], {}),
        ("notify", ["echo pipeline done"], {}),
    ]),
]


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        if r.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw)
        return raw


def job_payload(jid, name, stage, script, opts, image, done):
    token = "glcbt-demo_" + secrets.token_hex(12)
    variables = [
        {"key": "CI_JOB_ID", "value": str(jid), "public": True},
        {"key": "CI_JOB_NAME", "value": name, "public": True},
        {"key": "CI_JOB_TOKEN", "value": token, "public": False,
         "masked": True},
        {"key": "GIT_STRATEGY", "value": "none", "public": True},
    ]
    if opts.get("secret"):
        variables.append({"key": "DEMO_SECRET", "value": "hunter2-demo",
                          "public": False, "masked": True})
    job = {
        "id": jid, "token": token, "allow_git_fetch": False,
        "job_info": {"name": name, "stage": stage, "project_id": 1,
                     "project_name": "demo",
                     "project_full_path": "flotilla/demo",
                     "pipeline_id": 1},
        "git_info": {"repo_url": "", "ref": "main",
                     "sha": "0" * 40, "before_sha": "0" * 40,
                     "ref_type": "branch", "refspecs": [], "depth": 0},
        "runner_info": {"timeout": 600},
        "variables": variables,
        "steps": [{"name": "script", "script": script, "timeout": 600,
                   "when": "on_success", "allow_failure": False}],
        "image": {"name": image},
        "services": [],
        "artifacts": [],
        "cache": [],
        "credentials": [],
        "dependencies": [],
        "features": {"trace_sections": True,
                     "failure_reasons": ["script_failure",
                                         "runner_system_failure",
                                         "job_execution_timeout"]},
    }
    if "artifacts" in opts:
        job["artifacts"] = [{"name": "artifacts", "untracked": False,
                             "paths": opts["artifacts"], "exclude": [],
                             "when": "on_success",
                             "artifact_type": "archive",
                             "artifact_format": "zip", "expire_in": "1 day"}]
    if "needs" in opts:
        dep = done[opts["needs"]]
        job["dependencies"] = [{"id": dep["id"], "token": token,
                                "name": opts["needs"],
                                "artifacts_file": {"filename":
                                                   "artifacts.zip",
                                                   "size": 1}}]
    return job


def instances(d):
    if not d or not os.path.isdir(d):
        return []
    return sorted(x for x in os.listdir(d)
                  if os.path.isdir(os.path.join(d, x)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--image", default="flotilla-test-busybox")
    ap.add_argument("--instances-dir")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    base = a.url.rstrip("/")
    deadline = time.time() + a.timeout
    done = {}
    rows = []
    jid = 100
    bad = 0
    print("demo coordinator: a stand-in for GitLab's runner API "
          "(not GitLab), serving a pipeline of %d jobs"
          % sum(len(j) for _, j in STAGES), flush=True)
    for stage, jobs in STAGES:
        ids = {}
        for name, script, opts in jobs:
            jid += 1
            payload = job_payload(jid, name, stage, script, opts, a.image,
                                  done)
            call(base, "POST", "/__fake/jobs", payload)
            ids[name] = {"id": jid, "opts": opts, "t0": time.time()}
        print("stage %-7s %d jobs queued" % (stage, len(ids)), flush=True)
        last = ""
        while True:
            states = {}
            for name, j in ids.items():
                try:
                    st = call(base, "GET", "/__fake/jobs/%d" % j["id"])
                except urllib.error.HTTPError as e:
                    if e.code != 404:
                        raise
                    st = {"status": "queued"}
                states[name] = st
            line = "  ".join("%s:%s" % (n, s.get("status", "?"))
                             for n, s in states.items())
            inst = instances(a.instances_dir)
            line += "   instances: %d %s" % (len(inst), " ".join(inst))
            if line != last:
                print("  " + line, flush=True)
                last = line
            if all(s.get("status") in ("success", "failed", "canceled")
                   for s in states.values()):
                break
            if time.time() > deadline:
                print("timed out waiting for stage %s" % stage)
                return 1
            time.sleep(1)
        for name, j in ids.items():
            st = states[name]
            trace = call(base, "GET", "/__fake/jobs/%d/trace" % j["id"])
            if isinstance(trace, (bytes, bytearray)):
                trace = trace.decode("utf-8", "replace")
            m = re.search(r"Instance ([A-Za-z0-9._-]+) connected", trace)
            expect = j["opts"].get("expect", "success")
            state = st.get("status")
            ok = state == expect and st.get("checksum_ok", True) is not False
            if j["opts"].get("secret") and "hunter2-demo" in trace:
                ok = False
            if not ok:
                bad += 1
            if st.get("requested_at") and st.get("finished_at"):
                dur = st["finished_at"] - st["requested_at"]
            else:
                dur = 0.0
            rows.append((j["id"], stage, name, state,
                         st.get("failure_reason") or "", dur,
                         m.group(1) if m else "?",
                         "yes" if ok else "NO"))
            done[name] = j
    print()
    print("%-5s %-7s %-12s %-8s %-16s %8s  %-12s %s" % (
        "JOB", "STAGE", "NAME", "STATE", "REASON", "DURATION", "INSTANCE",
        "AS EXPECTED"))
    for r in rows:
        print("%-5d %-7s %-12s %-8s %-16s %7.1fs  %-12s %s" % r)
    print()
    print("%d jobs, %d as expected" % (len(rows), len(rows) - bad))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
