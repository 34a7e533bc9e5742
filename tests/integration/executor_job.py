#!/usr/bin/python3
"""Make one job payload (GitLab's jobs/request answer, reference
runner-jobs-docker.md §1.5) for tests/integration/executor.sh and print it
as JSON.  Options:

  --token T            job token (also CI_JOB_TOKEN, masked)
  --git-url URL        repository URL without credentials (http://h:p/g/p.git)
  --sha SHA            commit to check out; --ref REF (main)
  --strategy S         GIT_STRATEGY (none, clone, fetch)
  --timeout N          runner_info.timeout (seconds)
  --script LINE        a line of the script step (repeatable)
  --step-timeout N     the script step's timeout
  --after LINE         a line of after_script (repeatable)
  --var K=V            public variable; --masked K=V masked; --file K=V file
  --artifact PATH      artifacts path (repeatable); --artifact-when W
  --dep ID             a dependency with artifacts (token: the job's own)
  --cache KEY:PATH     a cache (pull-push)
  --service IMAGE|ALIAS|CMD...  a service: "|" separates image, alias and
                       the command words (space separated); HEALTH=PORT
                       as a fourth field sets HEALTHCHECK_TCP_PORT
  --image NAME         the job image
  --project-path P     project_full_path (group/proj)
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", required=True)
    ap.add_argument("--git-url", default="http://127.0.0.1:1/group/proj.git")
    ap.add_argument("--sha", default="0" * 40)
    ap.add_argument("--ref", default="main")
    ap.add_argument("--strategy", default="none")
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--script", action="append", default=[])
    ap.add_argument("--step-timeout", type=int, default=0)
    ap.add_argument("--after", action="append", default=[])
    ap.add_argument("--var", action="append", default=[])
    ap.add_argument("--masked", action="append", default=[])
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--artifact", action="append", default=[])
    ap.add_argument("--artifact-when", default="on_success")
    ap.add_argument("--dep", action="append", default=[])
    ap.add_argument("--cache", action="append", default=[])
    ap.add_argument("--service", action="append", default=[])
    ap.add_argument("--image", default="flotilla-test-busybox")
    ap.add_argument("--project-path", default="group/proj")
    a = ap.parse_args()

    scheme, rest = a.git_url.split("://", 1)
    repo_url = "%s://gitlab-ci-token:%s@%s" % (scheme, a.token, rest)
    variables = [
        {"key": "CI_JOB_TOKEN", "value": a.token, "public": False,
         "masked": True},
        {"key": "CI_PROJECT_PATH", "value": a.project_path, "public": True},
        {"key": "CI_SERVER_URL", "value": "http://127.0.0.1", "public": True},
        {"key": "GIT_STRATEGY", "value": a.strategy, "public": True},
    ]
    for kind, lst in (("var", a.var), ("masked", a.masked), ("file", a.file)):
        for kv in lst:
            k, _, v = kv.partition("=")
            variables.append({"key": k, "value": v, "public": kind == "var",
                              "masked": kind == "masked",
                              "file": kind == "file"})
    steps = [{"name": "script", "script": a.script, "timeout": a.step_timeout,
              "when": "on_success", "allow_failure": False}]
    if a.after:
        steps.append({"name": "after_script", "script": a.after,
                      "timeout": 0, "when": "always", "allow_failure": False})
    job = {
        "token": a.token,
        "allow_git_fetch": False,
        "job_info": {"name": "test", "stage": "test", "project_id": 42,
                     "project_name": a.project_path.split("/")[-1],
                     "project_full_path": a.project_path, "pipeline_id": 7},
        "git_info": {"repo_url": repo_url, "repo_object_format": "sha1",
                     "ref": a.ref, "sha": a.sha, "before_sha": "0" * 40,
                     "ref_type": "branch",
                     "refspecs": ["+refs/heads/%s:refs/remotes/origin/%s" %
                                  (a.ref, a.ref)],
                     "depth": 0, "protected": False},
        "runner_info": {"timeout": a.timeout},
        "variables": variables,
        "steps": steps,
        "image": {"name": a.image},
        "services": [],
        "artifacts": [],
        "cache": [],
        "dependencies": [],
        "features": {"trace_sections": True,
                     "failure_reasons": ["script_failure",
                                         "job_execution_timeout",
                                         "runner_system_failure",
                                         "image_pull_failure",
                                         "job_canceled"]},
    }
    if a.artifact:
        job["artifacts"].append({"name": "artifacts", "untracked": False,
                                 "paths": a.artifact, "exclude": [],
                                 "when": a.artifact_when,
                                 "artifact_type": "archive",
                                 "artifact_format": "zip",
                                 "expire_in": "1 day"})
    for d in a.dep:
        job["dependencies"].append({"id": int(d), "token": a.token,
                                    "name": "producer",
                                    "artifacts_file": {
                                        "filename": "artifacts.zip",
                                        "size": 1}})
    for c in a.cache:
        key, _, path = c.partition(":")
        job["cache"].append({"key": key, "untracked": False,
                             "policy": "pull-push", "paths": [path],
                             "when": "on_success", "fallback_keys": []})
    for s in a.service:
        parts = s.split("|")
        svc = {"name": parts[0]}
        if len(parts) > 1 and parts[1]:
            svc["alias"] = parts[1]
        if len(parts) > 2 and parts[2]:
            svc["command"] = parts[2].split(" ")
        if len(parts) > 3 and parts[3]:
            svc["variables"] = [{"key": "HEALTHCHECK_TCP_PORT",
                                 "value": parts[3], "public": True}]
        job["services"].append(svc)
    json.dump(job, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
