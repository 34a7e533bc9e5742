#!/bin/sh
# The seed document's AWS example (tests/data/seed-aws.toml), run by
# `flotilla run` end to end against the fakes, with only the url, the token
# and the endpoints changed:
#   - url and token: the fake GitLab's (tests/fakes/fake_gitlab.py);
#   - the AWS endpoints: AWS_ENDPOINT_URL and
#     AWS_EC2_METADATA_SERVICE_ENDPOINT, the SDKs' own variables, point at
#     the strict fake (tests/fakes/fake_aws.py).  The seed names profile
#     "default" in /home/user/.aws files a runner host on EC2 with an IAM
#     role does not have: credentials and region come from the instance
#     metadata, as they would there;
#   - the Docker endpoint: [runners.docker] host, the test engine's socket
#     on each instance, since it is not /var/run/docker.sock.
# The test checks that the config differs from the seed in those lines
# only.  Everything else is the seed's: plugin = "aws" (found on PATH),
# capacity_per_instance 1, max_use_count 1, max_instances 10, idle_count 5
# for 20 minutes, connector user ec2-user with the instances' public
# addresses and EC2 Instance Connect keys (use_static_credentials is
# unset), image busybox:latest pulled with the default policy, always:
# a real registry (Debian's docker-registry) serves it as the engine's
# Docker Hub mirror.
#
# The fake's instances are real sshd on 127.0.100.N:22 that let ec2-user
# in with the keys pushed by SendSSHPublicKey; that OS user is created for
# the test (and removed after) and given the test engine's socket.  Needs
# root and port 22 free on 127.0.100.N: otherwise every check is skipped.
set -u
. "$TOP/tests/lib/e2e.sh"
PLAN=16

if [ "$(id -u)" -ne 0 ] || ! tl_port_free 127.0.100.1 22 ||
    [ ! -x /usr/bin/docker-registry ] || [ -e /home/user/.aws ]; then
	why="needs root, port 22 free on 127.0.100.1, docker-registry and no /home/user/.aws"
	echo "1..$PLAN"
	i=1
	while [ $i -le $PLAN ]; do echo "ok $i - # SKIP $why"; i=$((i + 1)); done
	exit 0
fi

SEED=$TOP/tests/data/seed-aws.toml
OSUSER=ec2-user
OSUSER_MARK="flotilla run_aws test user"
GROUP=my-docker-asg
REGION=eu-central-1
AWS_PID=
REG_PID=
made_user=0

e2e_harness run_aws $PLAN
# e2e_harness's cleanup, then ours.
aws_cleanup() {
	e2e_stop
	if [ -n "$AWS_PID" ]; then
		curl -s "$AWS_E/__fake/requests" >"$TMP/aws-requests.log" 2>/dev/null
		tl_stop 10 "$AWS_PID"
	fi
	[ -n "$REG_PID" ] && tl_stop 10 "$REG_PID"
	e2e_cleanup
	if [ $made_user -eq 1 ]; then
		userdel "$OSUSER" 2>/dev/null
	fi
}
trap aws_cleanup EXIT
chmod 711 "$TMP"

# ec2-user, as on Amazon Linux: made for the test unless it exists.  An
# unlocked account ('*': no password, keys only), so that sshd lets it in.
if ! getent passwd "$OSUSER" >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent \
	    --shell /bin/sh --password '*' --comment "$OSUSER_MARK" "$OSUSER" &&
	    made_user=1
elif [ "$(getent passwd "$OSUSER" | cut -d: -f5)" = "$OSUSER_MARK" ]; then
	made_user=1	# left by an interrupted run: ours to remove
fi
getent passwd "$OSUSER" >/dev/null
check $? "the OS user $OSUSER exists on the instances"

# The registry: busybox:latest for the engine, as Docker Hub would.
RPORT=$(tl_free_port 127.0.0.1)
mkdir -p "$TMP/registry"
cat >"$TMP/registry.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $TMP/registry
http:
  addr: 127.0.0.1:$RPORT
EOF
/usr/bin/docker-registry serve "$TMP/registry.yml" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
DOCKERD_JSON_EXTRA="\"registry-mirrors\": [\"http://127.0.0.1:$RPORT\"]"
e2e_infra &&
    tl_wait 20 curl -fsS -o /dev/null "http://127.0.0.1:$RPORT/v2/" &&
    "$DOCKER" tag flotilla-test-busybox "127.0.0.1:$RPORT/library/busybox:latest" &&
    "$DOCKER" push -q "127.0.0.1:$RPORT/library/busybox:latest" >/dev/null &&
    "$DOCKER" rmi "127.0.0.1:$RPORT/library/busybox:latest" >/dev/null &&
    ! "$DOCKER" image inspect busybox:latest >/dev/null 2>&1
check $? "a Docker engine whose Docker Hub mirror serves busybox:latest, and the fake GitLab"
# The instances reach the engine as ec2-user.
chgrp "$(id -g "$OSUSER")" "$TMP/docker/docker.sock" &&
    chmod 660 "$TMP/docker/docker.sock" && chmod 711 "$TMP/docker"

# The fake AWS: the group of the seed's plugin_config name, and an IAM
# role's credentials from the instance metadata.
mkdir -p "$TMP/aws"
FAKE_AWS_CREDENTIALS="AKIAUNUSED0000000000:$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
    /usr/bin/python3 "$TOP/tests/fakes/fake_aws.py" --dir "$TMP/aws" \
    --port-file "$TMP/aws.port" --imds-port-file "$TMP/imds.port" \
    --region "$REGION" --group "$GROUP" --min 0 --max 10 --desired 0 \
    --addrs 127.0.100.1-127.0.100.60 --pending-seconds 1 \
    >"$TMP/fake-aws.log" 2>&1 &
