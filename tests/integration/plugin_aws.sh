#!/bin/sh
# fleeting-plugin-aws against tests/fakes/fake_aws.py, a strict fake of
# Auto Scaling, EC2, EC2 Instance Connect, STS and IMDSv2 that verifies
# every SigV4 signature and backs each instance with a real sshd on
# 127.0.100.N.
#
# Part 1 proves the fake answers like AWS: the real `aws` CLI (botocore)
# against it, with --endpoint-url: the three calls the plugin makes, a
# login with a key pushed through send-ssh-public-key, a wrong secret
# rejected with SignatureDoesNotMatch / AuthFailure, web identity, IMDS,
# throttling retried, pagination followed, termination stopping the sshd.
# Skipped if no `aws` is on PATH.
#
# Part 2 runs the plugin (skipped while build/bin/fleeting-plugin-aws is
# not built): `flotilla plugin-test` with EC2 Instance Connect keys and
# with a static key; each credential source (environment, a profile in
# the credentials file, a [profile x] in the config file, AWS_PROFILE, web
# identity through STS, IMDS sessions that expire and are refreshed, the
# region from IMDS); throttling answers retried; error XML reported with
# its code and message and no secret; a wrong secret; an Instance Connect
# key logging in; 200 instances all seen, and requests per Update.
#
# Needs root (sshd on port 22 of 127.0.100.N; the plugin-test steps that
# log in are skipped when port 22 cannot be bound there), openssh, curl.
set -u
. "${TOP:?TOP must be the repository root}/tests/lib/common.sh"

FL="$BUILD/bin/flotilla"
PLUGIN="$BUILD/bin/fleeting-plugin-aws"
PROBE="$BUILD/tests/group_probe"
FAKE="$TOP/tests/fakes/fake_aws.py"
GROUP=flotilla-asg
REGION=eu-west-3
echo "1..26"

