"""Conformance test of a flotilla fleeting plugin, with a gRPC client that
is not flotilla's: Python's grpcio and stubs generated from proto/*.proto
by grpc_tools.protoc (Debian's python3-grpcio, python3-grpc-tools).  Only
what proto/README.md says is used: the handshake constants are even read
from it, so the document and the code cannot drift apart unnoticed.  The
plugin under test is fleeting-plugin-local; its own README says where its
instances' pid files are (for the crash checks).

Prints TAP lines numbered from --first; tests/integration/plugin_local.sh
prints the plan.  Run with /usr/bin/python3.

    plugin_conformance.py --plugin BIN --stubs DIR --tmp DIR --first N
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--plugin", required=True)
ap.add_argument("--stubs", required=True)
ap.add_argument("--tmp", required=True)
ap.add_argument("--readme", required=True)
ap.add_argument("--first", type=int, default=1)
ap.add_argument("--log", required=True)
args = ap.parse_args()

sys.path.insert(0, args.stubs)
import grpc  # noqa: E402
import controller_pb2  # noqa: E402
import controller_pb2_grpc  # noqa: E402
import fleeting_pb2 as fp  # noqa: E402
import fleeting_pb2_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

NUM = args.first
FAILED = 0


def tap(ok, what, diag=None):
    global NUM, FAILED
    print("%s %d - %s" % ("ok" if ok else "not ok", NUM, what), flush=True)
    if not ok:
        FAILED += 1
        if diag:
            for line in str(diag).splitlines():
                print("# " + line, flush=True)
    NUM += 1
    return ok


# --- what proto/README.md says -------------------------------------------

readme = open(args.readme).read()
m = re.search(r"^\s*(FLOTILLA_PLUGIN_MAGIC_COOKIE)=(\S+)\s*$", readme, re.M)
COOKIE = (m.group(1), m.group(2)) if m else None
DEADLINE = {"Init": 60, "Update": 30, "Increase": 60, "Decrease": 60,
            "ConnectInfo": 30, "Heartbeat": 10, "Shutdown": 60}


def start_plugin(tag):
    """Start the plugin as a manager would; return (proc, socket path)."""
    sockdir = os.path.join(args.tmp, "sock-" + tag)
    os.makedirs(sockdir, mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env[COOKIE[0]] = COOKIE[1]
    env["PLUGIN_PROTOCOL_VERSIONS"] = "1"
    env["PLUGIN_UNIX_SOCKET_DIR"] = sockdir
    errlog = open(args.log, "ab")
    proc = subprocess.Popen([args.plugin], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=errlog, env=env,
                            start_new_session=True)
    errlog.close()
    line = [None]

    def reader():
        line[0] = proc.stdout.readline().decode()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(10)
    fields = (line[0] or "").rstrip("\n").split("|")
    # CORE|APP|NETWORK|ADDRESS|PROTOCOL|  (README: "The handshake line")
    ok = (len(fields) == 6 and fields[0] == "1" and fields[1] == "1" and
          fields[2] == "unix" and fields[4] == "grpc" and fields[5] == "" and
          fields[3].startswith(sockdir + "/"))
    tap(ok, "%s: handshake line %r" % (tag, (line[0] or "").strip()))
    return proc, fields[3] if ok else None


def code_of(e):
    return e.code() if isinstance(e, grpc.RpcError) else None


def call(stub, name, req):
    return getattr(stub, name)(req, timeout=DEADLINE.get(name, 30))


def expect_error(stub, name, req, code, text=None):
    try:
        call(stub, name, req)
        return False, "no error"
    except grpc.RpcError as e:
        ok = e.code() == code and (text is None or text in e.details())
        return ok, "%s: %s" % (e.code(), e.details())


def update(stub):
    r = call(stub, "Update", fp.UpdateRequest())
    return {i.id: i.state for i in r.instances}


def wait_for(pred, secs):
    end = time.time() + secs
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ssh_run(ci, keyfile, cmd, extra=None, background=False):
    host = ci.internal_addr.rsplit(":", 1)[0]
    argv = ["ssh", "-F", "/dev/null", "-i", keyfile, "-p",
            str(ci.connector.protocol_port), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
    argv += extra or []
    argv += ["%s@%s" % (ci.connector.username, host)] + cmd
    if background:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30)


def streamlocal_check(ci, keyfile):
    """direct-streamlocal, the way the connector reaches docker.sock."""
    remote = os.path.join(args.tmp, "echo.sock")
    local = os.path.join(args.tmp, "fwd.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(remote)
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        c.sendall(b"hello through streamlocal\n")
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    fwd = ssh_run(ci, keyfile, [], ["-N", "-o", "ExitOnForwardFailure=yes",
                                    "-L", "%s:%s" % (local, remote)],
                  background=True)
    got = b""
    try:
        if wait_for(lambda: os.path.exists(local) or fwd.poll() is not None,
                    10) and os.path.exists(local):
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(10)
            c.connect(local)
            while True:
                b = c.recv(100)
                if not b:
                    break
                got += b
            c.close()
    finally:
        fwd.terminate()
        try:
            fwd.wait(5)
        except subprocess.TimeoutExpired:
            fwd.kill()
        srv.close()
    return got == b"hello through streamlocal\n", got


def main():
    if not tap(COOKIE is not None, "proto/README.md names the cookie"):
        return
    state = os.path.join(args.tmp, "state")
    name = "conf%d" % os.getpid()
    cfg = {"name": name, "max_size": 2, "state_dir": state,
           "boot_delay": "1s"}
    settings = fp.ConnectorConfig(protocol="ssh",
                                  use_static_credentials=False)

    proc, path = start_plugin("first")
    if path is None:
        proc.kill()
        return
    ch = grpc.insecure_channel("unix:" + path)
    health = health_pb2_grpc.HealthStub(ch)
    ig = fleeting_pb2_grpc.InstanceGroupStub(ch)
    ctl = controller_pb2_grpc.GRPCControllerStub(ch)

    r = health.Check(health_pb2.HealthCheckRequest(service="plugin"),
                     timeout=5)
    r2 = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    SERVING = health_pb2.HealthCheckResponse.SERVING
    tap(r.status == SERVING and r2.status == SERVING,
        "health: \"plugin\" and \"\" are SERVING")
    ok, d = expect_error(health, "Check",
                         health_pb2.HealthCheckRequest(service="nope"),
                         grpc.StatusCode.NOT_FOUND)
    tap(ok, "health: an unknown service is NOT_FOUND", d)

    ok, d = expect_error(ig, "Update", fp.UpdateRequest(),
                         grpc.StatusCode.UNKNOWN, "not initialised")
    tap(ok, "Update before Init: UNKNOWN not initialised", d)

    bad = dict(cfg, bogus=1)
    ok, d = expect_error(ig, "Init", fp.InitRequest(
        plugin_config=json.dumps(bad).encode(), settings=settings),
        grpc.StatusCode.INVALID_ARGUMENT, "unknown key bogus in plugin_config")
    tap(ok, "Init with an unknown key: INVALID_ARGUMENT", d)

    t0 = time.time()
    r = call(ig, "Init", fp.InitRequest(plugin_config=json.dumps(cfg).encode(),
                                        settings=settings))
    pi = r.provider_info
    tap(pi.id == "local/" + name and pi.max_size == 2 and pi.version != "",
        "Init: provider info id %s max_size %d version %s (%.2fs)" %
        (pi.id, pi.max_size, pi.version, time.time() - t0))

    r = call(ig, "Increase", fp.IncreaseRequest(delta=1))
    tap(r.succeeded == 1 and r.error == "", "Increase(1): succeeded 1")
    st = update(ig)
    tap(len(st) == 1 and list(st.values())[0] == fp.INSTANCE_STATE_CREATING,
        "Update: the new instance is creating during boot_delay", st)
    iid = list(st)[0] if st else None
    t0 = time.time()
    st = wait_for(lambda: update(ig).get(iid) == fp.INSTANCE_STATE_RUNNING, 15)
    tap(st, "Update: %s running after %.2fs" % (iid, time.time() - t0))

    ci = call(ig, "ConnectInfo", fp.ConnectInfoRequest(id=iid))
    me = subprocess.run(["id", "-un"], capture_output=True,
                        text=True).stdout.strip()
    addr_ok = re.fullmatch(r"127\.\d+\.\d+\.\d+:(\d+)", ci.internal_addr)
    tap(ci.id == iid and addr_ok and ci.external_addr == ci.internal_addr and
        int(addr_ok.group(1)) == ci.connector.protocol_port and
        ci.connector.protocol == "ssh" and ci.connector.os == "linux" and
        ci.connector.arch != "" and ci.connector.username == me and
        ci.connector.key.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        and not ci.connector.use_static_credentials,
        "ConnectInfo: %s port %d user %s arch %s" %
        (ci.internal_addr, ci.connector.protocol_port, ci.connector.username,
         ci.connector.arch), ci)

    keyfile = os.path.join(args.tmp, "key")
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, ci.connector.key)
    os.close(fd)
    t0 = time.time()
    p = ssh_run(ci, keyfile, ["true"])
    tap(p.returncode == 0, "ssh login with ConnectInfo's key (%.2fs)" %
        (time.time() - t0), p.stderr.decode())
    ok, got = streamlocal_check(ci, keyfile)
    tap(ok, "direct-streamlocal forwarding to a unix socket", got)

    try:
        call(ig, "Heartbeat", fp.HeartbeatRequest(id=iid))
        tap(True, "Heartbeat: OK")
    except grpc.RpcError as e:
        tap(False, "Heartbeat: OK", e)
    ok, d = expect_error(ig, "Heartbeat", fp.HeartbeatRequest(id="nope"),
                         grpc.StatusCode.NOT_FOUND)
    tap(ok, "Heartbeat of an unknown id: NOT_FOUND", d)
    ok, d = expect_error(ig, "ConnectInfo", fp.ConnectInfoRequest(id="nope"),
                         grpc.StatusCode.NOT_FOUND)
    tap(ok, "ConnectInfo of an unknown id: NOT_FOUND", d)
    ok, d = expect_error(ig, "Decrease", fp.DecreaseRequest(ids=[iid, ""]),
                         grpc.StatusCode.INVALID_ARGUMENT)
    tap(ok, "Decrease with an empty id: INVALID_ARGUMENT", d)

    r = call(ig, "Increase", fp.IncreaseRequest(delta=5))
    tap(r.succeeded == 1 and "max_size" in r.error,
        "Increase(5) at 1 of 2: capped, succeeded 1, error %r" % r.error)
    ok, d = expect_error(ig, "Increase", fp.IncreaseRequest(delta=1),
                         grpc.StatusCode.UNKNOWN, "max_size")
    tap(ok, "Increase(1) at max_size: UNKNOWN", d)
    st = wait_for(lambda: (lambda u: len(u) == 2 and all(
        s == fp.INSTANCE_STATE_RUNNING for s in u.values()) and u)(
        update(ig)), 15)
    tap(st, "Update: both instances running", st)
    other = [i for i in (st or {}) if i != iid]
    other = other[0] if other else "none"

    # kill -9 the second instance's sshd: it vanishes, as a dead VM does.
    pidfile = os.path.join(state, "instances", other, "sshd.pid")
    try:
        pid2 = int(open(pidfile).read())
    except (OSError, ValueError):
        pid2 = 0
    if pid2 > 0:
        os.kill(pid2, signal.SIGKILL)
    time.sleep(0.2)
    ok, d = expect_error(ig, "Heartbeat", fp.HeartbeatRequest(id=other),
                         grpc.StatusCode.FAILED_PRECONDITION)
    tap(pid2 > 0 and ok, "sshd of %s killed: Heartbeat FAILED_PRECONDITION"
        % other, d)
    gone = wait_for(lambda: other not in update(ig), 10)
    tap(gone and not os.path.exists(os.path.dirname(pidfile)) or
        wait_for(lambda: not os.path.exists(os.path.dirname(pidfile)), 5),
        "Update: %s is no longer listed, its directory removed" % other)

    # A crash of the plugin: the instance lives on and is found again.
    pid1 = int(open(os.path.join(state, "instances", iid, "sshd.pid")).read())
    ch.close()
    proc.kill()
    proc.wait(5)
    tap(alive(pid1), "plugin killed with SIGKILL: sshd %d lives on" % pid1)
    proc, path = start_plugin("second")
    if path is None:
        proc.kill()
        return
    ch = grpc.insecure_channel("unix:" + path)
    ig = fleeting_pb2_grpc.InstanceGroupStub(ch)
    ctl = controller_pb2_grpc.GRPCControllerStub(ch)
    cfg2 = dict(cfg, delete_on_shutdown=True)
    call(ig, "Init", fp.InitRequest(plugin_config=json.dumps(cfg2).encode(),
                                    settings=settings))
    st = update(ig)
    tap(st == {iid: fp.INSTANCE_STATE_RUNNING},
        "restarted plugin re-adopts %s as running" % iid, st)
    ci = call(ig, "ConnectInfo", fp.ConnectInfoRequest(id=iid))
    p = ssh_run(ci, keyfile, ["true"])
    tap(p.returncode == 0, "ssh login to the re-adopted instance",
        p.stderr.decode())

    r = call(ig, "Decrease", fp.DecreaseRequest(ids=[iid]))
    tap(list(r.succeeded) == [iid] and r.error == "", "Decrease: accepted")
    t0 = time.time()
    gone = wait_for(lambda: iid not in update(ig), 15)
    tap(gone and not alive(pid1) and
        not os.path.exists(os.path.join(state, "instances", iid)),
        "Update: %s gone after %.2fs, sshd ended, directory removed" %
        (iid, time.time() - t0))

    # delete_on_shutdown: Shutdown deletes what is left.
    r = call(ig, "Increase", fp.IncreaseRequest(delta=1))
    st = wait_for(lambda: (lambda u: len(u) == 1 and all(
        s == fp.INSTANCE_STATE_RUNNING for s in u.values()) and u)(
        update(ig)), 15)
    last = list(st)[0] if st else "none"
    try:
        pid3 = int(open(os.path.join(state, "instances", last,
                                     "sshd.pid")).read())
    except (OSError, ValueError):
        pid3 = 0
    tap(r.succeeded == 1 and st and pid3 > 0 and alive(pid3),
        "Increase(1) after Decrease: %s running" % last)
    t0 = time.time()
    call(ig, "Shutdown", fp.ShutdownRequest())
    tap(not alive(pid3) and update(ig) == {} and
        not os.path.exists(os.path.join(state, "instances", last)),
        "InstanceGroup Shutdown with delete_on_shutdown: OK, %s deleted "
        "(%.2fs)" % (last, time.time() - t0))
    t0 = time.time()
    ctl.Shutdown(controller_pb2.Empty(), timeout=5)
    try:
        rc = proc.wait(2)
    except subprocess.TimeoutExpired:
        rc = None
        proc.kill()
        proc.wait()
    tap(rc == 0 and not os.path.exists(path),
        "controller Shutdown: exit %s within %.2fs, socket removed" %
        (rc, time.time() - t0))
    ch.close()


def check_log():
    """Every stderr line is an hclog JSON object."""
    bad = []
    n = 0
    for line in open(args.log, errors="replace"):
        n += 1
        try:
            o = json.loads(line)
            if not all(k in o for k in ("@level", "@message", "@timestamp",
                                        "@module")):
                bad.append(line)
        except ValueError:
            bad.append(line)
    tap(n > 0 and not bad, "plugin stderr: %d hclog JSON lines" % n,
        "".join(bad[:5]))


try:
    main()
except Exception as e:  # a broken step must not hide the count
    tap(False, "conformance run aborted: %r" % e)
check_log()
print("# conformance: %d tests from %d" % (NUM - args.first, args.first))
sys.exit(1 if FAILED else 0)
