/*
 * fleeting-plugin-aws's instance group (see aws_group.h for what each
 * call does on the wire).  The plugin keeps little state: the desired
 * capacity it last set (AWS reads are eventually consistent, so its own
 * recent writes are trusted over a describe for a while), the ids the
 * last Update listed (to report each vanished one as deleted once), and
 * the ids it asked to terminate (deleting from then on, whatever a stale
 * describe says).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "aws_client.h"
#include "aws_creds.h"
#include "aws_group.h"
#include "aws_http.h"
#include "aws_sshkey.h"
#include "aws_xml.h"
#include "err.h"
#include "log.h"
#include "xmalloc.h"

/* Our own SetDesiredCapacity is trusted over describes this long. */
#define OWN_WRITE_SECONDS	15
/* Increase describes the group first when it was not read this recently. */
#define FRESH_SECONDS		10
/* Pages of DescribeAutoScalingGroups followed at most. */
#define MAX_PAGES		100

/* ------------------------------------------------------------ pure */

enum plugin_state
aws_lifecycle_state(const char *s)
{
	if (s == NULL)
		return PLUGIN_STATE_CREATING;
	if (strcmp(s, "InService") == 0)
		return PLUGIN_STATE_RUNNING;
	if (strncmp(s, "Terminat", 8) == 0 ||
	    strncmp(s, "Warmed:Terminat", 15) == 0)
		return PLUGIN_STATE_DELETING;
	return PLUGIN_STATE_CREATING;
}

const char *
aws_go_arch(const char *a)
{
	if (a == NULL)
		return NULL;
	if (strcmp(a, "x86_64") == 0 || strcmp(a, "x86_64_mac") == 0)
		return "amd64";
	if (strcmp(a, "arm64") == 0 || strcmp(a, "arm64_mac") == 0)
		return "arm64";
	if (strcmp(a, "i386") == 0)
		return "386";
	return NULL;
}

const char *
aws_os_of(const char *platform, const char *a)
{
	if (a != NULL && (strcmp(a, "x86_64_mac") == 0 ||
	    strcmp(a, "arm64_mac") == 0))
		return "darwin";
	if (platform != NULL && strcasecmp(platform, "windows") == 0)
		return "windows";
	return "linux";
}

/* --------------------------------------------------------- id sets */

struct idset {
	char **ids;
	size_t n, cap;
};

static bool
idset_has(const struct idset *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0)
			return true;
	return false;
}

static void
idset_add(struct idset *s, const char *id)
{
	if (idset_has(s, id))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->ids = xreallocarray(s->ids, s->cap, sizeof(*s->ids));
	}
	s->ids[s->n++] = xstrdup(id);
}

static void
idset_release(struct idset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->ids[i]);
	free(s->ids);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------- the group */

struct di_slot {
	char *id;
	int rc;				/* PLUGIN_* */
	struct aws_ec2_instance inst;
	char err[512];
};

/* One batch of DescribeInstances callers (see describe_instance). */
struct di_round {
	struct di_slot *slots;
	size_t n, cap;
	bool done;
	int users;
};

struct aws_group {
	char *name;
	struct aws_http *http;
	struct aws_creds *creds;
	struct aws_client *client;
	struct plugin_connector settings;
	int64_t init_max;

	pthread_mutex_t lock;		/* the fields below */
	int64_t desired;		/* -1: unknown */
	int64_t max_size;
	time_t own_write_at;
	time_t described_at;
	struct idset seen;
	struct idset deleting;

	pthread_mutex_t scale_lock;	/* Increase and Decrease */

	pthread_mutex_t batch_lock;
	pthread_cond_t batch_cond;
	struct di_round *open_round;
};

/* Free a group moved out of a page. */
static void
asg_free(struct aws_asg *a)
{
	struct aws_asg_page tmp = { 0 };

	tmp.groups = xcalloc(1, sizeof(*a));
	tmp.groups[0] = *a;
	tmp.ngroups = 1;
	aws_asg_page_release(&tmp);
	memset(a, 0, sizeof(*a));
}

