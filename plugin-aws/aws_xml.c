/*
 * The AWS XML answers fleeting-plugin-aws reads (see aws_xml.h).  A
 * small set of helpers walks libxml2's tree by local element name; each
 * parser then picks the fields it needs and refuses documents that lack
 * them.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "aws_xml.h"
#include "err.h"
#include "xmalloc.h"

void
aws_xml_init(void)
{
	xmlInitParser();
}

void
aws_xml_cleanup(void)
{
	xmlCleanupParser();
}

/*
 * Parse without network or error output; NULL if malformed.  AWS never
 * sends a DOCTYPE: a document with one is refused, so no entity (and no
 * entity expansion bomb) is ever seen.
 */
static xmlDoc *
doc_read(const char *xml, size_t len)
{
	xmlDoc *doc;

	if (xml == NULL || len == 0 || len > INT_MAX)
		return NULL;
	doc = xmlReadMemory(xml, (int)len, "aws.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	    XML_PARSE_NOCDATA);
	if (doc != NULL && (doc->intSubset != NULL || doc->extSubset != NULL)) {
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

static bool
named(const xmlNode *n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE &&
	    strcmp((const char *)n->name, name) == 0;
}

/* The first child element called name, or NULL. */
static xmlNode *
child(const xmlNode *n, const char *name)
{
	if (n == NULL)
		return NULL;
	for (xmlNode *c = n->children; c != NULL; c = c->next)
		if (named(c, name))
			return c;
	return NULL;
}

/* Follow a path of child names ("a/b/c" as separate arguments). */
static xmlNode *
path(const xmlNode *n, const char *const *names)
{
	xmlNode *cur = (xmlNode *)n;

	for (; *names != NULL && cur != NULL; names++)
		cur = child(cur, *names);
	return cur;
}

/* The trimmed text of element n as a heap string; NULL if n is NULL or
 * its text is empty. */
static char *
text(const xmlNode *n)
{
	xmlChar *c;
	char *s = NULL;
	const char *b, *e;

	if (n == NULL)
		return NULL;
	c = xmlNodeGetContent(n);
	if (c == NULL)
		return NULL;
	b = (const char *)c;
	while (*b && isspace((unsigned char)*b))
		b++;
	e = b + strlen(b);
	while (e > b && isspace((unsigned char)e[-1]))
		e--;
	if (e > b)
		s = xstrndup(b, (size_t)(e - b));
	xmlFree(c);
	return s;
}

static char *
child_text(const xmlNode *n, const char *name)
{
	return text(child(n, name));
}

/* An integer child; 0 or FL_ERR_PARSE (absent or malformed). */
static int
child_int(const xmlNode *n, const char *name, int64_t *out)
{
	char *s = child_text(n, name), *end;
	long long v;
	int rc = FL_ERR_PARSE;

	if (s != NULL) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno == 0 && *end == '\0' && end != s) {
			*out = v;
			rc = 0;
		}
	}
	free(s);
	return rc;
}

static bool
child_bool(const xmlNode *n, const char *name)
{
	char *s = child_text(n, name);
	bool v = s != NULL && strcmp(s, "true") == 0;

	free(s);
	return v;
}

/* ------------------------------------------------ DescribeAutoScalingGroups */

static void
asg_release(struct aws_asg *g)
{
	free(g->name);
	for (size_t i = 0; i < g->ninst; i++) {
		free(g->inst[i].id);
		free(g->inst[i].lifecycle);
		free(g->inst[i].health);
	}
	free(g->inst);
}

void
aws_asg_page_release(struct aws_asg_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->ngroups; i++)
		asg_release(&p->groups[i]);
	free(p->groups);
	free(p->next_token);
	memset(p, 0, sizeof(*p));
}

static size_t
count_children(const xmlNode *n, const char *name)
{
	size_t k = 0;

	if (n == NULL)
		return 0;
	for (xmlNode *c = n->children; c != NULL; c = c->next)
		if (named(c, name))
			k++;
	return k;
}

