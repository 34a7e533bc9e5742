#!/bin/sh
# fleeting-plugin-aws's happy paths against moto_server, an AWS fake the
# project did not write (tests/fakes/fake_aws.py is the strict one): the
# group is made with boto3 (a launch template with a Linux AMI of moto's
# catalogue, an Auto Scaling group of MaxSize 3 with scale-in protection),
# then tests/group_probe drives the plugin through the manager's plugin
# host: Init, Update, Increase, ConnectInfo with an EC2 Instance Connect
# key, Heartbeat, Decrease, Increase capped at MaxSize, and Init's
# refusals.  moto's instances have made-up addresses outside 127.0.0.0/8:
# nothing here ever connects to them (ConnectInfo only describes).
#
# Skipped when moto_server, a Python with boto3, the plugin or the probe
# is missing.
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

PLUGIN="$BUILD/bin/fleeting-plugin-aws"
PROBE="$BUILD/tests/group_probe"
GROUP=flotilla-moto
REGION=us-east-1
N=9
echo "1..$N"

skip_all() {
	i=1
	while [ $i -le $N ]; do
		echo "ok $i - # SKIP $1"
		i=$((i + 1))
	done
	exit 0
}

MOTO=$(command -v moto_server 2>/dev/null)
[ -n "$MOTO" ] || skip_all "no moto_server on PATH"
# The Python that runs moto_server has boto3 (pyenv shims hide it).
PYM=
for p in "$(pyenv which python 2>/dev/null)" python3 /usr/bin/python3; do
	[ -n "$p" ] && "$p" -c 'import boto3' 2>/dev/null && { PYM=$p; break; }
done
[ -n "$PYM" ] || skip_all "no Python with boto3"
[ -x "$PLUGIN" ] && [ -x "$PROBE" ] || skip_all "$PLUGIN or $PROBE not built"

TMP=$(mktemp -d /tmp/pawsmoto.XXXXXX)
MOTO_PID=
cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$MOTO_PID" ] && tl_stop 10 "$MOTO_PID"
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	mkdir -p "$LOGDIR/plugin_aws_moto"
	cp "$TMP"/*.out "$TMP"/*.err "$TMP"/moto.log "$LOGDIR/plugin_aws_moto/" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
check() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

PORT=$(tl_free_port 127.0.0.1)
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$TMP/moto.log" 2>&1 &
MOTO_PID=$!
E=http://127.0.0.1:$PORT
if ! tl_wait 30 curl -s -o /dev/null "$E/moto-api/"; then
	echo "Bail out! moto_server did not start"
	tl_diag "$TMP/moto.log"
	exit 1
fi

# Keys: moto takes any; random ones show whether a secret leaks.
AKID=AKIAMOTO$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
SECRET=moto$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')

AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=$REGION \
    "$PYM" - "$E" "$GROUP" >"$TMP/setup.out" 2>&1 <<'EOF'
import sys
import boto3
ep, group = sys.argv[1], sys.argv[2]
ec2 = boto3.client("ec2", endpoint_url=ep)
asg = boto3.client("autoscaling", endpoint_url=ep)
# ami-1e749f67: an Ubuntu image of moto's catalogue (its default AMI is
# a Windows one).
ec2.create_launch_template(LaunchTemplateName="flotilla", LaunchTemplateData={
    "ImageId": "ami-1e749f67", "InstanceType": "t3.micro"})
asg.create_auto_scaling_group(
    AutoScalingGroupName=group, MinSize=0, MaxSize=3, DesiredCapacity=0,
    LaunchTemplate={"LaunchTemplateName": "flotilla", "Version": "$Latest"},
    AvailabilityZones=["us-east-1a"], NewInstancesProtectedFromScaleIn=True)
print("group made")
EOF
grep -q 'group made' "$TMP/setup.out" || {
	echo "Bail out! could not create the group in moto"
	tl_diag "$TMP/setup.out"
	exit 1
}

# The plugin's environment: keys, moto's endpoint, nothing else.
penv() {
	env -i PATH="$PATH" HOME="$TMP" TMPDIR="$TMP" \
	    AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
	    AWS_ENDPOINT_URL="$E" AWS_EC2_METADATA_DISABLED=true \
	    AWS_CONFIG_FILE="$TMP/none" AWS_SHARED_CREDENTIALS_FILE="$TMP/none" "$@"
}

printf '{"name": "%s", "region": "%s"}\n' "$GROUP" "$REGION" >"$TMP/cfg.json"
penv "$PROBE" -T 60000 -c "$TMP/cfg.json" "$PLUGIN" start update \
    increase 2 wait-running 2 30 list connect-info first "$TMP/ic-key" \
    heartbeat first decrease first update increase 5 update \
    "heartbeat?" i-0123456789abcdef0 stop >"$TMP/flow.out" 2>"$TMP/flow.err"
rc=$?
sed 's/^/# /' "$TMP/flow.out"
[ $rc -eq 0 ] || tl_diag "$TMP/flow.err"

grep -q "^ready id=aws/$REGION/$GROUP max_size=3 instances=0\$" "$TMP/flow.out"
check $? "Init reads the group: id aws/$REGION/$GROUP, max_size = the group's MaxSize 3"

grep -q '^increased 2$' "$TMP/flow.out" && grep -q '^running 2 ' "$TMP/flow.out" &&
    [ "$(grep -c '^i-[0-9a-f]* running$' "$TMP/flow.out")" -eq 2 ]
check $? "Increase 2 (SetDesiredCapacity): Update lists two running instances"

line=$(grep '^connect ' "$TMP/flow.out")
exp=$(echo "$line" | sed 's/.* expires_in=\([-0-9]*\).*/\1/')
case "$line" in
*" os=linux arch=amd64 protocol=ssh "*" user=ec2-user internal=10."*" external="*" static=0 "*) r=0 ;;
*) r=1 ;;
esac
[ $r -eq 0 ] && [ "${exp:-0}" -ge 50 ] && [ "${exp:-0}" -le 60 ]
check $? "ConnectInfo (DescribeInstances): linux, amd64, ec2-user, private and public addresses, key expiring in ${exp}s"