/* Read the group (every page); 0 with *found and out, or FL_ERR_*. */
static int
describe_group(struct aws_group *g, struct aws_asg *out, bool *found,
    char *err, size_t errlen)
{
	struct sbuf params, body;
	char *token = NULL;
	int rc = 0, pages = 0;

	*found = false;
	memset(out, 0, sizeof(*out));
	sbuf_init(&params);
	sbuf_init(&body);
	do {
		struct aws_asg_page page;

		sbuf_reset(&params);
		aws_form_add(&params, "AutoScalingGroupNames.member.1", g->name);
		if (token != NULL)
			aws_form_add(&params, "NextToken", token);
		rc = aws_client_query(g->client, AWS_SVC_AUTOSCALING,
		    "DescribeAutoScalingGroups", params.buf, &body, NULL, err,
		    errlen);
		if (rc == 0)
			rc = aws_xml_asg_groups(body.buf, body.len, &page, err,
			    errlen);
		if (rc != 0)
			break;
		for (size_t i = 0; i < page.ngroups; i++) {
			if (strcmp(page.groups[i].name, g->name) != 0)
				continue;
			if (*found) {
				(void)snprintf(err, errlen, "DescribeAutoScaling"
				    "Groups: group %s listed twice", g->name);
				rc = FL_ERR_PROTO;
				break;
			}
			*out = page.groups[i];	/* moved */
			memset(&page.groups[i], 0, sizeof(page.groups[i]));
			*found = true;
		}
		free(token);
		token = page.next_token;
		page.next_token = NULL;
		aws_asg_page_release(&page);
		if (++pages >= MAX_PAGES && token != NULL) {
			(void)snprintf(err, errlen, "DescribeAutoScalingGroups: "
			    "more than %d pages", MAX_PAGES);
			rc = FL_ERR_PROTO;
		}
	} while (rc == 0 && token != NULL);
	free(token);
	sbuf_release(&params);
	sbuf_release(&body);
	if (rc != 0 && *found) {
		asg_free(out);
		*found = false;
	}
	return rc;
}

/* Take a describe's desired capacity and MaxSize (lock held). */
static void
note_group(struct aws_group *g, const struct aws_asg *a, time_t now)
{
	if (now - g->own_write_at >= OWN_WRITE_SECONDS) {
		if (g->desired >= 0 && g->desired != a->desired)
			log_warn("out-of-sync capacity: the group's desired "
			    "capacity is %lld, this plugin expected %lld (is "
			    "something else scaling group %s?)",
			    (long long)a->desired, (long long)g->desired,
			    g->name);
		g->desired = a->desired;
	}
	if (a->max_size != g->max_size)
		log_warn("group %s: MaxSize is now %lld (was %lld; the "
		    "manager keeps the first)", g->name,
		    (long long)a->max_size, (long long)g->max_size);
	g->max_size = a->max_size;
	g->described_at = now;
}

struct aws_group *
aws_group_new(const struct aws_config *cfg,
    const struct plugin_connector *settings,
    struct plugin_provider_info *info, int *rc, char *err, size_t errlen)
{
	struct aws_group *g = xcalloc(1, sizeof(*g));
	struct aws_creds_opts o = {
		.profile = cfg->profile, .config_file = cfg->config_file,
		.credentials_file = cfg->credentials_file, .region = cfg->region,
	};
	struct aws_asg a;
	bool found;

