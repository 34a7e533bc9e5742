#!/usr/bin/python3
"""A strict fake of the AWS APIs that fleeting-plugin-aws uses.

Why: moto (the independent fake) checks no signature, no throttling, no
error XML and no pagination; this fake answers like AWS on exactly the
calls the plugin makes, verifies every SigV4 signature, and backs each
instance with a REAL sshd on a 127.0.0.0/8 address so that logins (static
keys and EC2 Instance Connect keys) can be tested end to end.  Facts:
../shared/reference/cloud-plugins.md sections 1.1, 2, 2.1, 3.1; the
botocore service models (autoscaling 2011-01-01, ec2 2016-11-15,
ec2-instance-connect 2018-04-02, sts 2011-06-15).  Python 3 standard
library only.  The real `aws` CLI is the check of this fake
(tests/integration/plugin_aws.sh).

Run:
    /usr/bin/python3 tests/fakes/fake_aws.py --dir DIR --port-file F
        [--port 0] [--listen 127.0.0.1] [--imds-port-file F2 [--imds-port 0]]
        [--region us-east-1] [--group NAME --min 0 --max 10 --desired 0]
        [--addrs 127.0.100.1-127.0.101.254] [--ssh-port auto|N]
        [--launch-key FILE.pub] [--launch-user root] [--no-sshd]
        [--pending-seconds 1] [--terminating-seconds 0.5]
    Secrets come from the environment, never argv:
      FAKE_AWS_CREDENTIALS   "AKID:SECRET[,AKID:SECRET...]" long-term keys
      FAKE_AWS_WEB_IDENTITY  the web identity token STS accepts (also
                             settable with /__fake/config sts_token)
    The ports are written to the port files once the sockets listen.
    SIGTERM/SIGINT (or POST /__fake/shutdown) stop every sshd and exit.

One HTTP/1.1 server (keep-alive) serves the four APIs; the service is
chosen the way AWS's front ends do it for a single endpoint: JSON requests
by X-Amz-Target, Query requests by their Version (2011-01-01 Auto Scaling,
2016-11-15 EC2, 2011-06-15 STS).  The credential scope's service must then
match, as a real regional endpoint would insist.

Auto Scaling (Query, POST form or GET query; answers text/xml in namespace
http://autoscaling.amazonaws.com/doc/2011-01-01/, <OpResult>, lists as
<member>, <ResponseMetadata><RequestId>):
  DescribeAutoScalingGroups     AutoScalingGroupNames.member.N, MaxRecords
                                (1..100, default 50), NextToken,
                                IncludeInstances, Filters.member.N.Name /
                                .Values.member.M (tag-key, tag-value,
                                tag:KEY).  Unknown names are absent from
                                the list (no error).  Pages over groups;
                                every instance of a group is in its one
                                entry, as AWS does.
  SetDesiredCapacity            AutoScalingGroupName, DesiredCapacity,
                                HonorCooldown.  ValidationError (400) for
                                an unknown group, above MaxSize or below
                                MinSize; ScalingActivityInProgress (400)
                                with HonorCooldown=true inside the cooldown.
  TerminateInstanceInAutoScalingGroup  InstanceId,
                                ShouldDecrementDesiredCapacity (both
                                required).  ValidationError for an instance
                                in no group or when the decrement would go
                                below MinSize.  Returns the Activity.
  DescribeAutoScalingInstances  InstanceIds.member.N, MaxRecords (1..50),
                                NextToken.
  Errors: <ErrorResponse xmlns=NS><Error><Type>Sender|Receiver</Type>
  <Code/><Message/></Error><RequestId/></ErrorResponse>: ValidationError
  400, Throttling 400 "Rate exceeded", InvalidNextToken 400, InvalidAction
  400; auth: MissingAuthenticationToken / IncompleteSignature /
  InvalidClientTokenId / SignatureDoesNotMatch / ExpiredToken, all 403.

EC2 (EC2 protocol; namespace http://ec2.amazonaws.com/doc/2016-11-15/,
<requestId>, lists as <item>):
  DescribeInstances             InstanceId.N, Filter.N.Name / .Value.M
                                (instance-id, instance-state-name,
                                private-ip-address, availability-zone,
                                tag-key, tag:KEY), MaxResults (5..1000; not
                                with InstanceId), NextToken, DryRun.  One
                                reservation per instance (as an ASG
                                launches them).  instanceState code/name
                                (pending 0, running 16, shutting-down 32,
                                terminated 48), privateIpAddress and
                                ipAddress (both the instance's 127.x
                                address, absent once terminated),
                                architecture, platform (only "windows"),
                                placement/availabilityZone, tagSet with
                                aws:autoscaling:groupName.  Terminated
                                instances stay listed.
  Errors: <Response><Errors><Error><Code/><Message/></Error></Errors>
  <RequestID/></Response>: InvalidInstanceID.NotFound 400,
  InvalidInstanceID.Malformed 400, InvalidParameterCombination 400,
  InvalidParameterValue 400, InvalidPaginationToken 400, UnknownParameter
  400, DryRunOperation 412, RequestLimitExceeded 503; auth: AuthFailure
  401 (missing, malformed, unknown key, wrong signature or scope, bad
  token), RequestExpired 400 (clock skew, expired session token).

EC2 Instance Connect (JSON 1.1, POST /, X-Amz-Target
AWSEC2InstanceConnectService.SendSSHPublicKey, Content-Type
application/x-amz-json-1.1):
  SendSSHPublicKey  {InstanceId ^i-[a-f0-9]+$, InstanceOSUser (1..32),
                    SSHPublicKey (80..4096, ssh-rsa / ssh-ed25519 /
                    ecdsa-sha2-*), AvailabilityZone (optional, must match)}
                    -> {"RequestId", "Success": true}; the key is
                    installed for that OS user on the instance's sshd for
                    ic_key_seconds (60), then removed.
  Errors: JSON {"__type": CODE, "Message": ...} and header
  x-amzn-ErrorType: ValidationException 400, InvalidArgsException 400,
  EC2InstanceNotFoundException 400, EC2InstanceStateInvalidException 400,
  ThrottlingException 400; auth: MissingAuthenticationTokenException 403,
  IncompleteSignatureException 400, UnrecognizedClientException 403,
  InvalidSignatureException 403, ExpiredTokenException 403.

STS (Query; namespace https://sts.amazonaws.com/doc/2011-06-15/):
  AssumeRoleWithWebIdentity  unsigned; RoleArn, RoleSessionName,
                    WebIdentityToken (must equal the configured token:
                    else InvalidIdentityToken 400), DurationSeconds
                    (900..3600, default 3600; sts_expires_in overrides the
                    lifetime) -> Credentials (ASIA... key, secret,
                    SessionToken, Expiration) usable on the other APIs.
                    sts_role_arn, when set, must match (else AccessDenied
                    403).

SigV4 verification, on every request but AssumeRoleWithWebIdentity
(botocore/auth.py semantics): Authorization "AWS4-HMAC-SHA256
Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=...,
Signature=..." (presigned query strings are refused); X-Amz-Date (exactly
one) within max_skew_seconds (900) of now; DATE its day; REGION the fake's
region; SERVICE the API's signing name; host and x-amz-date signed, and
x-amz-security-token when sent; canonical request = method, the path
(dot segments removed, percent-encoded with / and ~ kept), the query
parameters decoded, re-encoded and sorted, the signed headers (values
trimmed, inner whitespace collapsed, repeats joined by ","), the signed
header list, hex SHA-256 of the body; HMAC chain from "AWS4"+secret.
Temporary keys (from STS or IMDS, or added with a session token) need
their X-Amz-Security-Token and fail with the expired code after their
expiration.  The canonical request and string to sign the fake computed
are kept in /__fake/requests for a failed signature (never a secret).

IMDSv2 (second port, --imds-port-file):
  PUT /latest/api/token   header X-aws-ec2-metadata-token-ttl-seconds
                          1..21600 required (400 otherwise; 403 with
                          X-Forwarded-For) -> the token (text/plain)
  GET (header X-aws-ec2-metadata-token; 401 without or with a bad or
  expired token):
    /latest/meta-data/iam/security-credentials/        the role name
    /latest/meta-data/iam/security-credentials/ROLE    {"Code": "Success",
        "LastUpdated", "Type": "AWS-HMAC", "AccessKeyId", "SecretAccessKey",
        "Token", "Expiration"}; the same session until less than
        imds_rotate_before seconds (default: a third of imds_expires_in)
        are left, then a new one
    /latest/meta-data/placement/region, .../placement/availability-zone,
    /latest/meta-data/instance-id
  Anything else 404.

The group(s): instances appear launch_delay seconds after the desired
capacity grows (lifecycle Pending, EC2 pending), become InService/running
pending_seconds later once their sshd listens, and when terminated go
Terminating/shutting-down (sshd and its sessions killed at once) and
leave the group terminating_seconds later (EC2 terminated).  A lower
desired capacity terminates the newest instances not protected from scale
in.  Each instance has an address from --addrs (privateIpAddress =
ipAddress = 127.x.y.z) and, unless sshd is off for its group, a real
`/usr/sbin/sshd -D` on ADDR:PORT (PORT 22 when ADDR:22 can be bound, else
a free one; --ssh-port N forces N) with its own host key, running as the
current user, AuthorizedKeysFile DIR/i/ID/keys/%u (owned by that OS
user when it exists and the fake runs as root; the launch key for
--launch-user, plus Instance Connect keys while they last), TCP and
stream-local forwarding allowed.

Control API (JSON bodies and answers; not signed):
  GET  /__fake/health                 200 {"ok": true}
  GET  /__fake/config                 the settings below
  POST /__fake/config                 set any of: region, page_size (cap on
                                      every page, 0 none), empty_pages (the
                                      first N pages of every paged answer
                                      are empty with a NextToken, as AWS
                                      may do), pending_seconds,
                                      terminating_seconds, launch_delay,
                                      ic_key_seconds, max_skew_seconds,
                                      sts_token, sts_role_arn,
                                      sts_expires_in, cooldown_seconds
  POST /__fake/credentials            {"access_key_id", "secret_access_key",
                                      ["session_token"], ["expires_in"]}
  GET  /__fake/credentials            key ids with kind and expiry
  POST /__fake/expire                 {["access_key_id"]}: that key, or
                                      every temporary key, expires now
  POST /__fake/inject                 {"action" (or "*"), "count" (1),
                                      "code", "message", "status"}: the next
                                      COUNT authenticated calls of ACTION
                                      fail so; code "" answers the bare
                                      status with an empty body
  POST /__fake/throttle               {"action", "count"}: inject the
                                      service's throttle: Throttling 400,
                                      RequestLimitExceeded 503,
                                      ThrottlingException 400
  GET  /__fake/counts                 {"actions": {ACTION: n},
                                      "rejected": {ACTION: n}, "total": n,
                                      "imds": {"token": n, "get": n,
                                      "sessions": n}, "sts": n}
  POST /__fake/counts/reset
  GET  /__fake/requests               the last 2000 API requests: time,
                                      service, action, status, code,
                                      key id, reason
  GET  /__fake/violations             what a careful client should not do
                                      (HonorCooldown not false, a session
                                      token not signed, duplicate headers)
  POST /__fake/group                  {"name", "min", "max", "desired",
                                      "protected" (true), "sshd" (true),
                                      "architecture" (x86_64), "platform"
                                      ("" or "windows"), "instant" (new
                                      instances InService at once), "tags"}
                                      creates or updates a group
  GET  /__fake/groups                 groups with their instances
  GET  /__fake/instances              every instance: id, group,
                                      lifecycle, state, addr, port,
                                      sshd_pid, keys (users), ic_keys
  POST /__fake/instances/ID/remove    terminate it behind the plugin's back
  POST /__fake/instances/ID/lifecycle {"state": "Pending:Wait" ...}
  POST /__fake/imds                   {"expires_in", "rotate_before",
                                      "region", "role", "az"}; "rotate": true
                                      starts a new session now
  GET  /__fake/imds                   the current session's key id and
                                      expiration
  POST /__fake/shutdown               stop everything and exit
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import pwd
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

NS_AS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
NS_EC2 = "http://ec2.amazonaws.com/doc/2016-11-15/"
NS_STS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
MAX_BODY = 1024 * 1024
IC_TARGET = "AWSEC2InstanceConnectService."

VERSIONS = {"2011-01-01": "autoscaling", "2016-11-15": "ec2",
            "2011-06-15": "sts"}
SIGNING_NAME = {"autoscaling": "autoscaling", "ec2": "ec2",
                "sts": "sts", "ic": "ec2-instance-connect"}
PROTOCOL = {"autoscaling": "query", "sts": "query", "ec2": "ec2",
            "ic": "json"}
EC2_STATE_CODE = {"pending": 0, "running": 16, "shutting-down": 32,
                  "terminated": 48, "stopping": 64, "stopped": 80}

# Allowed parameter names per operation (regexes over the flat names).
PARAMS = {
    "DescribeAutoScalingGroups": [
        r"AutoScalingGroupNames\.member\.\d+", r"IncludeInstances",
        r"NextToken", r"MaxRecords", r"Filters\.member\.\d+\.Name",
        r"Filters\.member\.\d+\.Values\.member\.\d+"],
    "SetDesiredCapacity": [r"AutoScalingGroupName", r"DesiredCapacity",
                           r"HonorCooldown"],
    "TerminateInstanceInAutoScalingGroup": [
        r"InstanceId", r"ShouldDecrementDesiredCapacity"],
    "DescribeAutoScalingInstances": [r"InstanceIds\.member\.\d+",
                                     r"MaxRecords", r"NextToken"],
    "DescribeInstances": [r"InstanceId\.\d+", r"Filter\.\d+\.Name",
                          r"Filter\.\d+\.Value\.\d+", r"DryRun",
                          r"NextToken", r"MaxResults",
                          r"IncludeManagedResources"],
    "AssumeRoleWithWebIdentity": [
        r"RoleArn", r"RoleSessionName", r"WebIdentityToken", r"ProviderId",
        r"PolicyArns\.member\.\d+\.arn", r"Policy", r"DurationSeconds"],
}
OPS = {"autoscaling": ["DescribeAutoScalingGroups", "SetDesiredCapacity",
                       "TerminateInstanceInAutoScalingGroup",
                       "DescribeAutoScalingInstances"],
       "ec2": ["DescribeInstances"],
       "sts": ["AssumeRoleWithWebIdentity"],
       "ic": ["SendSSHPublicKey"]}


class AwsError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class AuthError(Exception):
    """A SigV4 failure, by kind; mapped to each protocol's own code."""

    def __init__(self, kind, message, detail=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail or {}


# kind -> (code, status) per protocol.
AUTH_CODES = {
    "query": {"missing": ("MissingAuthenticationToken", 403),
              "incomplete": ("IncompleteSignature", 403),
              "unknown_key": ("InvalidClientTokenId", 403),
              "bad_token": ("InvalidClientTokenId", 403),
              "mismatch": ("SignatureDoesNotMatch", 403),
              "scope": ("SignatureDoesNotMatch", 403),
              "skew": ("SignatureDoesNotMatch", 403),
              "expired_token": ("ExpiredToken", 403)},
    "ec2": {"missing": ("AuthFailure", 401),
            "incomplete": ("AuthFailure", 401),
            "unknown_key": ("AuthFailure", 401),
            "bad_token": ("AuthFailure", 401),
            "mismatch": ("AuthFailure", 401),
            "scope": ("AuthFailure", 401),
            "skew": ("RequestExpired", 400),
            "expired_token": ("RequestExpired", 400)},
    "json": {"missing": ("MissingAuthenticationTokenException", 403),
             "incomplete": ("IncompleteSignatureException", 400),
             "unknown_key": ("UnrecognizedClientException", 403),
             "bad_token": ("UnrecognizedClientException", 403),
             "mismatch": ("InvalidSignatureException", 403),
             "scope": ("InvalidSignatureException", 403),
             "skew": ("InvalidSignatureException", 403),
             "expired_token": ("ExpiredTokenException", 403)},
}
EC2_AUTH_MESSAGE = "AWS was not able to validate the provided access credentials"


def iso_ms(t):
    """2024-01-01T00:00:00.000Z, as AWS's XML timestamps."""
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def iso_s(t):
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def x(tag, val):
    return "<%s>%s</%s>" % (tag, escape(str(val)), tag)


def xbool(v):
    return "true" if v else "false"


def request_id():
    return str(uuid.uuid4())


def quote(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def remove_dot_segments(path):
    if not path:
        return "/"
    out = []
    for seg in path.split("/"):
        if seg and seg != ".":
            if seg == "..":
                if out:
                    out.pop()
            else:
                out.append(seg)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and out else ""
    return first + "/".join(out) + last


def hmac256(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def parse_bool(name, v):
    if v == "true":
        return True
    if v == "false":
        return False
    raise AwsError("ValidationError", "1 validation error detected: Value "
                   "'%s' at '%s' failed to satisfy constraint: Member must "
                   "be a boolean" % (v, name[0].lower() + name[1:]))


def parse_int(name, v, err="ValidationError"):
    try:
        if not re.fullmatch(r"-?\d+", v):
            raise ValueError
        return int(v)
    except ValueError:
        raise AwsError(err, "Invalid value '%s' for %s" % (v, name))


def member_list(params, prefix):
    """prefix.1, prefix.2 ... in order; indices must be 1..N."""
    found = {}
    rx = re.compile(re.escape(prefix) + r"\.(\d+)$")
    for k, v in params.items():
        m = rx.match(k)
        if m:
            found[int(m.group(1))] = v
    if found and sorted(found) != list(range(1, len(found) + 1)):
        raise AwsError("ValidationError", "The list %s is not numbered "
                       "1..N: %s" % (prefix, sorted(found)))
    return [found[i] for i in sorted(found)]


def struct_list(params, prefix):
    """prefix.N.rest -> [{rest: v}] in order of N."""
    found = {}
    rx = re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)$")
    for k, v in params.items():
        m = rx.match(k)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return [found[i] for i in sorted(found)]


# ---------------------------------------------------------------- model

class Cred:
    def __init__(self, akid, secret, token=None, expires=None, kind="static"):
        self.akid = akid
        self.secret = secret
        self.token = token
        self.expires = expires
        self.kind = kind


class Instance:
    def __init__(self, iid, group, addr, az, arch, platform):
        self.id = iid
        self.group = group          # group name (kept after it leaves)
        self.in_group = True
        self.addr = addr
        self.az = az
        self.arch = arch
        self.platform = platform
        self.lifecycle = "Pending"
        self.ec2_state = "pending"
        self.launched = time.time()
        self.pending_until = 0.0
        self.terminate_at = 0.0
        self.protected = True
        self.reservation = "r-" + secrets.token_hex(8)[:17]
        self.port = 0
        self.sshd = None            # Popen
        self.sshd_ready = False
        self.sshd_error = ""
        self.dir = None
        self.ic_keys = []           # (user, key, expires)
        self.with_sshd = True
        self.instant = False


class Group:
    def __init__(self, name):
        self.name = name
        self.min = 0
        self.max = 10
        self.desired = 0
        self.protected = True
        self.sshd = True
        self.arch = "x86_64"
        self.platform = ""
        self.instant = False
        self.created = time.time()
        self.last_scaling = 0.0
        self.tags = {}
        self.launch_due = []        # times at which a launch is due


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.args = args
        self.dir = os.path.abspath(args.dir)
        self.cfg = {
            "region": args.region,
            "page_size": 0,
            "empty_pages": 0,
            "pending_seconds": args.pending_seconds,
            "terminating_seconds": args.terminating_seconds,
            "launch_delay": 0.0,
            "ic_key_seconds": 60.0,
            "max_skew_seconds": 900,
            "sts_token": os.environ.get("FAKE_AWS_WEB_IDENTITY", ""),
            "sts_role_arn": "",
            "sts_expires_in": 0,
            "cooldown_seconds": 300,
        }
        self.creds = {}
        for pair in os.environ.get("FAKE_AWS_CREDENTIALS", "").split(","):
            if ":" in pair:
                a, s = pair.split(":", 1)
                self.creds[a] = Cred(a, s)
        self.groups = {}
        self.instances = {}         # id -> Instance, in launch order
        self.injections = []
        self.counts = {}
        self.rejected = {}
        self.total = 0
        self.sts_count = 0
        self.imds_counts = {"token": 0, "get": 0, "sessions": 0}
        self.requests = []
        self.violations = []
        self.page_secret = secrets.token_bytes(16)
        self.launch_key = ""
        if args.launch_key:
            with open(args.launch_key) as f:
                self.launch_key = f.read().strip()
        self.launch_user = args.launch_user
        self.addrs = list(addr_range(args.addrs))
        self.free_addrs = list(self.addrs)
        self.imds = {"expires_in": 21600.0, "rotate_before": None,
                     "region": args.region, "role": "flotilla-test-role",
                     "az": args.region + "a", "tokens": {}, "session": None}
        self.stopping = False

    def violate(self, what):
        with self.lock:
            if len(self.violations) < 1000:
                self.violations.append(what)

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)
            if len(self.requests) > 2000:
                del self.requests[:len(self.requests) - 2000]

    def new_temp_cred(self, lifetime, kind):
        akid = "ASIA" + secrets.token_hex(8).upper()
        c = Cred(akid, secrets.token_urlsafe(30),
                 base64.b64encode(secrets.token_bytes(96)).decode(),
                 time.time() + lifetime, kind)
        self.creds[akid] = c
        return c


def addr_range(spec):
    a, _, b = spec.partition("-")
    lo = int(ipaddress.IPv4Address(a))
    hi = int(ipaddress.IPv4Address(b or a))
    net = ipaddress.IPv4Network("127.0.0.0/8")
    for n in range(lo, hi + 1):
        ip = ipaddress.IPv4Address(n)
        if ip not in net:
            raise SystemExit("fake_aws: %s is outside 127.0.0.0/8" % ip)
        if n & 0xff in (0, 255):
            continue
        yield str(ip)


ST = None   # the State


# ----------------------------------------------------------------- sshd

def port_free(addr, port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(addr):
    s = socket.socket()
    s.bind((addr, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_keys(inst):
    """Rewrite DIR/i/ID/keys/USER from the launch key and live IC keys."""
    if inst.dir is None:
        return
    now = time.time()
    per_user = {}
    if ST.launch_key:
        per_user.setdefault(ST.launch_user, []).append(ST.launch_key)
    for user, key, exp in inst.ic_keys:
        if exp > now:
            per_user.setdefault(user, []).append(key)
    kdir = os.path.join(inst.dir, "keys")
    os.makedirs(kdir, exist_ok=True)
    for name in os.listdir(kdir):
        if name not in per_user and not name.startswith("."):
            os.unlink(os.path.join(kdir, name))
    for user, keys in per_user.items():
        tmp = os.path.join(kdir, ".tmp-" + user)
        with open(tmp, "w") as f:
            f.write("\n".join(keys) + "\n")
        os.chmod(tmp, 0o600)
        chown_to_user(tmp, user)
        os.rename(tmp, os.path.join(kdir, user))


def chown_to_user(path, user):
    """Give PATH to the OS user USER when running as root and USER exists:
    sshd reads a user's authorized keys with that user's rights, as on a
    real instance where ~ec2-user/.ssh/authorized_keys is ec2-user's."""
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return
    os.chown(path, pw.pw_uid, pw.pw_gid)


def sshd_config(inst, port):
    d = inst.dir
    return """# fake_aws instance %s %s:%d
ListenAddress %s:%d
HostKey %s/ssh_host_ed25519_key
PidFile %s/sshd.pid
AuthorizedKeysFile %s/keys/%%u
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
X11Forwarding no
PrintMotd no
UseDNS no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
""" % (inst.id, inst.addr, port, inst.addr, port, d, d, d)


def start_sshd(inst):
    """Start the instance's sshd; runs in its own thread."""
    try:
        d = os.path.join(ST.dir, "i", inst.id)
        os.makedirs(d, exist_ok=True)
        inst.dir = d
        with ST.lock:
            write_keys(inst)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                        "-C", "fake-aws-" + inst.id, "-f",
                        os.path.join(d, "ssh_host_ed25519_key")],
                       check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for attempt in range(3):
            if ST.args.ssh_port != "auto":
                port = int(ST.args.ssh_port)
            elif port_free(inst.addr, 22):
                port = 22
            else:
                port = free_port(inst.addr)
            cfg = os.path.join(d, "sshd_config")
            with open(cfg, "w") as f:
                f.write(sshd_config(inst, port))
            pidf = os.path.join(d, "sshd.pid")
            if os.path.exists(pidf):
                os.unlink(pidf)
            log = os.path.join(d, "sshd.log")
            p = subprocess.Popen([ST.args.sshd, "-D", "-f", cfg, "-E", log],
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            with ST.lock:
                inst.sshd = p
                inst.port = port
            end = time.time() + 10
            while time.time() < end and p.poll() is None and \
                    not os.path.exists(pidf):
                time.sleep(0.05)
            if p.poll() is None and os.path.exists(pidf):
                with ST.lock:
                    if inst.ec2_state in ("shutting-down", "terminated"):
                        stop_sshd(inst)
                        return
                    inst.sshd_ready = True
                return
            kill_tree(p.pid)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if inst.ec2_state in ("shutting-down", "terminated"):
                return      # terminated while it started
            with open(log) as f:
                text = f.read()
            if "Address already in use" not in text or \
                    ST.args.ssh_port != "auto":
                inst.sshd_error = text[-500:]
                break
    except Exception as e:     # noqa: BLE001 (reported through state)
        inst.sshd_error = str(e)
    sys.stderr.write("fake_aws: sshd for %s failed: %s\n" %
                     (inst.id, inst.sshd_error))


def descendants(pid):
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(pid):
    for p in descendants(pid) + [pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def stop_sshd(inst):
    """Terminate: the listener and every session die at once."""
    p = inst.sshd
    inst.sshd_ready = False
    if p is None:
        return
    inst.sshd = None
    kill_tree(p.pid)

    def reap():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    threading.Thread(target=reap, daemon=True).start()


# ------------------------------------------------------------ the group

def new_instance_id():
    return "i-" + secrets.token_hex(9)[:17]


def launch(g):
    """One instance for group g (lock held)."""
    if not ST.free_addrs:
        sys.stderr.write("fake_aws: no address left for %s\n" % g.name)
        return None
    addr = ST.free_addrs.pop(0)
    inst = Instance(new_instance_id(), g.name, addr,
                    ST.cfg["region"] + "a", g.arch, g.platform)
    inst.protected = g.protected
    inst.with_sshd = g.sshd
    inst.instant = g.instant
    if g.instant:
        inst.lifecycle = "InService"
        inst.ec2_state = "running"
    else:
        inst.pending_until = time.time() + float(ST.cfg["pending_seconds"])
    ST.instances[inst.id] = inst
    if g.sshd:
        threading.Thread(target=start_sshd, args=(inst,), daemon=True).start()
    return inst


def begin_terminate(inst):
    """Lock held."""
    if inst.lifecycle.startswith("Terminat"):
        return
    inst.lifecycle = "Terminating"
    inst.ec2_state = "shutting-down"
    inst.terminate_at = time.time() + float(ST.cfg["terminating_seconds"])
    stop_sshd(inst)


def group_members(g):
    return [i for i in ST.instances.values() if i.group == g.name and
            i.in_group]


def reconcile(g):
    """Lock held: launch or scale in towards the desired capacity."""
    now = time.time()
    active = [i for i in group_members(g)
              if not i.lifecycle.startswith("Terminat")]
    want = g.desired - len(active) - len(g.launch_due)
    if want > 0:
        delay = 0.0 if g.instant else float(ST.cfg["launch_delay"])
        g.launch_due += [now + delay] * want
    elif want < 0:
        drop = -want
        # Cancel launches not yet made first, then the newest unprotected.
        while drop and g.launch_due:
            g.launch_due.pop()
            drop -= 1
        for i in sorted(active, key=lambda i: -i.launched):
            if drop == 0:
                break
            if not i.protected:
                begin_terminate(i)
                drop -= 1
    due = [t for t in g.launch_due if t <= now]
    g.launch_due = [t for t in g.launch_due if t > now]
    for _ in due:
        launch(g)


def tick():
    while not ST.stopping:
        with ST.lock:
            now = time.time()
            for g in ST.groups.values():
                reconcile(g)
            for inst in list(ST.instances.values()):
                if inst.lifecycle == "Pending" and inst.ec2_state == "pending":
                    ready = inst.sshd_ready or not inst.with_sshd
                    if now >= inst.pending_until and ready:
                        inst.lifecycle = "InService"
                        inst.ec2_state = "running"
                if inst.ec2_state == "shutting-down" and \
                        now >= inst.terminate_at:
                    inst.ec2_state = "terminated"
                    inst.in_group = False
                    if inst.addr in ST.addrs:
                        ST.free_addrs.append(inst.addr)
                    inst.addr_released = True
                if inst.ic_keys and any(e <= now for _, _, e in inst.ic_keys):
                    inst.ic_keys = [k for k in inst.ic_keys if k[2] > now]
                    write_keys(inst)
        time.sleep(0.05)


# ---------------------------------------------------------- pagination

def page_token(offset, key):
    raw = json.dumps({"o": offset, "k": key}).encode()
    mac = hmac.new(ST.page_secret, raw, hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(mac + raw).decode()


def page_offset(token, key):
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        mac, body = raw[:8], raw[8:]
        if not hmac.compare_digest(
                mac, hmac.new(ST.page_secret, body, hashlib.sha256).digest()[:8]):
            return None
        d = json.loads(body)
        if d["k"] != key:
            return None
        return int(d["o"])
    except Exception:    # noqa: BLE001 (any garbage is an invalid token)
        return None


def paginate(items, params, token_name, limit, key, bad_code):
    """(page, next_token).  Offsets past an empty page are negative."""
    token = params.get(token_name)
    off = 0
    if token is not None:
        off = page_offset(token, key)
        if off is None:
            if bad_code == "InvalidPaginationToken":
                raise AwsError(bad_code, "Invalid pagination token")
            raise AwsError(bad_code, "The token '%s' is invalid." % token)
    if off < 0:     # an empty page was served: -(n empty pages so far)
        if -off < ST.cfg["empty_pages"]:
            return [], page_token(off - 1, key)
        off = 0
    elif token is None and ST.cfg["empty_pages"] > 0:
        return [], page_token(-1, key)
    size = limit
    if ST.cfg["page_size"] > 0:
        size = min(size, ST.cfg["page_size"])
    page = items[off:off + size]
    nxt = page_token(off + size, key) if off + size < len(items) else None
    return page, nxt


def params_key(params, skip):
    kv = sorted((k, v) for k, v in params.items() if k not in skip)
    return hashlib.sha256(json.dumps(kv).encode()).hexdigest()[:16]


# ------------------------------------------------------------ Auto Scaling

def as_instance_xml(i, with_group):
    s = "<member>" + x("InstanceId", i.id)
    if with_group:
        s += x("AutoScalingGroupName", i.group)
    s += (x("InstanceType", "t3.micro") + x("AvailabilityZone", i.az) +
          x("LifecycleState", i.lifecycle) + x("HealthStatus", "HEALTHY") +
          "<LaunchTemplate>" + x("LaunchTemplateId", "lt-0fa4e2a1c3d5b7f90") +
          x("LaunchTemplateName", "flotilla-test") + x("Version", "1") +
          "</LaunchTemplate>" + x("ProtectedFromScaleIn", xbool(i.protected)))
    return s + "</member>"


def group_xml(g, with_instances):
    arn = ("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:"
           "autoScalingGroupName/%s" % (ST.cfg["region"], ACCOUNT,
                                        uuid.uuid5(uuid.NAMESPACE_DNS, g.name),
                                        g.name))
    s = ["<member>", x("AutoScalingGroupName", g.name),
         x("AutoScalingGroupARN", arn),
         "<LaunchTemplate>", x("LaunchTemplateId", "lt-0fa4e2a1c3d5b7f90"),
         x("LaunchTemplateName", "flotilla-test"), x("Version", "$Latest"),
         "</LaunchTemplate>",
         x("MinSize", g.min), x("MaxSize", g.max),
         x("DesiredCapacity", g.desired), x("DefaultCooldown", 300),
         "<AvailabilityZones>", "<member>%s</member>" %
         escape(ST.cfg["region"] + "a"), "</AvailabilityZones>",
         "<LoadBalancerNames/>", "<TargetGroupARNs/>",
         x("HealthCheckType", "EC2"), x("HealthCheckGracePeriod", 300)]
    if with_instances:
        s.append("<Instances>")
        for i in group_members(g):
            s.append(as_instance_xml(i, False))
        s.append("</Instances>")
    s += [x("CreatedTime", iso_ms(g.created)),
          "<SuspendedProcesses><member>" + x("ProcessName", "AZRebalance") +
          x("SuspensionReason", "User suspended at 2024-01-01T00:00:00Z") +
          "</member></SuspendedProcesses>",
          x("VPCZoneIdentifier", "subnet-0123456789abcdef0"),
          "<EnabledMetrics/>", "<Tags>"]
    for k, v in sorted(g.tags.items()):
        s.append("<member>" + x("ResourceId", g.name) +
                 x("ResourceType", "auto-scaling-group") + x("Key", k) +
                 x("Value", v) + x("PropagateAtLaunch", "true") + "</member>")
    s += ["</Tags>", "<TerminationPolicies><member>Default</member>"
          "</TerminationPolicies>",
          x("NewInstancesProtectedFromScaleIn", xbool(g.protected)),
          x("ServiceLinkedRoleARN", "arn:aws:iam::%s:role/aws-service-role/"
            "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" % ACCOUNT),
          x("CapacityRebalance", "false"), "</member>"]
    return "".join(s)


def as_describe_groups(p):
    names = member_list(p, "AutoScalingGroupNames.member")
    mr = p.get("MaxRecords")
    limit = 50
    if mr is not None:
        limit = parse_int("MaxRecords", mr)
        if limit < 1 or limit > 100:
            raise AwsError("ValidationError", "1 validation error detected: "
                           "Value '%d' at 'maxRecords' failed to satisfy "
                           "constraint: Member must have value %s" %
                           (limit, "less than or equal to 100" if limit > 100
                            else "greater than or equal to 1"))
    include = parse_bool("IncludeInstances", p["IncludeInstances"]) \
        if "IncludeInstances" in p else True
    filters = []
    for f in struct_list(p, "Filters.member"):
        name = f.get("Name", "")
        vals = [v for k, v in sorted(f.items()) if k.startswith("Values.")]
        if not (name in ("tag-key", "tag-value") or name.startswith("tag:")):
            raise AwsError("ValidationError", "Filter name %s is invalid" %
                           name)
        filters.append((name, vals))
    with ST.lock:
        gs = sorted(ST.groups.values(), key=lambda g: g.name)
        if names:
            gs = [g for g in gs if g.name in names]
        for name, vals in filters:
            if name == "tag-key":
                gs = [g for g in gs if any(k in vals for k in g.tags)]
            elif name == "tag-value":
                gs = [g for g in gs if any(v in vals for v in g.tags.values())]
            else:
                k = name[4:]
                gs = [g for g in gs if g.tags.get(k) in vals]
        page, nxt = paginate(gs, p, "NextToken", limit,
                             params_key(p, ("NextToken", "MaxRecords")),
                             "InvalidNextToken")
        body = "<AutoScalingGroups>" + "".join(
            group_xml(g, include) for g in page) + "</AutoScalingGroups>"
    if nxt:
        body += x("NextToken", nxt)
    return body


def find_group(name):
    g = ST.groups.get(name)
    if g is None:
        raise AwsError("ValidationError", "AutoScalingGroup name not found - "
                       "AutoScalingGroup name: '%s' not found" % name)
    return g


def require(p, *names):
    for n in names:
        if n not in p:
            raise AwsError("ValidationError", "1 validation error detected: "
                           "Value null at '%s' failed to satisfy constraint: "
                           "Member must not be null" % (n[0].lower() + n[1:]))


def as_set_desired(p):
    require(p, "AutoScalingGroupName", "DesiredCapacity")
    want = parse_int("DesiredCapacity", p["DesiredCapacity"])
    honor = parse_bool("HonorCooldown", p["HonorCooldown"]) \
        if "HonorCooldown" in p else False
    if "HonorCooldown" not in p or honor:
        ST.violate("SetDesiredCapacity without HonorCooldown=false")
    with ST.lock:
        g = find_group(p["AutoScalingGroupName"])
        if want > g.max:
            raise AwsError("ValidationError", "New SetDesiredCapacity value "
                           "%d is above max value %d for the "
                           "AutoScalingGroup." % (want, g.max))
        if want < g.min:
            raise AwsError("ValidationError", "New SetDesiredCapacity value "
                           "%d is below min value %d for the "
                           "AutoScalingGroup." % (want, g.min))
        if honor and time.time() < g.last_scaling + \
                float(ST.cfg["cooldown_seconds"]):
            raise AwsError("ScalingActivityInProgress", "Scaling activity "
                           "is in progress and blocks this action: the "
                           "group is in its cooldown period.")
        g.desired = want
        g.last_scaling = time.time()
        reconcile(g)
    return ""


def as_terminate(p):
    require(p, "InstanceId", "ShouldDecrementDesiredCapacity")
    dec = parse_bool("ShouldDecrementDesiredCapacity",
                     p["ShouldDecrementDesiredCapacity"])
    iid = p["InstanceId"]
    if len(iid) > 19:
        raise AwsError("ValidationError", "1 validation error detected: "
                       "Value '%s' at 'instanceId' failed to satisfy "
                       "constraint: Member must have length less than or "
                       "equal to 19" % iid)
    with ST.lock:
        inst = ST.instances.get(iid)
        if inst is None or not inst.in_group:
            raise AwsError("ValidationError", "Instance Id not found - No "
                           "managed instance found for instance ID: %s" % iid)
        g = ST.groups[inst.group]
        before = g.desired
        if not inst.lifecycle.startswith("Terminat"):
            if dec:
                if g.desired <= g.min:
                    raise AwsError("ValidationError", "Currently, "
                                   "desiredSize equals minSize (%d). "
                                   "Terminating instance without replacement "
                                   "will violate group's min size "
                                   "constraint. Either set "
                                   "shouldDecrementDesiredCapacity flag to "
                                   "false or lower group's min size." % g.min)
                g.desired -= 1
            begin_terminate(inst)
            reconcile(g)
        now = time.time()
        cause = ("At %s instance %s was taken out of service in response to "
                 "a user request%s." %
                 (iso_s(now), iid, ", shrinking the capacity from %d to %d" %
                  (before, g.desired) if dec else ""))
        details = json.dumps({"Subnet ID": "subnet-0123456789abcdef0",
                              "Availability Zone": inst.az})
        return ("<Activity>" + x("ActivityId", str(uuid.uuid4())) +
                x("AutoScalingGroupName", g.name) +
                x("Description", "Terminating EC2 instance: %s" % iid) +
                x("Cause", cause) + x("StartTime", iso_ms(now)) +
                x("StatusCode", "InProgress") + x("Progress", 0) +
                x("Details", details) + "</Activity>")


def as_describe_instances(p):
    ids = member_list(p, "InstanceIds.member")
    limit = 50
    if "MaxRecords" in p:
        limit = parse_int("MaxRecords", p["MaxRecords"])
        if limit < 1 or limit > 50:
            raise AwsError("ValidationError", "1 validation error detected: "
                           "Value '%d' at 'maxRecords' failed to satisfy "
                           "constraint: Member must have value less than or "
                           "equal to 50" % limit)
    with ST.lock:
        items = [i for i in ST.instances.values() if i.in_group and
                 (not ids or i.id in ids)]
        page, nxt = paginate(items, p, "NextToken", limit,
                             params_key(p, ("NextToken", "MaxRecords")),
                             "InvalidNextToken")
        body = "<AutoScalingInstances>" + "".join(
            as_instance_xml(i, True) for i in page) + "</AutoScalingInstances>"
    if nxt:
        body += x("NextToken", nxt)
    return body


# ------------------------------------------------------------------ EC2

def ec2_instance_xml(i):
    s = ["<item>", x("instanceId", i.id), x("imageId", "ami-0abcdef1234567890"),
         "<instanceState>", x("code", EC2_STATE_CODE[i.ec2_state]),
         x("name", i.ec2_state), "</instanceState>"]
    live = i.ec2_state != "terminated"
    s.append(x("privateDnsName", "ip-%s.ec2.internal" % i.addr.replace(
        ".", "-")) if live else "<privateDnsName/>")
    s += ["<dnsName/>", "<reason/>" if live else
          x("reason", "User initiated (%s GMT)" % iso_s(i.terminate_at)[:-1]
            .replace("T", " ")),
          x("keyName", "flotilla-test"), x("amiLaunchIndex", 0),
          "<productCodes/>", x("instanceType", "t3.micro"),
          x("launchTime", iso_ms(i.launched)),
          "<placement>", x("availabilityZone", i.az), "<groupName/>",
          x("tenancy", "default"), "</placement>"]
    if i.platform.lower() == "windows":
        s.append(x("platform", "windows"))
    s += ["<monitoring>", x("state", "disabled"), "</monitoring>"]
    if live:
        s += [x("subnetId", "subnet-0123456789abcdef0"),
              x("vpcId", "vpc-0123456789abcdef0"),
              x("privateIpAddress", i.addr), x("ipAddress", i.addr)]
    s += [x("sourceDestCheck", "true"), "<groupSet><item>",
          x("groupId", "sg-0123456789abcdef0"), x("groupName", "default"),
          "</item></groupSet>", x("architecture", i.arch),
          x("rootDeviceType", "ebs"), x("rootDeviceName", "/dev/xvda"),
          "<blockDeviceMapping/>", x("virtualizationType", "hvm"),
          x("clientToken", ""), "<tagSet><item>",
          x("key", "aws:autoscaling:groupName"), x("value", i.group),
          "</item></tagSet>", x("hypervisor", "xen"),
          x("ebsOptimized", "false"), x("enaSupport", "true"),
          x("platformDetails", "Windows" if i.platform else "Linux/UNIX"),
          "</item>"]
    return "".join(s)


EC2_ID = re.compile(r"i-[0-9a-f]{8}([0-9a-f]{9})?$")


def ec2_describe_instances(p):
    ids = member_list(p, "InstanceId")
    filters = []
    for f in struct_list(p, "Filter"):
        name = f.get("Name")
        if name is None:
            raise AwsError("InvalidParameterValue", "The filter 'null' is "
                           "invalid")
        vals = [v for k, v in sorted(f.items(), key=lambda kv: kv[0])
                if k.startswith("Value.")]
        if name not in ("instance-id", "instance-state-name",
                        "private-ip-address", "availability-zone",
                        "tag-key") and not name.startswith("tag:"):
            raise AwsError("InvalidParameterValue", "The filter '%s' is "
                           "invalid" % name)
        filters.append((name, vals))
    if p.get("DryRun") == "true":
        raise AwsError("DryRunOperation", "Request would have succeeded, but "
                       "DryRun flag is set.", 412)
    limit = 1 << 30
    if "MaxResults" in p:
        if ids:
            raise AwsError("InvalidParameterCombination", "The parameter "
                           "instancesSet cannot be used with the parameter "
                           "maxResults")
        limit = parse_int("MaxResults", p["MaxResults"],
                          "InvalidParameterValue")
        if limit < 5 or limit > 1000:
            raise AwsError("InvalidParameterValue", "Value ( %d ) for "
                           "parameter maxResults is invalid. Expecting a "
                           "value %s." % (limit, "greater than 5"
                                          if limit < 5 else
                                          "less than or equal to 1000"))
    for i in ids:
        if not EC2_ID.match(i):
            raise AwsError("InvalidInstanceID.Malformed",
                           'Invalid id: "%s"' % i)
    with ST.lock:
        missing = [i for i in ids if i not in ST.instances]
        if missing:
            if len(missing) == 1:
                msg = "The instance ID '%s' does not exist" % missing[0]
            else:
                msg = "The instance IDs '%s' do not exist" % ", ".join(missing)
            raise AwsError("InvalidInstanceID.NotFound", msg)
        items = [i for i in ST.instances.values() if not ids or i.id in ids]
        for name, vals in filters:
            if name == "instance-id":
                items = [i for i in items if i.id in vals]
            elif name == "instance-state-name":
                items = [i for i in items if i.ec2_state in vals]
            elif name == "private-ip-address":
                items = [i for i in items if i.addr in vals and
                         i.ec2_state != "terminated"]
            elif name == "availability-zone":
                items = [i for i in items if i.az in vals]
            elif name == "tag-key":
                items = [i for i in items
                         if "aws:autoscaling:groupName" in vals]
            elif name == "tag:aws:autoscaling:groupName":
                items = [i for i in items if i.group in vals]
            else:
                items = []
        # Instance ID lists are answered whole, as EC2 does.
        if ids:
            page, nxt = items, None
        else:
            page, nxt = paginate(items, p, "NextToken", limit,
                                 params_key(p, ("NextToken", "MaxResults")),
                                 "InvalidPaginationToken")
        s = ["<reservationSet>"]
        for i in page:
            s += ["<item>", x("reservationId", i.reservation),
                  x("ownerId", ACCOUNT),
                  x("requesterId", "940372691376"), "<groupSet/>",
                  "<instancesSet>", ec2_instance_xml(i), "</instancesSet>",
                  "</item>"]
        s.append("</reservationSet>")
    if nxt:
        s.append(x("nextToken", nxt))
    return "".join(s)


# ------------------------------------------------------- Instance Connect

OS_USER = re.compile(r"[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$")
KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256",
             "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def ic_send_key(body):
    try:
        req = json.loads(body or b"null")
    except ValueError:
        raise AwsError("SerializationException", "Start of structure or map "
                       "found where not expected")
    if not isinstance(req, dict):
        raise AwsError("SerializationException", "Start of structure or map "
                       "found where not expected")
    allowed = {"InstanceId", "InstanceOSUser", "SSHPublicKey",
               "AvailabilityZone"}
    errs = []
    for k in ("InstanceId", "InstanceOSUser", "SSHPublicKey"):
        if not isinstance(req.get(k), str):
            errs.append("Value null at '%s' failed to satisfy constraint: "
                        "Member must not be null" % (k[0].lower() + k[1:]))
    for k in req:
        if k not in allowed:
            raise AwsError("SerializationException", "Unknown field %s" % k)
    if errs:
        raise AwsError("ValidationException", "%d validation error%s "
                       "detected: %s" % (len(errs), "s" if len(errs) > 1 else
                                         "", "; ".join(errs)))
    iid, user, key = req["InstanceId"], req["InstanceOSUser"], \
        req["SSHPublicKey"]
    az = req.get("AvailabilityZone")
    if not re.fullmatch(r"i-[a-f0-9]+", iid) or len(iid) > 32:
        raise AwsError("ValidationException", "1 validation error detected: "
                       "Value '%s' at 'instanceId' failed to satisfy "
                       "constraint: Member must satisfy regular expression "
                       "pattern: ^i-[a-f0-9]+$" % iid)
    if not OS_USER.match(user) or len(user) > 32:
        raise AwsError("ValidationException", "1 validation error detected: "
                       "Value '%s' at 'instanceOSUser' failed to satisfy "
                       "constraint: Member must satisfy regular expression "
                       "pattern" % user)
    if len(key) < 80 or len(key) > 4096:
        raise AwsError("ValidationException", "1 validation error detected: "
                       "Value at 'sSHPublicKey' failed to satisfy constraint: "
                       "Member must have length between 80 and 4096")
    parts = key.strip().split()
    ok = len(parts) >= 2 and parts[0] in KEY_TYPES
    if ok:
        try:
            blob = base64.b64decode(parts[1], validate=True)
            n = int.from_bytes(blob[:4], "big")
            ok = blob[4:4 + n].decode() == parts[0]
        except Exception:    # noqa: BLE001 (any garbage is invalid)
            ok = False
    if not ok:
        raise AwsError("InvalidArgsException", "Unsupported key format or "
                       "invalid key.")
    with ST.lock:
        inst = ST.instances.get(iid)
        if inst is None or (az is not None and az != inst.az):
            raise AwsError("EC2InstanceNotFoundException", "Instance not "
                           "found")
        if inst.ec2_state != "running":
            raise AwsError("EC2InstanceStateInvalidException", "Instance "
                           "is not in correct state")
        inst.ic_keys.append((user, " ".join(parts[:2]) + " ec2-instance-"
                             "connect", time.time() +
                             float(ST.cfg["ic_key_seconds"])))
        write_keys(inst)
    return {"RequestId": request_id(), "Success": True}


# ------------------------------------------------------------------ STS

def sts_assume_web_identity(p):
    require(p, "RoleArn", "RoleSessionName", "WebIdentityToken")
    arn = p["RoleArn"]
    sess = p["RoleSessionName"]
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn):
        raise AwsError("ValidationError", "%s is invalid" % arn)
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", sess):
        raise AwsError("ValidationError", "1 validation error detected: "
                       "Value '%s' at 'roleSessionName' failed to satisfy "
                       "constraint: Member must satisfy regular expression "
                       "pattern: [\\w+=,.@-]*" % sess)
    dur = 3600
    if "DurationSeconds" in p:
        dur = parse_int("DurationSeconds", p["DurationSeconds"])
        if dur < 900 or dur > 43200:
            raise AwsError("ValidationError", "1 validation error detected: "
                           "Value '%d' at 'durationSeconds' failed to satisfy "
                           "constraint" % dur)
        if dur > 3600:
            raise AwsError("ValidationError", "The requested DurationSeconds "
                           "exceeds the MaxSessionDuration set for this "
                           "role.")
    with ST.lock:
        want = ST.cfg["sts_token"]
        if not want or not hmac.compare_digest(
                want.encode(), p["WebIdentityToken"].encode()):
            raise AwsError("InvalidIdentityToken", "Couldn't retrieve "
                           "verification key from your identity provider,  "
                           "please reference AssumeRoleWithWebIdentity "
                           "documentation for requirements")
        if ST.cfg["sts_role_arn"] and ST.cfg["sts_role_arn"] != arn:
            raise AwsError("AccessDenied", "Not authorized to perform "
                           "sts:AssumeRoleWithWebIdentity", 403)
        life = float(ST.cfg["sts_expires_in"] or dur)
        c = ST.new_temp_cred(life, "sts")
        ST.sts_count += 1
    role = arn.rsplit("/", 1)[1]
    return ("<SubjectFromWebIdentityToken>system:serviceaccount:runner:"
            "flotilla</SubjectFromWebIdentityToken>" +
            x("Audience", "sts.amazonaws.com") +
            "<AssumedRoleUser>" +
            x("AssumedRoleId", "AROA3XFRBF535PLBIFPI4:" + sess) +
            x("Arn", "arn:aws:sts::%s:assumed-role/%s/%s" % (ACCOUNT, role,
                                                             sess)) +
            "</AssumedRoleUser><Credentials>" +
            x("SessionToken", c.token) + x("SecretAccessKey", c.secret) +
            x("Expiration", iso_s(c.expires)) + x("AccessKeyId", c.akid) +
            "</Credentials>" + x("Provider", "oidc.eks.amazonaws.com"))


# ---------------------------------------------------------------- SigV4

AUTH_RX = re.compile(r"AWS4-HMAC-SHA256 (.*)$", re.S)


def canonical_query(raw):
    if not raw:
        return ""
    pairs = []
    for part in raw.split("&"):
        k, _, v = part.partition("=")
        pairs.append((quote(urllib.parse.unquote(k)),
                      quote(urllib.parse.unquote(v))))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def verify_sigv4(h, body, service):
    """The request's Cred, or AuthError.  h: the handler."""
    auth_all = h.headers.get_all("Authorization") or []
    path, _, rawq = h.path.partition("?")
    if not auth_all:
        if "X-Amz-Algorithm" in rawq or "X-Amz-Signature" in rawq:
            raise AuthError("incomplete", "Presigned (query string) "
                            "requests are not accepted by this fake")
        raise AuthError("missing", "Request is missing Authentication Token")
    if len(auth_all) > 1:
        ST.violate("two Authorization headers")
        raise AuthError("incomplete", "More than one Authorization header")
    auth = auth_all[0]
    m = AUTH_RX.match(auth)
    if not m:
        algo = auth.split(" ", 1)[0]
        raise AuthError("incomplete", "Unsupported AWS 'algorithm': '%s'" %
                        algo)
    fields = {}
    for part in m.group(1).split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    missing = [k for k in ("Credential", "SignedHeaders", "Signature")
               if not fields.get(k)]
    if missing:
        raise AuthError("incomplete", " ".join(
            "Authorization header requires '%s' parameter." % k
            for k in missing) + " Authorization=%s" % auth.split(
                "Signature=")[0])
    cparts = fields["Credential"].split("/")
    if len(cparts) != 5:
        raise AuthError("incomplete", "Credential must have exactly 5 "
                        "slash-delimited elements, e.g. keyid/date/region/"
                        "service/term, got '%s'" % fields["Credential"])
    akid, cdate, cregion, csvc, term = cparts
    dates = h.headers.get_all("X-Amz-Date") or []
    if len(dates) != 1:
        if len(dates) > 1:
            ST.violate("X-Amz-Date sent %d times" % len(dates))
            raise AuthError("incomplete", "X-Amz-Date appears %d times" %
                            len(dates))
        raise AuthError("incomplete", "Authorization header requires "
                        "existence of either a 'X-Amz-Date' or a 'Date' "
                        "header.")
    amzdate = dates[0].strip()
    try:
        t = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        raise AuthError("incomplete", "Date must be in ISO-8601 'basic "
                        "format'. Got '%s'." % amzdate)
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        raise AuthError("incomplete", "'Host' or ':authority' must be a "
                        "'SignedHeader' in the AWS Authorization.")
    if "x-amz-date" not in signed:
        raise AuthError("incomplete", "'X-Amz-Date' must be a "
                        "'SignedHeader' in the AWS Authorization.")
    with ST.lock:
        cred = ST.creds.get(akid)
    if cred is None:
        raise AuthError("unknown_key", "The security token included in the "
                        "request is invalid.")
    if cdate != amzdate[:8]:
        raise AuthError("scope", "Date in Credential scope does not match "
                        "YYYYMMDD from ISO-8601 version of date from HTTP: "
                        "'%s' != '%s', from 'X-Amz-Date'." %
                        (cdate, amzdate[:8]))
    if cregion != ST.cfg["region"]:
        raise AuthError("scope", "Credential should be scoped to a valid "
                        "region. ")
    if csvc != SIGNING_NAME[service]:
        raise AuthError("scope", "Credential should be scoped to correct "
                        "service: '%s'. " % SIGNING_NAME[service])
    if term != "aws4_request":
        raise AuthError("scope", "Credential should be scoped with a valid "
                        "terminator: 'aws4_request', not '%s'." % term)
    skew = float(ST.cfg["max_skew_seconds"])
    now = time.time()
    if abs(now - t) > skew:
        raise AuthError("skew", "Signature expired: %s is now earlier than "
                        "%s (%s - 15 min.)" % (
                            amzdate, time.strftime(
                                "%Y%m%dT%H%M%SZ", time.gmtime(now - skew)),
                            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)))
                        if t < now else
                        "Signature not yet current: %s is still later than "
                        "%s" % (amzdate, time.strftime(
                            "%Y%m%dT%H%M%SZ", time.gmtime(now + skew))))
    tokens = h.headers.get_all("X-Amz-Security-Token") or []
    if len(tokens) > 1:
        ST.violate("X-Amz-Security-Token sent twice")
        raise AuthError("bad_token", "The security token included in the "
                        "request is invalid.")
    if tokens and "x-amz-security-token" not in signed:
        ST.violate("X-Amz-Security-Token not signed")
    # The signature itself.
    lines = []
    for name in signed:
        vals = h.headers.get_all(name)
        if vals is None:
            raise AuthError("mismatch", "The request signature we calculated "
                            "does not match the signature you provided: "
                            "signed header '%s' is missing" % name)
        lines.append("%s:%s" % (name, ",".join(" ".join(v.split())
                                                for v in vals)))
    ph = hashlib.sha256(body).hexdigest()
    sent_ph = h.headers.get("X-Amz-Content-Sha256")
    if sent_ph is not None and sent_ph != ph:
        raise AuthError("mismatch", "The provided 'x-amz-content-sha256' "
                        "header does not match what was computed.")
    creq = "\n".join([h.command,
                      quote(remove_dot_segments(urllib.parse.unquote(path)),
                            safe="/~"),
                      canonical_query(rawq),
                      "\n".join(lines) + "\n",
                      fields["SignedHeaders"], ph])
    scope = "/".join(cparts[1:])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = hmac256(("AWS4" + cred.secret).encode(), cdate)
    k = hmac256(k, cregion)
    k = hmac256(k, csvc)
    k = hmac256(k, "aws4_request")
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, fields["Signature"]):
        raise AuthError("mismatch", "The request signature we calculated "
                        "does not match the signature you provided. Check "
                        "your AWS Secret Access Key and signing method. "
                        "Consult the service documentation for details.",
                        {"canonical_request": creq, "string_to_sign": sts})
    # Session tokens, after the signature (as AWS reports them).
    if cred.token is not None:
        if not tokens or not hmac.compare_digest(tokens[0].encode(),
                                                 cred.token.encode()):
            raise AuthError("bad_token", "The security token included in "
                            "the request is invalid.")
        if cred.expires is not None and time.time() >= cred.expires:
            raise AuthError("expired_token", "The security token included "
                            "in the request is expired" if service != "ec2"
                            else "Request has expired.")
    elif tokens:
        raise AuthError("bad_token", "The security token included in the "
                        "request is invalid.")
    return cred


# ------------------------------------------------------------- handlers

THROTTLE = {"autoscaling": ("Throttling", "Rate exceeded", 400),
            "sts": ("Throttling", "Rate exceeded", 400),
            "ec2": ("RequestLimitExceeded", "Request limit exceeded.", 503),
            "ic": ("ThrottlingException", "Rate exceeded", 400)}


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "AmazonEC2"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        n = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(16)
                if len(out) > MAX_BODY:
                    raise ValueError("body too big")
        if n is None:
            return b""
        n = int(n)
        if n > MAX_BODY:
            raise ValueError("body too big")
        return self.rfile.read(n)

    def send(self, status, body, ctype, extra=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj):
        self.send(status, json.dumps(obj, indent=1) + "\n",
                  "application/json")

    # --- errors in each protocol's shape
    def send_error_as(self, service, code, message, status, rid):
        proto = PROTOCOL.get(service, "query")
        if code == "":
            self.send(status, b"", "text/plain", {"x-amzn-RequestId": rid})
        elif proto == "ec2":
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response>'
                    "<Errors><Error>" + x("Code", code) +
                    x("Message", message) + "</Error></Errors>" +
                    x("RequestID", rid) + "</Response>")
            self.send(status, body, "text/xml;charset=UTF-8")
        elif proto == "json":
            self.send(status, json.dumps({"__type": code, "Message": message}),
                      "application/x-amz-json-1.1",
                      {"x-amzn-RequestId": rid, "x-amzn-ErrorType": code})
        else:
            ns = NS_STS if service == "sts" else NS_AS
            body = ('<ErrorResponse xmlns="%s"><Error>' % ns +
                    x("Type", "Receiver" if status >= 500 else "Sender") +
                    x("Code", code) + x("Message", message) + "</Error>" +
                    x("RequestId", rid) + "</ErrorResponse>\n")
            self.send(status, body, "text/xml", {"x-amzn-RequestId": rid})

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.send(413, b"", "text/plain")
            self.close_connection = True
            return
        if self.path.startswith("/__fake/"):
            try:
                control(self, body)
            except Exception as e:     # noqa: BLE001 (shown to the test)
                self.send_json(400, {"error": str(e)})
            return
        self.api(body)

    def api(self, body):
        rid = request_id()
        target = self.headers.get("X-Amz-Target")
        params = {}
        if target is not None:
            service = "ic"
            action = target[len(IC_TARGET):] if target.startswith(
                IC_TARGET) else target
        else:
            ctype = self.headers.get("Content-Type", "")
            if self.command == "POST":
                if not ctype.startswith("application/x-www-form-urlencoded"):
                    ST.violate("Query POST with Content-Type %r" % ctype)
                raw = body.decode("utf-8", "replace")
            else:
                raw = self.path.partition("?")[2]
            try:
                pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True,
                                               strict_parsing=bool(raw))
            except ValueError:
                pairs = []
            for k, v in pairs:
                if k in params:
                    ST.violate("parameter %s given twice" % k)
                params[k] = v
            action = params.get("Action", "")
            service = VERSIONS.get(params.get("Version", ""), "autoscaling")
        entry = {"time": round(time.time(), 3), "service": service,
                 "action": action, "method": self.command}
        with ST.lock:
            ST.total += 1
            ST.counts[action] = ST.counts.get(action, 0) + 1

        def reject(code, message, status, detail=None):
            with ST.lock:
                ST.rejected[action] = ST.rejected.get(action, 0) + 1
            entry.update(status=status, code=code, reason=message)
            if detail:
                entry.update(detail)
            ST.record(entry)
            self.send_error_as(service, code, message, status, rid)

        if action not in OPS[service]:
            if service == "ic":
                return reject("UnknownOperationException", "", 400)
            if service == "ec2":
                return reject("InvalidAction", "The action %s is not valid "
                              "for this web service." % action, 400)
            return reject("InvalidAction", "Could not find operation %s for "
                          "version %s" % (action, params.get("Version")), 400)
        cred = None
        if action != "AssumeRoleWithWebIdentity" or \
                self.headers.get("Authorization"):
            try:
                cred = verify_sigv4(self, body, service)
            except AuthError as e:
                code, status = AUTH_CODES[PROTOCOL[service]][e.kind]
                msg = e.message
                if service == "ec2" and code == "AuthFailure":
                    msg = EC2_AUTH_MESSAGE
                entry["key_id"] = self.key_id_of()
                return reject(code, msg, status,
                              dict(e.detail, why=e.message))
            entry["key_id"] = cred.akid
        if service == "ic" and self.headers.get("Content-Type", "") != \
                "application/x-amz-json-1.1":
            ST.violate("SendSSHPublicKey with Content-Type %r" %
                       self.headers.get("Content-Type"))
        # Unknown parameters.
        if service != "ic":
            for k in params:
                if k in ("Action", "Version"):
                    continue
                if not any(re.fullmatch(rx, k) for rx in PARAMS[action]):
                    if service == "ec2":
                        return reject("UnknownParameter", "The parameter %s "
                                      "is not recognized" % k, 400)
                    return reject("ValidationError", "Unrecognized "
                                  "parameter: %s" % k, 400)
        # Injected faults.
        with ST.lock:
            inj = None
            for j in ST.injections:
                if j["action"] in (action, "*") and j["count"] > 0:
                    j["count"] -= 1
                    inj = j
                    break
            ST.injections = [j for j in ST.injections if j["count"] > 0]
        if inj is not None:
            code, msg, status = inj["code"], inj["message"], inj["status"]
            if code is None:
                code, msg, status = THROTTLE[service]
            return reject(code, msg or "", status)
        try:
            if action == "DescribeAutoScalingGroups":
                out = as_describe_groups(params)
            elif action == "SetDesiredCapacity":
                out = as_set_desired(params)
            elif action == "TerminateInstanceInAutoScalingGroup":
                out = as_terminate(params)
            elif action == "DescribeAutoScalingInstances":
                out = as_describe_instances(params)
            elif action == "DescribeInstances":
                out = ec2_describe_instances(params)
            elif action == "AssumeRoleWithWebIdentity":
                out = sts_assume_web_identity(params)
            else:
                out = ic_send_key(body)
        except AwsError as e:
            return reject(e.code, e.message, e.status)
        entry["status"] = 200
        ST.record(entry)
        if service == "ic":
            self.send(200, json.dumps(out), "application/x-amz-json-1.1",
                      {"x-amzn-RequestId": rid})
        elif service == "ec2":
            self.send(200, '<?xml version="1.0" encoding="UTF-8"?>\n'
                      '<%sResponse xmlns="%s">' % (action, NS_EC2) +
                      x("requestId", rid) + out + "</%sResponse>" % action,
                      "text/xml;charset=UTF-8")
        else:
            ns = NS_STS if service == "sts" else NS_AS
            result = ("<%sResult>%s</%sResult>" % (action, out, action)
                      if out or action != "SetDesiredCapacity" else "")
            self.send(200, '<%sResponse xmlns="%s">' % (action, ns) + result +
                      "<ResponseMetadata>" + x("RequestId", rid) +
                      "</ResponseMetadata></%sResponse>\n" % action,
                      "text/xml", {"x-amzn-RequestId": rid})

    def key_id_of(self):
        m = re.search(r"Credential=([A-Z0-9]+)/", self.headers.get(
            "Authorization", ""))
        return m.group(1) if m else ""


