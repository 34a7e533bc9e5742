/*
 * The XML answers of the AWS Query APIs fleeting-plugin-aws calls (Auto
 * Scaling 2011-01-01, EC2 2016-11-15, STS 2011-06-15), read with libxml2
 * into plain structs: pure functions over a buffer, so every answer shape
 * is unit-tested without a network.  Elements are matched by local name
 * (namespaces ignored, as the SDKs do); unknown elements are skipped; a
 * document that is not well-formed XML, or lacks what the caller needs,
 * is refused whole.  No entity is expanded and nothing is fetched.
 */
#ifndef FL_AWS_XML_H
#define FL_AWS_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws_http.h"

/* Call once before threads start (libxml2's parser initialisation). */
void aws_xml_init(void);
void aws_xml_cleanup(void);

/* One instance of an Auto Scaling group. */
struct aws_asg_instance {
	char *id;
	char *lifecycle;	/* "InService", "Pending", ... */
	char *health;		/* "HEALTHY", "UNHEALTHY" or NULL */
};

struct aws_asg {
	char *name;
	int64_t min_size;
	int64_t max_size;
	int64_t desired;
	bool protected_scale_in;	/* NewInstancesProtectedFromScaleIn */
	struct aws_asg_instance *inst;
	size_t ninst;
};

/* One page of DescribeAutoScalingGroups. */
struct aws_asg_page {
	struct aws_asg *groups;
	size_t ngroups;
	char *next_token;	/* NULL on the last page */
};

/*
 * Parse a DescribeAutoScalingGroupsResponse into out (zeroed first).  0,
 * or FL_ERR_PARSE with the reason in err (out released).
 */
int aws_xml_asg_groups(const char *xml, size_t len, struct aws_asg_page *out,
    char *err, size_t errlen);
void aws_asg_page_release(struct aws_asg_page *p);

/* One EC2 instance as DescribeInstances describes it. */
struct aws_ec2_instance {
	char *id;
	char *state;		/* "pending", "running", ... */
	char *private_ip;	/* NULL when none */
	char *public_ip;	/* NULL when none */
	char *arch;		/* "x86_64", "arm64", ... */
	char *platform;		/* "windows" or NULL */
	char *az;		/* placement availability zone */
	char *group;		/* tag aws:autoscaling:groupName or NULL */
};

struct aws_ec2_page {
	struct aws_ec2_instance *inst;
	size_t n;
	char *next_token;
};

/* Parse a DescribeInstancesResponse (reservationSet/item/instancesSet). */
int aws_xml_ec2_instances(const char *xml, size_t len,
    struct aws_ec2_page *out, char *err, size_t errlen);
void aws_ec2_page_release(struct aws_ec2_page *p);
void aws_ec2_instance_release(struct aws_ec2_instance *i);
void aws_ec2_instance_copy(struct aws_ec2_instance *dst,
    const struct aws_ec2_instance *src);

/*
 * AssumeRoleWithWebIdentityResponse's Credentials into keys (all four
 * fields required).  0 or FL_ERR_PARSE.
 */
int aws_xml_sts_credentials(const char *xml, size_t len,
    struct aws_keys *keys, char *err, size_t errlen);

/*
 * An AWS error document: <ErrorResponse><Error><Code/><Message/> (Query
 * APIs, STS), <Response><Errors><Error><Code/><Message/> (EC2) or a bare
 * <Error>.  0 with code and message copied (truncated to their buffers,
 * control characters replaced by spaces), or FL_ERR_PARSE if xml is not
 * one of these.
 */
int aws_xml_error(const char *xml, size_t len, char *code, size_t codelen,
    char *msg, size_t msglen);

/* Whether xml is a well-formed document whose root is named root (e.g.
 * "SetDesiredCapacityResponse"). */
bool aws_xml_is_response(const char *xml, size_t len, const char *root);

#endif