	g->name = xstrdup(cfg->name);
	g->desired = -1;
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->scale_lock, NULL);
	pthread_mutex_init(&g->batch_lock, NULL);
	pthread_cond_init(&g->batch_cond, NULL);
	plugin_connector_copy(&g->settings, settings);
	g->http = aws_http_new();
	*rc = PLUGIN_BAD_CONFIG;
	g->creds = aws_creds_new(g->http, &o, err, errlen);
	if (g->creds == NULL)
		goto fail;
	g->client = aws_client_new(g->http, g->creds, err, errlen);
	if (g->client == NULL)
		goto fail;
	*rc = PLUGIN_FAILED;
	if (describe_group(g, &a, &found, err, errlen) != 0)
		goto fail;
	if (!found) {
		(void)snprintf(err, errlen, "autoscaling group %s not found in "
		    "region %s", g->name, aws_creds_region(g->creds));
		goto fail;
	}
	if (!a.protected_scale_in)
		log_error("group %s: NewInstancesProtectedFromScaleIn is false: "
		    "enable instance scale-in protection, or the group may "
		    "terminate instances that run jobs", g->name);
	g->max_size = a.max_size;
	g->init_max = a.max_size;
	note_group(g, &a, time(NULL));
	for (size_t i = 0; i < a.ninst; i++)
		idset_add(&g->seen, a.inst[i].id);
	{
		char maxs[24], desired[24], ninst[24];
		struct log_field f[] = {
			{ "group", g->name },
			{ "region", aws_creds_region(g->creds) },
			{ "credentials", aws_creds_source_name(
			    aws_creds_source(g->creds)) },
			{ "max_size", maxs }, { "desired", desired },
			{ "instances", ninst },
		};
		(void)snprintf(maxs, sizeof(maxs), "%lld", (long long)a.max_size);
		(void)snprintf(desired, sizeof(desired), "%lld",
		    (long long)a.desired);
		(void)snprintf(ninst, sizeof(ninst), "%zu", a.ninst);
		log_infof(f, sizeof(f) / sizeof(f[0]), "autoscaling group ready");
	}
	(void)snprintf(info->id, sizeof(info->id), "aws/%s/%s",
	    aws_creds_region(g->creds), g->name);
	info->max_size = a.max_size;
	asg_free(&a);
	*rc = PLUGIN_OK;
	return g;
fail:
	aws_group_free(g);
	return NULL;
}

void
aws_group_free(struct aws_group *g)
{
	if (g == NULL)
		return;
	aws_client_free(g->client);
	aws_creds_free(g->creds);
	aws_http_free(g->http);
	plugin_connector_release(&g->settings);
	idset_release(&g->seen);
	idset_release(&g->deleting);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->scale_lock);
	pthread_mutex_destroy(&g->batch_lock);
	pthread_cond_destroy(&g->batch_cond);
	free(g->name);
	free(g);
}

/* ---------------------------------------------------------- Update */

int
aws_group_update(struct aws_group *g, plugin_emit_fn emit, void *emit_arg,
    char *err, size_t errlen)
{
	struct aws_asg a;
	struct idset now_seen = { 0 }, still_deleting = { 0 };
	bool found;
	time_t now;

	if (describe_group(g, &a, &found, err, errlen) != 0)
		return PLUGIN_FAILED;
	if (!found) {
		(void)snprintf(err, errlen, "autoscaling group %s not found",
		    g->name);
		return PLUGIN_FAILED;
	}
	now = time(NULL);
	pthread_mutex_lock(&g->lock);
	note_group(g, &a, now);
	for (size_t i = 0; i < a.ninst; i++) {
		const struct aws_asg_instance *in = &a.inst[i];
		enum plugin_state st = aws_lifecycle_state(in->lifecycle);

		if (idset_has(&now_seen, in->id))
			continue;
		idset_add(&now_seen, in->id);
		if (idset_has(&g->deleting, in->id)) {
			idset_add(&still_deleting, in->id);
			st = PLUGIN_STATE_DELETING;
		}
		emit(emit_arg, in->id, st, st == PLUGIN_STATE_CREATING ||
		    st == PLUGIN_STATE_DELETING ? in->lifecycle : NULL);
	}
	for (size_t i = 0; i < g->seen.n; i++)
		if (!idset_has(&now_seen, g->seen.ids[i]))
			emit(emit_arg, g->seen.ids[i], PLUGIN_STATE_DELETED,
			    "no longer in the group");
	idset_release(&g->seen);
	g->seen = now_seen;
	idset_release(&g->deleting);
	g->deleting = still_deleting;
	pthread_mutex_unlock(&g->lock);
	asg_free(&a);
	return PLUGIN_OK;
}

/* -------------------------------------------------------- Increase */