AWS_PID=$!
tl_wait 20 test -s "$TMP/aws.port" && tl_wait 20 test -s "$TMP/imds.port"
check $? "the fake AWS (Auto Scaling, EC2, Instance Connect, IMDS) answers"
AWS_E=http://127.0.0.1:$(cat "$TMP/aws.port")

# The seed, with url, token and the Docker endpoint changed; nothing else.
sed -e "s|^url = .*|url = \"$URL\"|" \
    -e "s|^token = .*|token = \"$TOKEN\"|" \
    -e "s|^\\[runners.docker\\]\$|&\\nhost = \"unix://$TMP/docker/docker.sock\"|" \
    "$SEED" >"$TMP/config.toml"
chmod 600 "$TMP/config.toml"
diff "$SEED" "$TMP/config.toml" | grep '^[<>]' | sed 's/"[^"]*"/"..."/' |
    sort >"$TMP/diff.out"
printf '%s\n' '< token = "..."' '< url = "..."' '> host = "..."' \
    '> token = "..."' '> url = "..."' | sort >"$TMP/diff.want"
cmp -s "$TMP/diff.out" "$TMP/diff.want"
check $? "the config is the seed with only url, token and the Docker host changed"

# The environment: the AWS SDKs' endpoint variables, and the build's
# plugins on PATH (plugin = "aws" is fleeting-plugin-aws).
AWS_ENDPOINT_URL=$AWS_E
AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$(cat "$TMP/imds.port")
PATH=$BUILD/bin:$PATH
export AWS_ENDPOINT_URL AWS_EC2_METADATA_SERVICE_ENDPOINT PATH
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE \
    AWS_REGION AWS_DEFAULT_REGION AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE \
    AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
e2e_start "$TMP/config.toml"
check $? "flotilla run starts with the seed's config"

# inservice N: the group has at least N instances in service.
inservice_ge() {
	[ "$(curl -s "$AWS_E/__fake/groups" | /usr/bin/python3 -c '
import json, sys
print(sum(1 for g in json.load(sys.stdin) if g["name"] == sys.argv[1]
          for i in g["instances"] if i["lifecycle"] == "InService"))' "$GROUP")" -ge "$1" ]
}
tl_wait 90 inservice_ge 5
check $? "idle_count 5: five instances InService in the group"

ids=$(e2e_py submit "$URL" 8 --sleep 1 --name aws)
e2e_jobs_ok 1 1 "every job succeeded, traces match, max_use_count 1: one job per instance" $ids

# Each job ran on an instance of the group, under ec2-user.
for id in $ids; do e2e_py instance "$URL" "$id"; done | sort -u >"$TMP/used.out"
curl -s "$AWS_E/__fake/instances" | /usr/bin/python3 -c '
import json, sys
for i in json.load(sys.stdin):
    if i["group"] == sys.argv[1]:
        print(i["id"])' "$GROUP" | sort -u >"$TMP/group.out"
[ "$(wc -l <"$TMP/used.out")" -eq 8 ] &&
    [ -z "$(comm -23 "$TMP/used.out" "$TMP/group.out")" ]
check $? "8 distinct instances, all of the Auto Scaling group ($(tr '\n' ' ' <"$TMP/used.out"))"

counts=$(curl -s "$AWS_E/__fake/counts")
echo "$counts" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
a = d["actions"]
sys.exit(0 if a.get("SendSSHPublicKey", 0) >= 8 and
         a.get("SetDesiredCapacity", 0) >= 1 and
         a.get("TerminateInstanceInAutoScalingGroup", 0) >= 8 and
         d["imds"]["sessions"] >= 1 else 1)'
check $? "keys pushed with EC2 Instance Connect for ec2-user, used instances terminated, credentials from IMDS ($counts)"
grep -q "Accepted publickey for $OSUSER" "$TMP"/aws/i/*/sshd.log
check $? "the instances' sshd let $OSUSER in with those keys"

# Pull policy always: each job's pull reached the registry (the engine
# asks for the manifest, HEAD once it has the layers; its User-Agent names
# the client that asked: flotilla).
pulls=$(grep -cE '"(GET|HEAD) /v2/library/busybox/manifests/latest HTTP/[0-9.]+" 200 .*UpstreamClient\(flotilla/' "$TMP/registry.log")
[ "$pulls" -ge 8 ]
check $? "busybox:latest pulled from the registry for each job ($pulls manifest requests)"

v=$(curl -fsS "$URL/__fake/violations")
va=$(curl -fsS "$AWS_E/__fake/violations")
[ "$v" = "[]" ] && [ "$va" = "[]" ]
check $? "no protocol violation seen by the fake GitLab ($v) nor the fake AWS ($va)"

# The manager removed each used-up instance itself: closing its
# connection first, it is no lost connection.
! grep -q "connection to instance .* lost" "$TMP/flotilla.log"
check $? "used-up instances removed without a 'connection lost' warning"

grep -q "$TOKEN" "$TMP/flotilla.log" || grep -q "$TOKEN" "$TMP/fake-aws.log"
check $((! $?)) "the runner token never appears in the logs"

kill -QUIT "$FL_PID"
tl_wait 60 tl_dead "$FL_PID"
wait "$FL_PID"
check $? "SIGQUIT: flotilla exits with status 0"
FL_PID=