static int
parse_asg(const xmlNode *m, struct aws_asg *g, char *err, size_t errlen)
{
	xmlNode *insts;

	g->name = child_text(m, "AutoScalingGroupName");
	if (g->name == NULL) {
		(void)snprintf(err, errlen, "DescribeAutoScalingGroups: a group "
		    "without AutoScalingGroupName");
		return FL_ERR_PARSE;
	}
	if (child_int(m, "MinSize", &g->min_size) != 0 ||
	    child_int(m, "MaxSize", &g->max_size) != 0 ||
	    child_int(m, "DesiredCapacity", &g->desired) != 0) {
		(void)snprintf(err, errlen, "DescribeAutoScalingGroups: group "
		    "%.100s without MinSize, MaxSize or DesiredCapacity",
		    g->name);
		return FL_ERR_PARSE;
	}
	g->protected_scale_in = child_bool(m, "NewInstancesProtectedFromScaleIn");
	insts = child(m, "Instances");
	g->ninst = count_children(insts, "member");
	g->inst = xcalloc(g->ninst ? g->ninst : 1, sizeof(*g->inst));
	size_t k = 0;
	for (xmlNode *c = insts ? insts->children : NULL; c; c = c->next) {
		if (!named(c, "member"))
			continue;
		struct aws_asg_instance *in = &g->inst[k++];
		in->id = child_text(c, "InstanceId");
		in->lifecycle = child_text(c, "LifecycleState");
		in->health = child_text(c, "HealthStatus");
		if (in->id == NULL || in->lifecycle == NULL) {
			(void)snprintf(err, errlen, "DescribeAutoScalingGroups: "
			    "an instance of %.100s without InstanceId or "
			    "LifecycleState", g->name);
			return FL_ERR_PARSE;
		}
	}
	return 0;
}

int
aws_xml_asg_groups(const char *xml, size_t len, struct aws_asg_page *out,
    char *err, size_t errlen)
{
	static const char *const result[] = { "DescribeAutoScalingGroupsResult",
	    NULL };
	xmlDoc *doc;
	xmlNode *root, *res, *list;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	doc = doc_read(xml, len);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!named(root, "DescribeAutoScalingGroupsResponse")) {
		(void)snprintf(err, errlen, "DescribeAutoScalingGroups: the "
		    "answer is not a DescribeAutoScalingGroupsResponse");
		xmlFreeDoc(doc);
		return FL_ERR_PARSE;
	}
	res = path(root, result);
	if (res == NULL) {
		(void)snprintf(err, errlen, "DescribeAutoScalingGroups: no "
		    "DescribeAutoScalingGroupsResult");
		xmlFreeDoc(doc);
		return FL_ERR_PARSE;
	}
	list = child(res, "AutoScalingGroups");
	out->ngroups = count_children(list, "member");
	out->groups = xcalloc(out->ngroups ? out->ngroups : 1,
	    sizeof(*out->groups));
	size_t k = 0;
	for (xmlNode *c = list ? list->children : NULL; c && rc == 0;
	    c = c->next)
		if (named(c, "member"))
			rc = parse_asg(c, &out->groups[k++], err, errlen);
	if (rc == 0)
		out->next_token = child_text(res, "NextToken");
	xmlFreeDoc(doc);
	if (rc != 0)
		aws_asg_page_release(out);
	return rc;
}

/* ---------------------------------------------------- DescribeInstances */

void
aws_ec2_instance_release(struct aws_ec2_instance *i)
{
	if (i == NULL)
		return;
	free(i->id);
	free(i->state);
	free(i->private_ip);
	free(i->public_ip);
	free(i->arch);
	free(i->platform);
	free(i->az);
	free(i->group);
	memset(i, 0, sizeof(*i));
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void
aws_ec2_instance_copy(struct aws_ec2_instance *dst,
    const struct aws_ec2_instance *src)
{
	dst->id = dup_or_null(src->id);
	dst->state = dup_or_null(src->state);
	dst->private_ip = dup_or_null(src->private_ip);
	dst->public_ip = dup_or_null(src->public_ip);
	dst->arch = dup_or_null(src->arch);
	dst->platform = dup_or_null(src->platform);
	dst->az = dup_or_null(src->az);
	dst->group = dup_or_null(src->group);
}

void
aws_ec2_page_release(struct aws_ec2_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		aws_ec2_instance_release(&p->inst[i]);
	free(p->inst);
	free(p->next_token);
	memset(p, 0, sizeof(*p));
}

static int
parse_ec2_instance(const xmlNode *it, struct aws_ec2_instance *in, char *err,
    size_t errlen)
{
	static const char *const state[] = { "instanceState", "name", NULL };
	static const char *const az[] = { "placement", "availabilityZone",
	    NULL };
	xmlNode *tags;

	in->id = child_text(it, "instanceId");
	in->state = text(path(it, state));
	if (in->id == NULL || in->state == NULL) {
		(void)snprintf(err, errlen, "DescribeInstances: an instance "
		    "without instanceId or instanceState");
		return FL_ERR_PARSE;
	}
	in->private_ip = child_text(it, "privateIpAddress");
	in->public_ip = child_text(it, "ipAddress");
	in->arch = child_text(it, "architecture");
	in->platform = child_text(it, "platform");
	in->az = text(path(it, az));
	tags = child(it, "tagSet");
	for (xmlNode *t = tags ? tags->children : NULL; t; t = t->next) {
		if (!named(t, "item"))
			continue;
		char *k = child_text(t, "key");
		if (k != NULL && strcmp(k, "aws:autoscaling:groupName") == 0 &&
		    in->group == NULL)
			in->group = child_text(t, "value");
		free(k);
	}
	return 0;
}

int
aws_xml_ec2_instances(const char *xml, size_t len, struct aws_ec2_page *out,
    char *err, size_t errlen)
{
	xmlDoc *doc;
	xmlNode *root, *rs;
	size_t n = 0, k = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	doc = doc_read(xml, len);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!named(root, "DescribeInstancesResponse")) {
		(void)snprintf(err, errlen, "DescribeInstances: the answer is "
		    "not a DescribeInstancesResponse");
		xmlFreeDoc(doc);
		return FL_ERR_PARSE;
	}
	rs = child(root, "reservationSet");
	for (xmlNode *r = rs ? rs->children : NULL; r; r = r->next)
		if (named(r, "item"))
			n += count_children(child(r, "instancesSet"), "item");
	out->inst = xcalloc(n ? n : 1, sizeof(*out->inst));
	for (xmlNode *r = rs ? rs->children : NULL; r && rc == 0; r = r->next) {
		if (!named(r, "item"))
			continue;
		xmlNode *is = child(r, "instancesSet");
		for (xmlNode *i = is ? is->children : NULL; i && rc == 0;
		    i = i->next) {
			if (!named(i, "item"))
				continue;
			out->n = k + 1;
			rc = parse_ec2_instance(i, &out->inst[k++], err, errlen);
		}
	}
	if (rc == 0)
		out->next_token = child_text(root, "nextToken");
	xmlFreeDoc(doc);
	if (rc != 0)
		aws_ec2_page_release(out);
	return rc;
}