int
aws_group_increase(struct aws_group *g, int64_t delta, int64_t *succeeded,
    char *err, size_t errlen)
{
	struct sbuf params;
	int64_t desired, max, target;
	time_t now = time(NULL);
	char num[24];
	int rc;

	pthread_mutex_lock(&g->scale_lock);
	pthread_mutex_lock(&g->lock);
	bool stale = g->desired < 0 ||
	    (now - g->described_at >= FRESH_SECONDS &&
	    now - g->own_write_at >= FRESH_SECONDS);
	pthread_mutex_unlock(&g->lock);
	if (stale) {
		struct aws_asg a;
		bool found;

		if (describe_group(g, &a, &found, err, errlen) != 0) {
			pthread_mutex_unlock(&g->scale_lock);
			return PLUGIN_FAILED;
		}
		if (!found) {
			(void)snprintf(err, errlen, "autoscaling group %s not "
			    "found", g->name);
			pthread_mutex_unlock(&g->scale_lock);
			return PLUGIN_FAILED;
		}
		pthread_mutex_lock(&g->lock);
		note_group(g, &a, now);
		pthread_mutex_unlock(&g->lock);
		asg_free(&a);
	}
	pthread_mutex_lock(&g->lock);
	desired = g->desired;
	max = g->max_size;
	pthread_mutex_unlock(&g->lock);

	target = desired + delta;
	if (target > max)
		target = max;
	if (target <= desired) {
		(void)snprintf(err, errlen, "max_size %lld reached: %lld of %lld "
		    "instances not requested", (long long)max, (long long)delta,
		    (long long)delta);
		pthread_mutex_unlock(&g->scale_lock);
		return PLUGIN_FAILED;
	}
	sbuf_init(&params);
	aws_form_add(&params, "AutoScalingGroupName", g->name);
	(void)snprintf(num, sizeof(num), "%lld", (long long)target);
	aws_form_add(&params, "DesiredCapacity", num);
	aws_form_add(&params, "HonorCooldown", "false");
	rc = aws_client_query(g->client, AWS_SVC_AUTOSCALING,
	    "SetDesiredCapacity", params.buf, NULL, NULL, err, errlen);
	sbuf_release(&params);
	if (rc != 0) {
		pthread_mutex_unlock(&g->scale_lock);
		return PLUGIN_FAILED;
	}
	pthread_mutex_lock(&g->lock);
	g->desired = target;
	g->own_write_at = time(NULL);
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_unlock(&g->scale_lock);
	*succeeded = target - desired;
	log_info("desired capacity of %s: %lld -> %lld", g->name,
	    (long long)desired, (long long)target);
	if (*succeeded < delta)
		(void)snprintf(err, errlen, "max_size %lld reached: %lld of %lld "
		    "instances not requested", (long long)max,
		    (long long)(delta - *succeeded), (long long)delta);
	return PLUGIN_OK;
}

/* -------------------------------------------------------- Decrease */

/* An answer meaning the group has no such instance (any more). */
static bool
instance_gone(const struct aws_error *e)
{
	return strcmp(e->code, "ValidationError") == 0 &&
	    (strstr(e->message, "not found") != NULL ||
	    strstr(e->message, "No managed instance") != NULL);
}