TMP=$(mktemp -d /tmp/faws.XXXXXX)
FAKE_PID=
cleanup() {
	trap - EXIT INT TERM HUP
	mkdir -p "$LOGDIR/plugin_aws"
	[ -n "${E:-}" ] && curl -s "$E/__fake/requests" >"$LOGDIR/plugin_aws/requests.json" 2>/dev/null
	[ -n "$FAKE_PID" ] && tl_stop 10 "$FAKE_PID"
	for p in $(tl_pids_under "$TMP"); do
		kill -KILL "$p" 2>/dev/null
	done
	cp "$TMP"/*.out "$TMP"/*.err "$TMP"/fake.log "$LOGDIR/plugin_aws/" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - # SKIP $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$2"; fi; }

# Secrets: random, in files and the environment only.
AKID=AKIAFLOTILLA$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
WEBTOKEN=wit-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$TMP/home" "$TMP/fake"
ssh-keygen -q -t ed25519 -N '' -C launch -f "$TMP/launch" || exit 1

FAKE_AWS_CREDENTIALS="$AKID:$SECRET" FAKE_AWS_WEB_IDENTITY="$WEBTOKEN" \
    "$TL_PYTHON" "$FAKE" --dir "$TMP/fake" --port-file "$TMP/port" \
    --imds-port-file "$TMP/imds-port" --region "$REGION" --group "$GROUP" \
    --max 10 --launch-key "$TMP/launch.pub" --pending-seconds 1 \
    >"$TMP/fake.log" 2>&1 &
FAKE_PID=$!
if ! tl_wait 10 test -s "$TMP/imds-port" || ! tl_wait 10 test -s "$TMP/port"; then
	echo "Bail out! fake_aws did not start"
	tl_diag "$TMP/fake.log"
	exit 1
fi
E=http://127.0.0.1:$(cat "$TMP/port")
IMDS=http://127.0.0.1:$(cat "$TMP/imds-port")

# fake METHOD PATH [JSON]: the control API.
fake() {
	if [ $# -ge 3 ]; then
		curl -s -X "$1" -H 'Content-Type: application/json' -d "$3" "$E/__fake/$2"
	else
		curl -s -X "$1" "$E/__fake/$2"
	fi
}

# js EXPR: evaluate a Python expression over the JSON on stdin (as d).
js() {
	"$TL_PYTHON" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# inservice_is N: the group has N instances InService.
inservice_is() {
	[ "$(fake GET groups | js "sum(1 for g in d if g['name'] == '$GROUP' for i in g['instances'] if i['lifecycle'] == 'InService')")" = "$1" ]
}

# sshd_ready_is N: N instances in a group have their sshd listening.
sshd_ready_is() {
	[ "$(fake GET instances | js "sum(1 for i in d if i['in_group'] and i['sshd_ready'])")" = "$1" ]
}

# Wait until the group has exactly N instances in it (any state).
group_count() {
	[ "$(fake GET groups | js "sum(len(g['instances']) for g in d if g['name'] == '$GROUP')")" = "$1" ]
}

ssh_opts() {
	echo "-F /dev/null -i $1 -p ${2:-22} -o IdentitiesOnly=yes" \
	    "-o IdentityAgent=none -o StrictHostKeyChecking=no" \
	    "-o UserKnownHostsFile=/dev/null -o BatchMode=yes" \
	    "-o ConnectTimeout=10 -o LogLevel=ERROR"
}

# ------------------------------------------------------------ part 1
AWS=$(command -v aws 2>/dev/null)
if [ -n "$AWS" ]; then
	# The CLI with the fake's long-term key, nothing from any real file.
	awsc() {
		env -i PATH="$PATH" HOME="$TMP/home" \
		    AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
		    AWS_DEFAULT_REGION="$REGION" AWS_CONFIG_FILE=/dev/null \
		    AWS_SHARED_CREDENTIALS_FILE=/dev/null \
		    AWS_EC2_METADATA_DISABLED=true \
		    "$AWS" --endpoint-url "$E" --output text "$@"
	}
	out=$(awsc autoscaling describe-auto-scaling-groups \
	    --auto-scaling-group-names "$GROUP" \
	    --query 'AutoScalingGroups[0].[AutoScalingGroupName,MaxSize,DesiredCapacity,NewInstancesProtectedFromScaleIn]' 2>"$TMP/cli1.err")
	[ "$(echo $out)" = "$GROUP 10 0 True" ]
	check $? "aws autoscaling describe-auto-scaling-groups parses the fake's answer ($(echo $out))"

	awsc autoscaling set-desired-capacity --auto-scaling-group-name "$GROUP" \
	    --desired-capacity 2 --no-honor-cooldown 2>"$TMP/cli2.err" &&
	    tl_wait 20 inservice_is 2
	rc=$?
	out=$(awsc autoscaling describe-auto-scaling-groups \
	    --auto-scaling-group-names "$GROUP" \
	    --query 'AutoScalingGroups[0].Instances[].LifecycleState' 2>>"$TMP/cli2.err")
	[ $rc -eq 0 ] && [ "$(echo $out)" = "InService InService" ]
	check $? "aws autoscaling set-desired-capacity 2: two instances InService ($(echo $out))"

	out=$(awsc ec2 describe-instances \
	    --query 'Reservations[].Instances[].[InstanceId,State.Name,PrivateIpAddress,PublicIpAddress,Architecture,Placement.AvailabilityZone]' \
	    2>"$TMP/cli3.err")
	echo "$out" | sed 's/^/# /'
	[ "$(echo "$out" | grep -c "^i-[0-9a-f]*	running	127\.0\.100\.[0-9]*	127\.0\.100\.[0-9]*	x86_64	${REGION}a\$")" -eq 2 ]
	check $? "aws ec2 describe-instances parses reservationSet/instancesSet (ids, state, addresses, arch, AZ)"

	ID1=$(echo "$out" | head -1 | cut -f1)
	ADDR1=$(echo "$out" | head -1 | cut -f3)
	PORT1=$(fake GET instances | js "[i['port'] for i in d if i['id'] == '$ID1'][0]")
	ssh-keygen -q -t rsa -b 2048 -N '' -C ic -f "$TMP/ic" || exit 1
	ok_send=$(awsc ec2-instance-connect send-ssh-public-key --instance-id "$ID1" \
	    --instance-os-user root --ssh-public-key "file://$TMP/ic.pub" \
	    --availability-zone "${REGION}a" --query Success 2>"$TMP/cli4.err")
	# shellcheck disable=SC2046
	login=$(ssh $(ssh_opts "$TMP/ic" "$PORT1") "root@$ADDR1" echo in </dev/null 2>"$TMP/ssh4.err")
	[ "$ok_send" = True ] && [ "$login" = in ]
	check $? "aws ec2-instance-connect send-ssh-public-key: Success, and the key logs in to $ADDR1:$PORT1"

	e1=$(env -i PATH="$PATH" HOME="$TMP/home" \
	    AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="${SECRET}x" \
	    AWS_DEFAULT_REGION="$REGION" AWS_CONFIG_FILE=/dev/null \
	    AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
	    "$AWS" --endpoint-url "$E" autoscaling describe-auto-scaling-groups 2>&1 >/dev/null)
	e2=$(env -i PATH="$PATH" HOME="$TMP/home" \
	    AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="${SECRET}x" \
	    AWS_DEFAULT_REGION="$REGION" AWS_CONFIG_FILE=/dev/null \
	    AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
	    "$AWS" --endpoint-url "$E" ec2 describe-instances 2>&1 >/dev/null)
	e3=$(env -i PATH="$PATH" HOME="$TMP/home" \
	    AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
	    AWS_DEFAULT_REGION=us-west-1 AWS_CONFIG_FILE=/dev/null \
	    AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
	    "$AWS" --endpoint-url "$E" autoscaling describe-auto-scaling-groups 2>&1 >/dev/null)
	printf '%s\n%s\n%s\n' "$e1" "$e2" "$e3" | grep . | sed 's/^/# /'
	case "$e1" in *"(SignatureDoesNotMatch)"*"does not match the signature"*) r1=0 ;; *) r1=1 ;; esac
	case "$e2" in *"(AuthFailure)"*) r2=0 ;; *) r2=1 ;; esac
	case "$e3" in *"(SignatureDoesNotMatch)"*"scoped to a valid region"*) r3=0 ;; *) r3=1 ;; esac
	[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ]
	check $? "a wrong secret: SignatureDoesNotMatch (Auto Scaling), AuthFailure (EC2); a wrong region scope refused"

	printf '%s' "$WEBTOKEN" >"$TMP/webtoken"
	printf '%s' "not-$WEBTOKEN" >"$TMP/badtoken"
	# wi TOKENFILE HOME (the CLI caches sessions under HOME/.aws/cli).
	wi() {
		mkdir -p "$2"
		env -i PATH="$PATH" HOME="$2" AWS_DEFAULT_REGION="$REGION" \
		    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
		    AWS_EC2_METADATA_DISABLED=true AWS_WEB_IDENTITY_TOKEN_FILE="$1" \
		    AWS_ROLE_ARN=arn:aws:iam::123456789012:role/flotilla-runner \
		    AWS_ENDPOINT_URL="$E" "$AWS" --output text \
		    autoscaling describe-auto-scaling-groups \
		    --query 'AutoScalingGroups[0].AutoScalingGroupName'
	}
	sts0=$(fake GET counts | js "d['sts']")
	out=$(wi "$TMP/webtoken" "$TMP/wi-good" 2>"$TMP/cli6.err")
	bad=$(wi "$TMP/badtoken" "$TMP/wi-bad" 2>&1 >/dev/null)
	sts1=$(fake GET counts | js "d['sts']")
	[ "$out" = "$GROUP" ] && [ "$sts1" -gt "$sts0" ]
	r=$?
	case "$bad" in *"(InvalidIdentityToken)"*) ;; *) r=1 ;; esac
	echo "# sts calls $sts0 -> $sts1; signed with the session: $out"
	echo "$bad" | grep . | sed 's/^/# /'
	check $r "web identity through the CLI: AssumeRoleWithWebIdentity's session signs; a wrong token is InvalidIdentityToken"

	s0=$(fake GET counts | js "d['imds']['sessions']")
	out=$(env -i PATH="$PATH" HOME="$TMP/home" AWS_CONFIG_FILE=/dev/null \
	    AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	    AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS" AWS_ENDPOINT_URL="$E" \
	    "$AWS" --region "$REGION" --output text ec2 describe-instances \
	    --query 'length(Reservations)' 2>"$TMP/cli7.err")
	tok=$(curl -s -o /dev/null -w '%{http_code}' "$IMDS/latest/meta-data/placement/region")
	[ "$out" = 2 ] && [ "$(fake GET counts | js "d['imds']['token']")" -ge 1 ] && [ "$tok" = 401 ]
	check $? "IMDSv2 through the CLI: token, role, session credentials sign EC2 calls; 401 without a token"

	fake POST counts/reset >/dev/null
	fake POST throttle '{"action": "DescribeAutoScalingGroups", "count": 2}' >/dev/null
	out=$(awsc autoscaling describe-auto-scaling-groups \
	    --query 'length(AutoScalingGroups)' 2>"$TMP/cli8.err")
	rej=$(fake GET counts | js "d['rejected'].get('DescribeAutoScalingGroups', 0)")
	[ "$out" = 1 ] && [ "$rej" = 2 ]
	check $? "the CLI retries two Throttling answers and then succeeds ($rej rejected)"

	fake POST group '{"name": "zz-decoy-1"}' >/dev/null
	fake POST group '{"name": "zz-decoy-2"}' >/dev/null
	fake POST config '{"page_size": 1, "empty_pages": 1}' >/dev/null
	fake POST counts/reset >/dev/null
	g=$(awsc autoscaling describe-auto-scaling-groups --output json --query 'length(AutoScalingGroups)' 2>"$TMP/cli9.err")
	i=$(awsc ec2 describe-instances --output json --query 'length(Reservations)' 2>>"$TMP/cli9.err")
	calls=$(fake GET counts | js "d['actions'].get('DescribeAutoScalingGroups', 0)")
	fake POST config '{"page_size": 0, "empty_pages": 0}' >/dev/null
	[ "$g" = 3 ] && [ "$i" = 2 ] && [ "$calls" = 4 ]
	check $? "pagination: the CLI follows NextToken through an empty page and 1-item pages ($g groups in $calls calls, $i instances)"

	awsc autoscaling terminate-instance-in-auto-scaling-group --instance-id "$ID1" \
	    --should-decrement-desired-capacity >/dev/null 2>"$TMP/cli10.err"
	rc=$?
	tl_wait 10 group_count 1
	# shellcheck disable=SC2046
	ssh $(ssh_opts "$TMP/ic" "$PORT1") "root@$ADDR1" true </dev/null 2>/dev/null
	login=$?
	st=$(awsc ec2 describe-instances --instance-ids "$ID1" \
	    --query 'Reservations[0].Instances[0].State.Name' 2>>"$TMP/cli10.err")
	[ $rc -eq 0 ] && [ $login -ne 0 ] && [ "$st" = terminated ]
	check $? "terminate-instance-in-auto-scaling-group: the instance leaves the group, its sshd is gone, EC2 says $st"

	awsc autoscaling set-desired-capacity --auto-scaling-group-name "$GROUP" \
	    --desired-capacity 0 --no-honor-cooldown 2>/dev/null
	# Protected from scale in: the last one is terminated explicitly.
	for id in $(fake GET instances | js "' '.join(i['id'] for i in d if i['in_group'] and i['group'] == '$GROUP')"); do
		awsc autoscaling terminate-instance-in-auto-scaling-group --instance-id "$id" \
		    --no-should-decrement-desired-capacity >/dev/null 2>&1
	done
	tl_wait 10 group_count 0
else
	for t in 1 2 3 4 5 6 7 8 9 10; do
		skip "no aws CLI on PATH (real-client check $t)"
	done
fi

# ------------------------------------------------------------ part 2
if [ ! -x "$PLUGIN" ] || [ ! -x "$PROBE" ]; then
	for t in 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26; do
		skip "$PLUGIN or $PROBE not built (plugin case $t)"
	done
	exit 0
fi

# The environment every plugin run starts from: no credentials, no real
# files, endpoints at the fake, IMDS at the fake's (disabled unless a
# case enables it): nothing may leave 127.0.0.0/8.
penv() {
	env -i PATH="$PATH" HOME="$TMP/home" TMPDIR="$TMP" \
	    AWS_ENDPOINT_URL="$E" AWS_ENDPOINT_URL_AUTO_SCALING="$E" \
	    AWS_ENDPOINT_URL_EC2="$E" AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT="$E" \
	    AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS" \
	    AWS_CONFIG_FILE="$TMP/home/none" \
	    AWS_SHARED_CREDENTIALS_FILE="$TMP/home/none" \
	    AWS_EC2_METADATA_DISABLED="${IMDS_DISABLED:-true}" "$@"
}
cat >"$TMP/plain.json" <<JSON
{"name": "$GROUP", "region": "$REGION"}
JSON

# new_key NAME: a new long-term key at the fake; sets KID and KSECRET.
new_key() {
	KID=AKIA$(echo "$1" | tr a-z- A-Z_ | cut -c1-8)$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
	KSECRET=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
	fake POST credentials "{\"access_key_id\": \"$KID\", \"secret_access_key\": \"$KSECRET\"}" >/dev/null
}

# signed_ok KID: the fake accepted a signed call from KID.
signed_ok() {
	[ "$(fake GET requests | js "sum(1 for r in d if r.get('key_id') == '$1' and r.get('status') == 200)")" -ge 1 ]
}

# no_secret FILE... SECRET...: none of the secrets shows in the files.
no_secret() {
	_f=$1
	shift
	for _s in "$@"; do
		grep -qF -- "$_s" "$_f" && return 1
	done
	return 0
}

# plugin-test logs in on port 22: the fake's sshd gets it unless something
# holds 0.0.0.0:22.
if tl_port_free 127.0.101.254 22; then
	penv AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
	    "$FL" plugin-test "$PLUGIN" --config "$TMP/plain.json" \
	    --username root --timeout 3m >"$TMP/pt-ic.out" 2>"$TMP/pt-ic.err"
	rc=$?
	sed 's/^/# /' "$TMP/pt-ic.out"
	npass=$(grep -c '^PASS ' "$TMP/pt-ic.out")
	[ $rc -eq 0 ] && ! grep -q '^FAIL\|^SKIP' "$TMP/pt-ic.out"
	check $? "plugin-test fleeting-plugin-aws (EC2 Instance Connect keys): exit 0, $npass steps passed"
	sent=$(fake GET counts | js "d['actions'].get('SendSSHPublicKey', 0)")
	grep -q '^PASS ssh (.*): ran `true` as root@127\.0\.100\.' "$TMP/pt-ic.out" &&
	    [ "$sent" -ge 1 ] && no_secret "$TMP/pt-ic.err" "$SECRET"
	check $? "the ssh step logged in with a key pushed by SendSSHPublicKey ($sent sent); no secret in the logs"

	penv AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
	    "$FL" plugin-test "$PLUGIN" --config "$TMP/plain.json" \
	    --username root --key-path "$TMP/launch" --timeout 3m \
	    >"$TMP/pt-static.out" 2>"$TMP/pt-static.err"
	rc=$?
	sed 's/^/# /' "$TMP/pt-static.out"
	[ $rc -eq 0 ] && ! grep -q '^FAIL\|^SKIP' "$TMP/pt-static.out"
	check $? "plugin-test with a static key (the group's launch key): exit 0"
else
	skip "the fake's sshd could not take port 22 (plugin-test logs in on 22)"
	skip "the fake's sshd could not take port 22 (Instance Connect login)"
	skip "the fake's sshd could not take port 22 (static key)"
fi
tl_wait 15 group_count 0

# One credential source per case: start the plugin, one Update.
# cred_case NAME CONFIG ENV...: 0 if Init and Update worked.
cred_case() {
	_name=$1
	_cfg=$2
	shift 2
	penv "$@" "$PROBE" -T 60000 -c "$_cfg" "$PLUGIN" start update stop \
	    >"$TMP/cred-$_name.out" 2>"$TMP/cred-$_name.err"
	_rc=$?
	[ $_rc -eq 0 ] || tl_diag "$TMP/cred-$_name.err" 8
	return $_rc
}

new_key env
cred_case env "$TMP/plain.json" AWS_ACCESS_KEY_ID="$KID" AWS_SECRET_ACCESS_KEY="$KSECRET" &&
    signed_ok "$KID" && no_secret "$TMP/cred-env.err" "$KSECRET"
check $? "credentials from the environment sign the calls"

new_key credfile
cat >"$TMP/credentials" <<EOF
[default]
aws_access_key_id = AKIANOTTHISONE0000000
aws_secret_access_key = wrongwrongwrong

[ci]
aws_access_key_id = $KID
aws_secret_access_key = $KSECRET
EOF
cat >"$TMP/credfile.json" <<JSON
{"name": "$GROUP", "region": "$REGION", "profile": "ci", "credentials_file": "$TMP/credentials", "config_file": "$TMP/home/none"}
JSON
cred_case credfile "$TMP/credfile.json" && signed_ok "$KID" &&
    no_secret "$TMP/cred-credfile.err" "$KSECRET"
check $? "a profile in the credentials file (plugin_config profile + credentials_file)"

new_key conffile
cat >"$TMP/config" <<EOF
[default]
region = us-west-2

[profile build]
region = $REGION
aws_access_key_id = $KID
aws_secret_access_key = $KSECRET
EOF
cat >"$TMP/conffile.json" <<JSON
{"name": "$GROUP", "profile": "build", "config_file": "$TMP/config", "credentials_file": "$TMP/home/none"}
JSON
cred_case conffile "$TMP/conffile.json" && signed_ok "$KID"
check $? "a [profile build] section in the config file: its keys and its region"

new_key awsprofile
cat >"$TMP/credentials2" <<EOF
[default]
aws_access_key_id = AKIANOTTHISONE0000000
aws_secret_access_key = wrongwrongwrong

[other]
aws_access_key_id = $KID
aws_secret_access_key = $KSECRET
EOF
cred_case awsprofile "$TMP/plain.json" AWS_PROFILE=other \
    AWS_SHARED_CREDENTIALS_FILE="$TMP/credentials2" && signed_ok "$KID"
check $? "AWS_PROFILE picks the profile in AWS_SHARED_CREDENTIALS_FILE"

fake POST config '{"sts_expires_in": 0}' >/dev/null
sts0=$(fake GET counts | js "d['sts']")
cred_case webid "$TMP/plain.json" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/webtoken" \
    AWS_ROLE_ARN=arn:aws:iam::123456789012:role/flotilla-runner \
    AWS_ROLE_SESSION_NAME=flotilla
rc=$?
sts1=$(fake GET counts | js "d['sts']")
stskeys=$(fake GET credentials | js "' '.join(c['access_key_id'] for c in d if c['kind'] == 'sts')")
used=1
for k in $stskeys; do signed_ok "$k" && used=0; done
[ $rc -eq 0 ] && [ "$sts1" -gt "$sts0" ] && [ $used -eq 0 ] &&
    no_secret "$TMP/cred-webid.err" "$WEBTOKEN"
check $? "web identity: AssumeRoleWithWebIdentity, and its session signs the calls"

# IMDS: sessions live 8 s and rotate when less than 5 s are left; no
# region anywhere but IMDS's placement/region.
fake POST imds '{"expires_in": 8, "rotate_before": 5, "rotate": true}' >/dev/null
cat >"$TMP/noregion.json" <<JSON
{"name": "$GROUP"}
JSON
s0=$(fake GET counts | js "d['imds']['sessions']")
IMDS_DISABLED=false penv "$PROBE" -T 60000 -c "$TMP/noregion.json" "$PLUGIN" \
    start update sleep 9000 update sleep 9000 update stop \
    >"$TMP/cred-imds.out" 2>"$TMP/cred-imds.err"
rc=$?
s1=$(fake GET counts | js "d['imds']['sessions']")
expired=$(fake GET requests | js "sum(1 for r in d if r.get('code') in ('ExpiredToken', 'RequestExpired'))")
[ $rc -eq 0 ] && [ "$(grep -c '^instances ' "$TMP/cred-imds.out")" -eq 3 ] &&
    [ $((s1 - s0)) -ge 2 ] && [ "$expired" -eq 0 ]
check $? "IMDSv2 credentials expiring in 8 s are refreshed before they expire ($((s1 - s0)) sessions, $expired expired uses); region from IMDS"
[ $rc -eq 0 ] || tl_diag "$TMP/cred-imds.err" 10
fake POST imds '{"expires_in": 21600, "rotate_before": null, "rotate": true}' >/dev/null

# Throttling, then a non-retryable error, then a wrong secret.
fake POST counts/reset >/dev/null
fake POST group "{\"name\": \"$GROUP\", \"desired\": 1, \"instant\": true, \"sshd\": true}" >/dev/null
tl_wait 15 sshd_ready_is 1
penv AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
    "$PROBE" -T 60000 -u root -c "$TMP/plain.json" "$PLUGIN" start \
    sh "curl -s -XPOST $E/__fake/throttle -d '{\"action\": \"DescribeAutoScalingGroups\", \"count\": 2}' >/dev/null" \
    update \
    sh "curl -s -XPOST $E/__fake/throttle -d '{\"action\": \"DescribeInstances\", \"count\": 2}' >/dev/null" \
    sh "curl -s -XPOST $E/__fake/throttle -d '{\"action\": \"SendSSHPublicKey\", \"count\": 1}' >/dev/null" \
    connect-info first "$TMP/ic-key" \
    sh "curl -s -XPOST $E/__fake/inject -d '{\"action\": \"DescribeAutoScalingGroups\", \"code\": \"AccessDenied\", \"status\": 403, \"message\": \"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: autoscaling:DescribeAutoScalingGroups\"}' >/dev/null" \
    "update?" stop >"$TMP/errors.out" 2>"$TMP/errors.err"
rc=$?
sed 's/^/# /' "$TMP/errors.out"
rej=$(fake GET counts | js "json.dumps(d['rejected'])")
echo "# rejected: $rej"
[ $rc -eq 0 ] && [ "$(grep -c '^instances 1 ' "$TMP/errors.out")" -eq 1 ] &&
    grep -q '^connect id=i-' "$TMP/errors.out" &&
    [ "$(echo "$rej" | js "d.get('DescribeAutoScalingGroups', 0) >= 2 and d.get('DescribeInstances', 0) >= 2 and d.get('SendSSHPublicKey', 0) >= 1")" = True ]
check $? "Throttling, RequestLimitExceeded (503) and ThrottlingException answers are retried"

grep -q '^update failed: .*AccessDenied.*not authorized to perform: autoscaling:DescribeAutoScalingGroups' "$TMP/errors.out" &&
    no_secret "$TMP/errors.out" "$SECRET" && no_secret "$TMP/errors.err" "$SECRET"
check $? "an error answer is reported with AWS's code and message, and no secret"

ip=$(grep '^connect ' "$TMP/errors.out" | sed 's/.* internal=\([^ ]*\) .*/\1/')
ip=${ip%%:*}
port=$(fake GET instances | js "([i['port'] for i in d if i['addr'] == '$ip' and i['in_group']] + [22])[0]" 2>/dev/null)
exp=$(grep '^connect ' "$TMP/errors.out" | sed 's/.* expires_in=\([-0-9]*\).*/\1/')
# shellcheck disable=SC2046
login=$(ssh $(ssh_opts "$TMP/ic-key" "$port") "root@$ip" echo in </dev/null 2>"$TMP/ssh-ic.err")
[ "$login" = in ] && [ "${exp:-0}" -ge 40 ] && [ "${exp:-0}" -le 60 ]
check $? "ConnectInfo's ephemeral key (EC2 Instance Connect) logs in to $ip:$port; expires in ${exp}s"

penv AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="${SECRET}0" \
    "$PROBE" -T 60000 -c "$TMP/plain.json" "$PLUGIN" "start?" \
    >"$TMP/badsecret.out" 2>"$TMP/badsecret.err"
sed 's/^/# /' "$TMP/badsecret.out"
grep -q 'SignatureDoesNotMatch' "$TMP/badsecret.out" "$TMP/badsecret.err" &&
    no_secret "$TMP/badsecret.out" "$SECRET" && no_secret "$TMP/badsecret.err" "$SECRET"
check $? "a wrong secret: Init fails with SignatureDoesNotMatch, no secret shown"

# 200 instances, sshd-less, pages of 50 and an empty first page.
fake POST group "{\"name\": \"$GROUP\", \"max\": 1000, \"desired\": 0}" >/dev/null
for id in $(fake GET instances | js "' '.join(i['id'] for i in d if i['in_group'])"); do
	fake POST "instances/$id/remove" >/dev/null
done
tl_wait 10 group_count 0
fake POST group "{\"name\": \"$GROUP\", \"desired\": 200, \"instant\": true, \"sshd\": false}" >/dev/null
tl_wait 10 group_count 200
fake POST config '{"page_size": 50, "empty_pages": 1}' >/dev/null
penv AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
    "$PROBE" -T 60000 -c "$TMP/plain.json" "$PLUGIN" start list stop \
    >"$TMP/many.out" 2>"$TMP/many.err"
rc=$?
head -1 "$TMP/many.out" | sed 's/^/# /'
seen=$(grep -c '^i-[0-9a-f]* running$' "$TMP/many.out")
[ $rc -eq 0 ] && [ "$seen" -eq 200 ]
check $? "200 instances in the group: the plugin lists all 200 running ($seen)"

fake POST config '{"page_size": 0, "empty_pages": 0}' >/dev/null
penv AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" \
    "$PROBE" -T 60000 -c "$TMP/plain.json" "$PLUGIN" start \
    sh "curl -s -XPOST $E/__fake/counts/reset >/dev/null" updates 20 \
    sh "curl -s $E/__fake/counts >$TMP/counts20.json" stop \
    >"$TMP/per-update.out" 2>"$TMP/per-update.err"
total=$( { js "d['total']" <"$TMP/counts20.json"; } 2>/dev/null)
per=$(awk -v t="${total:-0}" 'BEGIN { printf "%.2f", t / 20 }')
echo "# aws_update_200: $per HTTP requests per Update ($total for 20)"
[ -n "$total" ] && [ "$total" -le 60 ] && [ "$total" -ge 20 ]
check $? "requests per Update with 200 instances: $per (goal: at most 3)"

fake POST group "{\"name\": \"$GROUP\", \"desired\": 0}" >/dev/null
for id in $(fake GET instances | js "' '.join(i['id'] for i in d if i['in_group'])"); do
	fake POST "instances/$id/remove" >/dev/null
done
viol=$(fake GET violations | js "'; '.join(sorted(set(v for v in d if 'HonorCooldown' in v or 'not signed' in v or 'twice' in v or 'times' in v)))")
[ -z "$viol" ]
check $? "the plugin did nothing the fake flags (HonorCooldown=false, session token signed, single X-Amz-Date)${viol:+: $viol}"