/* ------------------------------------------------------------------ STS */

int
aws_xml_sts_credentials(const char *xml, size_t len, struct aws_keys *keys,
    char *err, size_t errlen)
{
	static const char *const creds[] = {
	    "AssumeRoleWithWebIdentityResult", "Credentials", NULL };
	xmlDoc *doc;
	xmlNode *root, *c;
	char *exp = NULL;
	int rc = 0;

	memset(keys, 0, sizeof(*keys));
	doc = doc_read(xml, len);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	c = named(root, "AssumeRoleWithWebIdentityResponse") ?
	    path(root, creds) : NULL;
	if (c != NULL) {
		keys->akid = child_text(c, "AccessKeyId");
		keys->secret = child_text(c, "SecretAccessKey");
		keys->token = child_text(c, "SessionToken");
		exp = child_text(c, "Expiration");
	}
	if (keys->akid == NULL || keys->secret == NULL || keys->token == NULL ||
	    aws_parse_time(exp, &keys->expires) != 0) {
		(void)snprintf(err, errlen, "AssumeRoleWithWebIdentity: the "
		    "answer has no complete Credentials");
		aws_keys_release(keys);
		rc = FL_ERR_PARSE;
	}
	free(exp);
	/* The tree held the secrets: wipe its text before freeing. */
	if (c != NULL)
		for (xmlNode *f = c->children; f != NULL; f = f->next)
			if (f->type == XML_ELEMENT_NODE && f->children != NULL &&
			    f->children->type == XML_TEXT_NODE &&
			    f->children->content != NULL)
				explicit_bzero(f->children->content,
				    strlen((char *)f->children->content));
	xmlFreeDoc(doc);
	return rc;
}

/* --------------------------------------------------------------- errors */

/* Copy s into buf (size n), control characters as spaces, truncated. */
static void
copy_clean(char *buf, size_t n, const char *s)
{
	size_t i = 0;

	if (n == 0)
		return;
	for (; s != NULL && s[i] != '\0' && i + 1 < n; i++)
		buf[i] = ((unsigned char)s[i] < ' ' || s[i] == 0x7f) ? ' ' :
		    s[i];
	buf[i] = '\0';
}

int
aws_xml_error(const char *xml, size_t len, char *code, size_t codelen,
    char *msg, size_t msglen)
{
	static const char *const ec2[] = { "Errors", "Error", NULL };
	xmlDoc *doc = doc_read(xml, len);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL, *e = NULL;
	char *c, *m;

	if (named(root, "ErrorResponse"))
		e = child(root, "Error");
	else if (named(root, "Response"))
		e = path(root, ec2);
	else if (named(root, "Error"))
		e = root;
	c = child_text(e, "Code");
	if (c == NULL) {
		xmlFreeDoc(doc);
		return FL_ERR_PARSE;
	}
	m = child_text(e, "Message");
	copy_clean(code, codelen, c);
	copy_clean(msg, msglen, m ? m : "");
	free(c);
	free(m);
	xmlFreeDoc(doc);
	return 0;
}

bool
aws_xml_is_response(const char *xml, size_t len, const char *root)
{
	xmlDoc *doc = doc_read(xml, len);
	bool ok = doc != NULL && named(xmlDocGetRootElement(doc), root);

	xmlFreeDoc(doc);
	return ok;
}