int
aws_group_decrease(struct aws_group *g, const char *const *ids, size_t n,
    bool *succeeded, char *err, size_t errlen)
{
	char first[PLUGIN_ERR_MAX] = "";
	size_t ok = 0, failed = 0;
	bool stop = false;

	pthread_mutex_lock(&g->scale_lock);
	for (size_t i = 0; i < n && !stop; i++) {
		struct sbuf params;
		struct aws_error e;
		char one[PLUGIN_ERR_MAX];
		int rc;

		sbuf_init(&params);
		aws_form_add(&params, "InstanceId", ids[i]);
		aws_form_add(&params, "ShouldDecrementDesiredCapacity", "true");
		rc = aws_client_query(g->client, AWS_SVC_AUTOSCALING,
		    "TerminateInstanceInAutoScalingGroup", params.buf, NULL, &e,
		    one, sizeof(one));
		sbuf_release(&params);
		if (rc == 0 || (rc == FL_ERR_PROTO && instance_gone(&e))) {
			succeeded[i] = true;
			ok++;
			pthread_mutex_lock(&g->lock);
			idset_add(&g->deleting, ids[i]);
			if (rc == 0 && g->desired > 0) {
				g->desired--;
				g->own_write_at = time(NULL);
			}
			pthread_mutex_unlock(&g->lock);
			if (rc == 0)
				log_info("terminating instance %s", ids[i]);
			continue;
		}
		failed++;
		if (first[0] == '\0')
			(void)snprintf(first, sizeof(first), "%.255s: %.700s",
			    ids[i], one);
		/* Per-instance refusals go on; throttling, auth, network stop. */
		stop = !(rc == FL_ERR_PROTO && e.status >= 400 && e.status < 500 &&
		    strcmp(e.code, "ValidationError") == 0);
	}
	pthread_mutex_unlock(&g->scale_lock);
	if (ok == n)
		return PLUGIN_OK;
	(void)snprintf(err, errlen, "%zu of %zu instances not deleted: %s",
	    failed, n, first);
	if (failed < n - ok)
		(void)snprintf(err + strlen(err), errlen - strlen(err),
		    " (%zu not tried)", n - ok - failed);
	return ok > 0 ? PLUGIN_OK : PLUGIN_FAILED;
}

/* ------------------------------------------- DescribeInstances batches */

/* Describe the round's ids (one call; one per id if one is missing). */
static void
run_round(struct aws_group *g, struct di_slot *slots, size_t n)
{
	struct sbuf params, body;
	struct aws_ec2_page page;
	struct aws_error e;
	char err[512];
	int rc;

	sbuf_init(&params);
	sbuf_init(&body);
	for (size_t i = 0; i < n; i++) {
		char key[32];

		(void)snprintf(key, sizeof(key), "InstanceId.%zu", i + 1);
		aws_form_add(&params, key, slots[i].id);
	}
	rc = aws_client_query(g->client, AWS_SVC_EC2, "DescribeInstances",
	    params.buf, &body, &e, err, sizeof(err));
	if (rc == 0)
		rc = aws_xml_ec2_instances(body.buf, body.len, &page, err,
		    sizeof(err));
	sbuf_release(&params);
	sbuf_release(&body);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			slots[i].rc = PLUGIN_NOT_FOUND;
			(void)snprintf(slots[i].err, sizeof(slots[i].err),
			    "no instance %s", slots[i].id);
			for (size_t k = 0; k < page.n; k++)
				if (strcmp(page.inst[k].id, slots[i].id) == 0) {
					slots[i].rc = PLUGIN_OK;
					aws_ec2_instance_copy(&slots[i].inst,
					    &page.inst[k]);
					break;
				}
		}
		aws_ec2_page_release(&page);
		return;
	}
	if (rc == FL_ERR_PROTO &&
	    (strcmp(e.code, "InvalidInstanceID.NotFound") == 0 ||
	    strcmp(e.code, "InvalidInstanceID.Malformed") == 0)) {
		if (n == 1) {
			slots[0].rc = PLUGIN_NOT_FOUND;
			(void)snprintf(slots[0].err, sizeof(slots[0].err), "%s",
			    err);
			return;
		}
		for (size_t i = 0; i < n; i++)
			run_round(g, &slots[i], 1);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		slots[i].rc = PLUGIN_FAILED;
		(void)snprintf(slots[i].err, sizeof(slots[i].err), "%s", err);
	}
}

/*
 * The EC2 view of one instance, batched: the first caller opens a round
 * and waits AWS_BATCH_WINDOW_MS for others to join, then describes every
 * id of the round in one DescribeInstances and wakes them.  PLUGIN_OK
 * with out filled, PLUGIN_NOT_FOUND, or PLUGIN_FAILED with err.
 */
static int
describe_instance(struct aws_group *g, const char *id,
    struct aws_ec2_instance *out, char *err, size_t errlen)
{
	struct di_round *r;
	struct di_slot *s;
	size_t idx = 0;
	bool leader = false, last;
	int rc;