# ---------------------------------------------------------- control API

def instance_json(i):
    return {"id": i.id, "group": i.group, "in_group": i.in_group,
            "lifecycle": i.lifecycle, "state": i.ec2_state, "addr": i.addr,
            "port": i.port, "az": i.az, "protected": i.protected,
            "sshd_pid": i.sshd.pid if i.sshd else None,
            "sshd_ready": i.sshd_ready, "sshd_error": i.sshd_error,
            "dir": i.dir,
            "keys": sorted(os.listdir(os.path.join(i.dir, "keys")))
            if i.dir and os.path.isdir(os.path.join(i.dir, "keys")) else [],
            "ic_keys": [{"user": u, "expires": round(e, 3)}
                        for u, _, e in i.ic_keys]}


def group_json(g):
    return {"name": g.name, "min": g.min, "max": g.max, "desired": g.desired,
            "protected": g.protected, "sshd": g.sshd, "instant": g.instant,
            "architecture": g.arch, "platform": g.platform,
            "instances": [instance_json(i) for i in group_members(g)]}


def set_group(d):
    with ST.lock:
        name = d["name"]
        g = ST.groups.get(name)
        if g is None:
            g = ST.groups[name] = Group(name)
        for key, attr in (("min", "min"), ("max", "max")):
            if key in d:
                setattr(g, attr, int(d[key]))
        for key, attr in (("protected", "protected"), ("sshd", "sshd"),
                          ("instant", "instant")):
            if key in d:
                setattr(g, attr, bool(d[key]))
        if "architecture" in d:
            g.arch = d["architecture"]
        if "platform" in d:
            g.platform = d["platform"]
        if "tags" in d:
            g.tags = dict(d["tags"])
        if "desired" in d:
            g.desired = int(d["desired"])
        reconcile(g)
        return group_json(g)