head -1 "$TMP/ic-key" | grep -q '^-----BEGIN OPENSSH PRIVATE KEY-----$' &&
    ssh-keygen -y -f "$TMP/ic-key" 2>/dev/null | grep -q '^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5'
check $? "the ConnectInfo key is an OpenSSH ed25519 private key (ssh-keygen reads it)"

grep -q 'ephemeral key for ec2-user@i-[0-9a-f]* sent with SendSSHPublicKey' "$TMP/flow.err"
check $? "its public half went to EC2 Instance Connect (SendSSHPublicKey answered Success)"

grep -q '^heartbeat code 0$' "$TMP/flow.out" && grep -q '^heartbeat code 5$' "$TMP/flow.out"
check $? "Heartbeat: OK for a group instance, NOT_FOUND (5) for an unknown id"

grep -q '^decreased 1$' "$TMP/flow.out" &&
    grep -q '^increase partial_error=max_size 3 reached: 3 of 5 instances not requested$' "$TMP/flow.out" &&
    grep -q '^increased 2$' "$TMP/flow.out" &&
    grep -q '^instances 3 running 3 ' "$TMP/flow.out"
check $? "Decrease (TerminateInstanceInAutoScalingGroup), then Increase 5 capped at MaxSize: 2 accepted, partial error"

desired=$(AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=$REGION \
    "$PYM" -c 'import sys, boto3; print(boto3.client("autoscaling", endpoint_url=sys.argv[1]).describe_auto_scaling_groups(AutoScalingGroupNames=[sys.argv[2]])["AutoScalingGroups"][0]["DesiredCapacity"])' \
    "$E" "$GROUP" 2>>"$TMP/setup.out")
! grep -qF -- "$SECRET" "$TMP/flow.out" "$TMP/flow.err" && [ "$desired" = 3 ]
check $? "the group's desired capacity is 3 as the plugin set it; no secret in the plugin's output or logs"

printf '{"name": "%s", "region": "%s", "bogus": 1}\n' "$GROUP" "$REGION" >"$TMP/bad.json"
printf '{"name": "no-such-group", "region": "%s"}\n' "$REGION" >"$TMP/nogroup.json"
penv "$PROBE" -T 30000 -c "$TMP/bad.json" "$PLUGIN" "start?" >"$TMP/bad.out" 2>"$TMP/bad.err"
penv "$PROBE" -T 30000 -c "$TMP/nogroup.json" "$PLUGIN" "start?" >"$TMP/nogroup.out" 2>"$TMP/nogroup.err"
sed 's/^/# /' "$TMP/bad.out" "$TMP/nogroup.out"
grep -q 'rejected its configuration: unknown key bogus in plugin_config' "$TMP/bad.out" &&
    grep -q 'autoscaling group no-such-group not found in region us-east-1' "$TMP/nogroup.out"
check $? "Init refuses an unknown plugin_config key and a group that does not exist"