	pthread_mutex_lock(&g->batch_lock);
	r = g->open_round;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		g->open_round = r;
		leader = true;
	}
	for (idx = 0; idx < r->n; idx++)
		if (strcmp(r->slots[idx].id, id) == 0)
			break;
	if (idx == r->n) {
		if (r->n == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 8;
			r->slots = xreallocarray(r->slots, r->cap,
			    sizeof(*r->slots));
		}
		memset(&r->slots[r->n], 0, sizeof(r->slots[0]));
		r->slots[r->n++].id = xstrdup(id);
	}
	r->users++;
	if (r->n >= AWS_BATCH_MAX && g->open_round == r)
		g->open_round = NULL;
	if (leader) {
		pthread_mutex_unlock(&g->batch_lock);
		usleep(AWS_BATCH_WINDOW_MS * 1000);
		pthread_mutex_lock(&g->batch_lock);
		if (g->open_round == r)
			g->open_round = NULL;
		pthread_mutex_unlock(&g->batch_lock);
		/* Closed: nobody else touches r->slots until done. */
		run_round(g, r->slots, r->n);
		pthread_mutex_lock(&g->batch_lock);
		r->done = true;
		pthread_cond_broadcast(&g->batch_cond);
	} else {
		while (!r->done)
			pthread_cond_wait(&g->batch_cond, &g->batch_lock);
	}
	s = &r->slots[idx];
	rc = s->rc;
	if (rc == PLUGIN_OK)
		aws_ec2_instance_copy(out, &s->inst);
	else
		(void)snprintf(err, errlen, "%s", s->err);
	last = --r->users == 0;
	pthread_mutex_unlock(&g->batch_lock);
	if (last) {
		for (size_t i = 0; i < r->n; i++) {
			free(r->slots[i].id);
			aws_ec2_instance_release(&r->slots[i].inst);
		}
		free(r->slots);
		free(r);
	}
	return rc;
}

/* The instance, checked to be this group's; PLUGIN_* as above. */
static int
our_instance(struct aws_group *g, const char *id, struct aws_ec2_instance *in,
    char *err, size_t errlen)
{
	int rc = describe_instance(g, id, in, err, errlen);

	if (rc != PLUGIN_OK)
		return rc;
	if (in->group != NULL && strcmp(in->group, g->name) != 0) {
		(void)snprintf(err, errlen, "instance %s belongs to group %s, "
		    "not %s", id, in->group, g->name);
		aws_ec2_instance_release(in);
		return PLUGIN_NOT_FOUND;
	}
	if (strcmp(in->state, "terminated") == 0) {
		(void)snprintf(err, errlen, "instance %s is terminated", id);
		aws_ec2_instance_release(in);
		return PLUGIN_NOT_FOUND;
	}
	return PLUGIN_OK;
}

/* ----------------------------------------------------- ConnectInfo */

static int64_t
now_unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Push a new key for user to the instance; fill out's key and expiry. */
static int
push_key(struct aws_group *g, const struct aws_ec2_instance *in,
    const char *user, struct plugin_connect_info *out, char *err,
    size_t errlen)
{
	struct aws_error e;
	struct sbuf body;
	json_t *req, *ans;
	char *priv, *pub, *json;
	size_t priv_len;
	int64_t pushed;
	int rc;

	if (aws_sshkey_new("fleeting-plugin-aws", &priv, &priv_len, &pub) != 0) {
		(void)snprintf(err, errlen, "generating an ed25519 key failed");
		return PLUGIN_FAILED;
	}
	req = json_pack("{s:s, s:s, s:s}", "InstanceId", in->id,
	    "InstanceOSUser", user, "SSHPublicKey", pub);
	if (in->az != NULL)
		json_object_set_new(req, "AvailabilityZone", json_string(in->az));
	json = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	free(pub);
	sbuf_init(&body);
	pushed = now_unix_ns();
	rc = aws_client_json(g->client, AWS_SVC_INSTANCE_CONNECT,
	    "AWSEC2InstanceConnectService", "SendSSHPublicKey", json, &body, &e,
	    err, errlen);
	free(json);
	if (rc == 0) {
		ans = json_loadb(body.buf, body.len, 0, NULL);
		if (!json_is_true(json_object_get(ans, "Success"))) {
			(void)snprintf(err, errlen, "SendSSHPublicKey: the answer "
			    "is not Success: true");
			rc = FL_ERR_PROTO;
		}
		json_decref(ans);
	}
	sbuf_release(&body);
	if (rc != 0) {
		freezero(priv, priv_len);
		if (strcmp(e.code, "EC2InstanceNotFoundException") == 0)
			return PLUGIN_NOT_FOUND;
		return PLUGIN_FAILED;
	}
	plugin_set_key(&out->connector, priv, priv_len);
	freezero(priv, priv_len);
	log_info("ephemeral key for %s@%s sent with SendSSHPublicKey", user,
	    in->id);
	out->expires_unix_ns = pushed + (int64_t)AWS_IC_KEY_SECONDS * 1000000000;
	return PLUGIN_OK;
}