def imds_session(force=False):
    """Lock held: the current IMDS session, rotated when near its end."""
    im = ST.imds
    c = im["session"]
    life = float(im["expires_in"])
    before = im["rotate_before"]
    if before is None:
        before = life / 3.0
    if force or c is None or c.expires - time.time() < float(before):
        c = im["session"] = ST.new_temp_cred(life, "imds")
        c.issued = time.time()
        ST.imds_counts["sessions"] += 1
    return c


def control(h, body):
    path, _, q = h.path.partition("?")
    qs = dict(urllib.parse.parse_qsl(q))
    d = json.loads(body) if body.strip() else {}
    d.update(qs)
    m = h.command
    if path == "/__fake/health":
        return h.send_json(200, {"ok": True})
    if path == "/__fake/config":
        if m == "POST":
            with ST.lock:
                for k, v in d.items():
                    if k not in ST.cfg:
                        return h.send_json(400, {"error": "unknown key " + k})
                    ST.cfg[k] = type(ST.cfg[k])(v) if not isinstance(
                        ST.cfg[k], float) else float(v)
        with ST.lock:
            c = dict(ST.cfg)
        c["sts_token"] = "set" if c["sts_token"] else ""
        return h.send_json(200, c)
    if path == "/__fake/credentials":
        with ST.lock:
            if m == "POST":
                exp = d.get("expires_in")
                c = Cred(d["access_key_id"], d["secret_access_key"],
                         d.get("session_token"),
                         time.time() + float(exp) if exp is not None
                         else None, "added")
                ST.creds[c.akid] = c
            out = [{"access_key_id": c.akid, "kind": c.kind,
                    "session": c.token is not None, "expires": c.expires}
                   for c in ST.creds.values()]
        return h.send_json(200, out)
    if path == "/__fake/expire" and m == "POST":
        n = 0
        with ST.lock:
            for c in ST.creds.values():
                if (d.get("access_key_id") == c.akid) or \
                        ("access_key_id" not in d and c.token is not None):
                    c.expires = time.time() - 1
                    n += 1
        return h.send_json(200, {"expired": n})
    if path in ("/__fake/inject", "/__fake/throttle") and m == "POST":
        j = {"action": d.get("action", "*"), "count": int(d.get("count", 1)),
             "code": d.get("code") if path == "/__fake/inject" else None,
             "message": d.get("message", ""),
             "status": int(d.get("status", 400))}
        if path == "/__fake/inject" and j["code"] is None:
            return h.send_json(400, {"error": "code is required (\"\" for "
                                     "a bare status)"})
        with ST.lock:
            ST.injections.append(j)
        return h.send_json(200, j)
    if path == "/__fake/counts":
        with ST.lock:
            return h.send_json(200, {"actions": dict(ST.counts),
                                     "rejected": dict(ST.rejected),
                                     "total": ST.total, "sts": ST.sts_count,
                                     "imds": dict(ST.imds_counts)})
    if path == "/__fake/counts/reset" and m == "POST":
        with ST.lock:
            ST.counts, ST.rejected, ST.total = {}, {}, 0
            ST.imds_counts = {"token": 0, "get": 0, "sessions": 0}
            ST.sts_count = 0
        return h.send_json(200, {"ok": True})
    if path == "/__fake/requests":
        with ST.lock:
            return h.send_json(200, list(ST.requests))
    if path == "/__fake/violations":
        with ST.lock:
            return h.send_json(200, list(ST.violations))
    if path == "/__fake/group" and m == "POST":
        return h.send_json(200, set_group(d))
    if path == "/__fake/groups":
        with ST.lock:
            return h.send_json(200, [group_json(g)
                                     for g in ST.groups.values()])
    if path == "/__fake/instances":
        with ST.lock:
            return h.send_json(200, [instance_json(i)
                                     for i in ST.instances.values()])
    mm = re.fullmatch(r"/__fake/instances/(i-[0-9a-f]+)/(remove|lifecycle)",
                      path)
    if mm and m == "POST":
        with ST.lock:
            inst = ST.instances.get(mm.group(1))
            if inst is None:
                return h.send_json(404, {"error": "no such instance"})
            if mm.group(2) == "remove":
                begin_terminate(inst)
                g = ST.groups.get(inst.group)
                if g is not None:
                    reconcile(g)
            else:
                inst.lifecycle = d["state"]
            return h.send_json(200, instance_json(inst))
    if path == "/__fake/imds":
        with ST.lock:
            im = ST.imds
            if m == "POST":
                for k in ("expires_in", "rotate_before"):
                    if k in d:
                        im[k] = float(d[k]) if d[k] is not None else None
                for k in ("region", "role", "az"):
                    if k in d:
                        im[k] = d[k]
                if d.get("rotate"):
                    imds_session(True)
            c = im["session"]
            return h.send_json(200, {
                "expires_in": im["expires_in"], "role": im["role"],
                "rotate_before": im["rotate_before"],
                "region": im["region"],
                "access_key_id": c.akid if c else None,
                "expiration": iso_s(c.expires) if c else None})
    if path == "/__fake/shutdown" and m == "POST":
        h.send_json(200, {"ok": True})
        threading.Thread(target=shutdown, daemon=True).start()
        return None
    return h.send_json(404, {"error": "no such control " + path})


