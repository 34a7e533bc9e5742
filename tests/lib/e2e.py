#!/usr/bin/python3
"""Job feeding and checking for the end-to-end tests of `flotilla run`
(tests/integration/run_*.sh), against tests/fakes/fake_gitlab.py.

    e2e.py submit URL COUNT [--sleep S] [--script LINE]... [--name N] [--t0]
                  [--artifact PATH]... [--image NAME] [--release LINE]...
                  [--var KEY=VALUE]... [--platform OS/ARCH]
        queue COUNT jobs; prints their ids, one a line (with --t0, each
        followed by /proc/uptime just before it was queued).  Each job's script
        prints "START <uptime>" and "END <uptime>" (/proc/uptime: one clock
        for every container of the machine) around a sleep of S seconds.
        --artifact: PATH is uploaded as the job's zip archive on success.
        --image: the job's image (default: none, the runner's).
        --release: a "release" step after the script, with these lines.
        --var: a job variable (not masked).
        --platform: the image's executor_opts.docker.platform.
    e2e.py wait URL TIMEOUT ID...
        wait until every job has a final state (exit 1 on timeout).
    e2e.py check URL [--expect STATE] [--max-jobs N] [--max-at-once N] ID...
        one line per finding, "ok: ..." or "FAIL: ...", then exit 1 if any
        FAIL: each job in STATE (default success), its trace's crc32 and
        size equal to what flotilla reported (checksum_ok), the instance
        it ran on (the executor's "Instance X connected" line) used by at most
        N jobs and running at most N at once (START/END intervals).
    e2e.py state URL ID
        print the job's status and failure reason.
    e2e.py started URL TIMEOUT ID...
        wait until every job's trace shows START.
    e2e.py instance URL ID
        print the instance the job's trace names.

Python 3 standard library only.
"""

import json
import re
import secrets
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data,
                                 method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        if r.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw)
        return raw


def job_state(base, jid):
    try:
        return call(base, "GET", "/__fake/jobs/%d" % jid)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {"status": "queued"}
        raise


def payload(jid, name, script, timeout, artifacts=(), image="", release=(),
            variables=(), platform=""):
    token = "glcbt-e2e_" + secrets.token_hex(12)
    return {
        "id": jid, "token": token, "allow_git_fetch": False,
        "job_info": {"name": name, "stage": "test", "project_id": 3,
                     "project_name": "e2e", "project_full_path": "ci/e2e",
                     "pipeline_id": 7},
        "git_info": {"repo_url": "", "ref": "main", "sha": "0" * 40,
                     "before_sha": "0" * 40, "ref_type": "branch",
                     "refspecs": [], "depth": 0},
        "runner_info": {"timeout": timeout},
        "variables": [
            {"key": "CI_JOB_ID", "value": str(jid), "public": True},
            {"key": "CI_JOB_TOKEN", "value": token, "public": False,
             "masked": True},
            {"key": "GIT_STRATEGY", "value": "none", "public": True},
        ] + [{"key": k, "value": v, "public": False, "masked": False}
             for k, v in variables],
        "steps": [{"name": "script", "script": script, "timeout": timeout,
                   "when": "on_success", "allow_failure": False}] +
                 ([{"name": "release", "script": list(release),
                    "timeout": timeout, "when": "on_success",
                    "allow_failure": False}] if release else []),
        "image": dict({"name": image},
                      **({"executor_opts": {"docker": {"platform": platform}}}
                         if platform else {})),
        "services": [],
        "artifacts": [{"name": "out", "untracked": False, "paths": list(artifacts),
                       "exclude": [], "when": "on_success",
                       "artifact_type": "archive", "artifact_format": "zip",
                       "expire_in": ""}] if artifacts else [],
        "cache": [], "credentials": [], "dependencies": [],
        "features": {"trace_sections": True,
                     "failure_reasons": ["script_failure",
                                         "runner_system_failure",
                                         "job_execution_timeout",
                                         "runner_interrupted",
                                         "job_canceled",
                                         "image_pull_failure"]},
    }


def submit(args):
    base, count = args[0], int(args[1])
    sleep, name, script, timeout, artifacts = 2, "e2e", [], 600, []
    image = ""
    release = []
    variables = []
    platform = ""
    t0 = False
    i = 2
    while i < len(args):
        if args[i] == "--t0":
            t0 = True
            i += 1
            continue
        if args[i] == "--sleep":
            sleep = float(args[i + 1])
        elif args[i] == "--script":
            script.append(args[i + 1])
        elif args[i] == "--name":
            name = args[i + 1]
        elif args[i] == "--timeout":
            timeout = int(args[i + 1])
        elif args[i] == "--artifact":
            artifacts.append(args[i + 1])
        elif args[i] == "--image":
            image = args[i + 1]
        elif args[i] == "--release":
            release.append(args[i + 1])
        elif args[i] == "--platform":
            platform = args[i + 1]
        elif args[i] == "--var":
            variables.append(tuple(args[i + 1].split("=", 1)))
        i += 2
    if not script:
        script = ["echo START $(cut -d' ' -f1 /proc/uptime)",
                  "sleep %g" % sleep,
                  "echo END $(cut -d' ' -f1 /proc/uptime)"]
    for k in range(count):
        jid = int(time.time() * 1000) % 100000000 * 100 + k
        p = payload(jid, "%s-%d" % (name, k), script, timeout, artifacts,
                    image, release, variables, platform)
        with open("/proc/uptime") as f:
            up = f.read().split()[0]
        r = call(base, "POST", "/__fake/jobs", p)
        print("%s %s" % (r["id"], up) if t0 else r["id"])
    return 0