static bool
empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

int
aws_group_connect_info(struct aws_group *g, const char *id,
    struct plugin_connect_info *out, char *err, size_t errlen)
{
	struct aws_ec2_instance in = { 0 };
	struct plugin_connector *c = &out->connector;
	const char *os, *arch;
	bool windows;
	int rc;

	rc = our_instance(g, id, &in, err, errlen);
	if (rc != PLUGIN_OK)
		return rc;
	if (strcmp(in.state, "running") != 0) {
		(void)snprintf(err, errlen, "instance %s is %s", id, in.state);
		rc = strcmp(in.state, "pending") == 0 ? PLUGIN_FAILED :
		    PLUGIN_UNHEALTHY;
		goto out;
	}
	if (empty(in.private_ip) && empty(in.public_ip)) {
		(void)snprintf(err, errlen, "instance %s has no IP address yet",
		    id);
		rc = PLUGIN_FAILED;
		goto out;
	}
	os = aws_os_of(in.platform, in.arch);
	if (empty(c->os))
		plugin_set_str(&c->os, os);
	windows = strcmp(c->os, "windows") == 0;
	arch = aws_go_arch(in.arch);
	if (empty(c->arch) && arch != NULL)
		plugin_set_str(&c->arch, arch);
	if (empty(c->username))
		plugin_set_str(&c->username, windows ? "Administrator" :
		    "ec2-user");
	if (empty(c->protocol))
		plugin_set_str(&c->protocol, windows ? "winrm" : "ssh");
	if (!empty(in.private_ip))
		out->internal_addr = xstrdup(in.private_ip);
	if (!empty(in.public_ip))
		out->external_addr = xstrdup(in.public_ip);
	if (c->use_static_credentials)
		goto out;
	if (strcmp(c->protocol, "ssh") != 0) {
		(void)snprintf(err, errlen, "use_static_credentials = false "
		    "provisions ssh keys only (EC2 Instance Connect); for %s set "
		    "use_static_credentials = true with a password",
		    c->protocol);
		rc = PLUGIN_FAILED;
		goto out;
	}
	rc = push_key(g, &in, c->username, out, err, errlen);
out:
	aws_ec2_instance_release(&in);
	return rc;
}

/* ------------------------------------------------------- Heartbeat */

int
aws_group_heartbeat(struct aws_group *g, const char *id, char *err,
    size_t errlen)
{
	struct aws_ec2_instance in = { 0 };
	int rc = our_instance(g, id, &in, err, errlen);

	if (rc == PLUGIN_FAILED) {
		/* The API failed, not the instance: healthy until known. */
		log_warn("heartbeat of %s: %s (taken as healthy)", id, err);
		return PLUGIN_OK;
	}
	if (rc != PLUGIN_OK)
		return rc;
	if (strcmp(in.state, "running") != 0 &&
	    strcmp(in.state, "pending") != 0) {
		(void)snprintf(err, errlen, "instance %s is %s", id, in.state);
		rc = PLUGIN_UNHEALTHY;
	}
	aws_ec2_instance_release(&in);
	return rc;
}