# ----------------------------------------------------------------- IMDS

class Imds(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def send(self, status, text, ctype="text/plain"):
        b = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(min(n, MAX_BODY))
        if self.path != "/latest/api/token":
            return self.send(404, "Not Found")
        if self.headers.get("X-Forwarded-For"):
            return self.send(403, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.send(400, "Bad Request")
        tok = base64.urlsafe_b64encode(secrets.token_bytes(40)).decode()
        with ST.lock:
            ST.imds["tokens"][tok] = time.time() + int(ttl)
            ST.imds_counts["token"] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", ttl)
        self.send_header("Content-Length", str(len(tok)))
        self.end_headers()
        self.wfile.write(tok.encode())

    def do_GET(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        with ST.lock:
            ST.imds_counts["get"] += 1
            exp = ST.imds["tokens"].get(tok or "")
            if exp is None or exp < time.time():
                return self.send(401, "Unauthorized")
            im = ST.imds
            base = "/latest/meta-data/iam/security-credentials/"
            if self.path == base:
                return self.send(200, im["role"])
            if self.path == base + im["role"]:
                c = imds_session()
                doc = {"Code": "Success",
                       "LastUpdated": iso_s(getattr(c, "issued",
                                                    time.time())),
                       "Type": "AWS-HMAC", "AccessKeyId": c.akid,
                       "SecretAccessKey": c.secret, "Token": c.token,
                       "Expiration": iso_s(c.expires)}
                return self.send(200, json.dumps(doc, indent=2))
            simple = {"/latest/meta-data/placement/region": im["region"],
                      "/latest/meta-data/placement/availability-zone":
                      im["az"],
                      "/latest/meta-data/instance-id": "i-0123456789abcdef0"}
            if self.path in simple:
                return self.send(200, simple[self.path])
        self.send(404, "Not Found")

    def do_POST(self):
        self.send(405, "Method Not Allowed")


# ----------------------------------------------------------------- main

SERVERS = []


def shutdown():
    ST.stopping = True
    with ST.lock:
        for i in ST.instances.values():
            stop_sshd(i)
    for s in SERVERS:
        threading.Thread(target=s.shutdown, daemon=True).start()


def serve(srv):
    srv.serve_forever(poll_interval=0.2)


def main():
    global ST
    ap = argparse.ArgumentParser(description="strict fake AWS for tests")
    ap.add_argument("--dir", required=True, help="working directory "
                    "(instances' sshd files)")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--imds-port", type=int, default=0)
    ap.add_argument("--imds-port-file")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--group", help="create this Auto Scaling group")
    ap.add_argument("--min", type=int, default=0)
    ap.add_argument("--max", type=int, default=10)
    ap.add_argument("--desired", type=int, default=0)
    ap.add_argument("--no-sshd", action="store_true")
    ap.add_argument("--addrs", default="127.0.100.1-127.0.101.254")
    ap.add_argument("--ssh-port", default="auto")
    ap.add_argument("--sshd", default="/usr/sbin/sshd")
    ap.add_argument("--launch-key")
    ap.add_argument("--launch-user", default="root")
    ap.add_argument("--pending-seconds", type=float, default=1.0)
    ap.add_argument("--terminating-seconds", type=float, default=0.5)
    args = ap.parse_args()
    if not args.listen.startswith("127."):
        raise SystemExit("fake_aws: listen on 127.0.0.0/8 only")
    os.makedirs(args.dir, exist_ok=True)
    ST = State(args)
    if args.group:
        set_group({"name": args.group, "min": args.min, "max": args.max,
                   "desired": args.desired, "sshd": not args.no_sshd})
    ThreadingHTTPServer.daemon_threads = True
    api = ThreadingHTTPServer((args.listen, args.port), Api)
    SERVERS.append(api)
    imds = None
    if args.imds_port_file:
        imds = ThreadingHTTPServer((args.listen, args.imds_port), Imds)
        SERVERS.append(imds)

    def on_signal(signum, frame):
        shutdown()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=tick, daemon=True).start()
    if imds is not None:
        threading.Thread(target=serve, args=(imds,), daemon=True).start()
        with open(args.imds_port_file + ".tmp", "w") as f:
            f.write("%d\n" % imds.server_address[1])
        os.rename(args.imds_port_file + ".tmp", args.imds_port_file)
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % api.server_address[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    serve(api)
    ST.stopping = True
    with ST.lock:
        for i in ST.instances.values():
            stop_sshd(i)
    time.sleep(0.2)


if __name__ == "__main__":
    main()