def final(st):
    return st.get("status") in ("success", "failed", "canceled")


def wait(args):
    base, timeout = args[0], float(args[1])
    ids = [int(x) for x in args[2:]]
    end = time.time() + timeout
    while time.time() < end:
        if all(final(job_state(base, j)) for j in ids):
            return 0
        time.sleep(0.5)
    for j in ids:
        print("job %d: %s" % (j, job_state(base, j).get("status")))
    return 1


def trace_of(base, jid):
    t = call(base, "GET", "/__fake/jobs/%d/trace" % jid)
    if isinstance(t, (bytes, bytearray)):
        t = t.decode("utf-8", "replace")
    return t


def check(args):
    base = args[0]
    expect, max_jobs, max_at_once = "success", None, None
    ids = []
    i = 1
    while i < len(args):
        if args[i] == "--expect":
            expect = args[i + 1]
            i += 2
        elif args[i] == "--max-jobs":
            max_jobs = int(args[i + 1])
            i += 2
        elif args[i] == "--max-at-once":
            max_at_once = int(args[i + 1])
            i += 2
        else:
            ids.append(int(args[i]))
            i += 1
    fails = 0
    per_inst = {}
    for j in ids:
        st = job_state(base, j)
        if st.get("status") != expect:
            print("FAIL: job %d is %s (%s), expected %s" % (
                j, st.get("status"), st.get("failure_reason"), expect))
            fails += 1
        if st.get("checksum_ok") is not True:
            print("FAIL: job %d: checksum/size %s/%s, stored %s/%s" % (
                j, st.get("checksum"), st.get("bytesize"),
                st.get("trace_crc32"), st.get("trace_len")))
            fails += 1
        t = trace_of(base, j)
        m = re.search(r"Instance ([A-Za-z0-9._-]+) connected", t)
        s = re.search(r"START ([0-9.]+)", t)
        e = re.search(r"END ([0-9.]+)", t)
        if m is None:
            if max_jobs is not None or max_at_once is not None:
                print("FAIL: job %d: no instance in its trace" % j)
                fails += 1
            continue
        per_inst.setdefault(m.group(1), []).append(
            (float(s.group(1)) if s else None,
             float(e.group(1)) if e else None, j))
    for inst, runs in sorted(per_inst.items()):
        if max_jobs is not None and len(runs) > max_jobs:
            print("FAIL: instance %s ran %d jobs (max %d)" % (
                inst, len(runs), max_jobs))
            fails += 1
        if max_at_once is not None:
            ev = []
            for s, e, j in runs:
                if s is None or e is None:
                    continue
                ev.append((s, 1))
                ev.append((e, -1))
            ev.sort(key=lambda x: (x[0], x[1]))
            cur = peak = 0
            for _, d in ev:
                cur += d
                peak = max(peak, cur)
            if peak > max_at_once:
                print("FAIL: instance %s ran %d jobs at once (max %d)" % (
                    inst, peak, max_at_once))
                fails += 1
            print("ok: instance %s: %d jobs, at most %d at once" % (
                inst, len(runs), peak))
    if fails == 0:
        print("ok: %d jobs %s, checksums match" % (len(ids), expect))
    return 1 if fails else 0


def started(args):
    """Wait until every job's trace shows its script started."""
    base, timeout = args[0], float(args[1])
    ids = [int(x) for x in args[2:]]
    end = time.time() + timeout
    while time.time() < end:
        if all(re.search(r"START [0-9]", trace_of_or_empty(base, j))
               for j in ids):
            return 0
        time.sleep(0.3)
    return 1


def trace_of_or_empty(base, jid):
    try:
        return trace_of(base, jid)
    except urllib.error.HTTPError:
        return ""


def instance_of(args):
    m = re.search(r"Instance ([A-Za-z0-9._-]+) connected",
                  trace_of_or_empty(args[0], int(args[1])))
    print(m.group(1) if m else "")
    return 0 if m else 1


def state(args):
    st = job_state(args[0], int(args[1]))
    print(st.get("status"), st.get("failure_reason") or "")
    return 0


def main():
    cmds = {"submit": submit, "wait": wait, "check": check, "state": state,
            "started": started, "instance": instance_of}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
