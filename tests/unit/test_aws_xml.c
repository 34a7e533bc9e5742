/*
 * Unit tests for fleeting-plugin-aws's XML answers (plugin-aws/aws_xml.c):
 * every answer shape the plugin reads, as AWS (and the botocore models)
 * write them: DescribeAutoScalingGroups with instances and NextToken, an
 * empty page, EC2 DescribeInstances (reservations, nextToken, tags, no
 * addresses once terminated), STS credentials, both error documents, and
 * the refusals (malformed XML, wrong root, missing fields, entities).
 *
 * The plugin's sources are not in a library, so the files under test are
 * compiled into this program directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugin-aws/aws_http.c"
#include "../../plugin-aws/aws_xml.c"

#define ASG_NS "http://autoscaling.amazonaws.com/doc/2011-01-01/"
#define EC2_NS "http://ec2.amazonaws.com/doc/2016-11-15/"

static const char asg_page[] =
    "<?xml version=\"1.0\"?>\n"
    "<DescribeAutoScalingGroupsResponse xmlns=\"" ASG_NS "\">\n"
    " <DescribeAutoScalingGroupsResult>\n"
    "  <AutoScalingGroups>\n"
    "   <member>\n"
    "    <AutoScalingGroupName>runners</AutoScalingGroupName>\n"
    "    <MinSize>0</MinSize><MaxSize>12</MaxSize>\n"
    "    <DesiredCapacity>3</DesiredCapacity>\n"
    "    <AvailabilityZones><member>eu-west-1a</member></AvailabilityZones>\n"
    "    <Instances>\n"
    "     <member><InstanceId>i-0aaa</InstanceId>"
    "<AvailabilityZone>eu-west-1a</AvailabilityZone>"
    "<LifecycleState>InService</LifecycleState>"
    "<HealthStatus>Healthy</HealthStatus>"
    "<LaunchTemplate><LaunchTemplateId>lt-1</LaunchTemplateId></LaunchTemplate>"
    "<ProtectedFromScaleIn>true</ProtectedFromScaleIn></member>\n"
    "     <member><InstanceId>i-0bbb</InstanceId>"
    "<LifecycleState>Pending:Wait</LifecycleState></member>\n"
    "     <member><InstanceId>i-0ccc</InstanceId>"
    "<LifecycleState>Terminating</LifecycleState></member>\n"
    "    </Instances>\n"
    "    <SuspendedProcesses><member><ProcessName>AZRebalance</ProcessName>"
    "</member></SuspendedProcesses>\n"
    "    <Tags><member><Key>k</Key><Value>v</Value></member></Tags>\n"
    "    <NewInstancesProtectedFromScaleIn>true"
    "</NewInstancesProtectedFromScaleIn>\n"
    "   </member>\n"
    "  </AutoScalingGroups>\n"
    "  <NextToken>tok+/=</NextToken>\n"
    " </DescribeAutoScalingGroupsResult>\n"
    " <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>\n"
    "</DescribeAutoScalingGroupsResponse>\n";

static void
test_asg_page(void **state)
{
	struct aws_asg_page p;
	char err[256];

	(void)state;
	assert_int_equal(aws_xml_asg_groups(asg_page, strlen(asg_page), &p,
	    err, sizeof(err)), 0);
	assert_int_equal(p.ngroups, 1);
	assert_string_equal(p.groups[0].name, "runners");
	assert_int_equal(p.groups[0].min_size, 0);
	assert_int_equal(p.groups[0].max_size, 12);
	assert_int_equal(p.groups[0].desired, 3);
	assert_true(p.groups[0].protected_scale_in);
	assert_int_equal(p.groups[0].ninst, 3);
	assert_string_equal(p.groups[0].inst[0].id, "i-0aaa");
	assert_string_equal(p.groups[0].inst[0].lifecycle, "InService");
	assert_string_equal(p.groups[0].inst[0].health, "Healthy");
	assert_string_equal(p.groups[0].inst[1].lifecycle, "Pending:Wait");
	assert_null(p.groups[0].inst[1].health);
	assert_string_equal(p.groups[0].inst[2].id, "i-0ccc");
	assert_string_equal(p.next_token, "tok+/=");
	aws_asg_page_release(&p);
}

static void
test_asg_empty_page(void **state)
{
	static const char empty_page[] =
	    "<DescribeAutoScalingGroupsResponse xmlns=\"" ASG_NS "\">"
	    "<DescribeAutoScalingGroupsResult><AutoScalingGroups/>"
	    "<NextToken>next</NextToken></DescribeAutoScalingGroupsResult>"
	    "</DescribeAutoScalingGroupsResponse>";
	static const char last_page[] =
	    "<DescribeAutoScalingGroupsResponse xmlns=\"" ASG_NS "\">"
	    "<DescribeAutoScalingGroupsResult><AutoScalingGroups/>"
	    "</DescribeAutoScalingGroupsResult>"
	    "</DescribeAutoScalingGroupsResponse>";
	struct aws_asg_page p;
	char err[256];

	(void)state;
	assert_int_equal(aws_xml_asg_groups(empty_page, strlen(empty_page), &p,
	    err, sizeof(err)), 0);
	assert_int_equal(p.ngroups, 0);
	assert_string_equal(p.next_token, "next");
	aws_asg_page_release(&p);
	assert_int_equal(aws_xml_asg_groups(last_page, strlen(last_page), &p,
	    err, sizeof(err)), 0);
	assert_int_equal(p.ngroups, 0);
	assert_null(p.next_token);
	aws_asg_page_release(&p);
}

static void
test_asg_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"not xml",
		"<DescribeAutoScalingGroupsResponse>",	/* unclosed */
		"<SetDesiredCapacityResponse/>",		/* wrong root */
		"<DescribeAutoScalingGroupsResponse/>",	/* no result */
		/* a group without its sizes */
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult>"
		"<AutoScalingGroups><member><AutoScalingGroupName>x"
		"</AutoScalingGroupName></member></AutoScalingGroups>"
		"</DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>",
		/* an instance without its state */
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult>"
		"<AutoScalingGroups><member><AutoScalingGroupName>x"
		"</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>1</MaxSize>"
		"<DesiredCapacity>1</DesiredCapacity><Instances><member>"
		"<InstanceId>i-1</InstanceId></member></Instances></member>"
		"</AutoScalingGroups></DescribeAutoScalingGroupsResult>"
		"</DescribeAutoScalingGroupsResponse>",
		/* a size that is not a number */
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult>"
		"<AutoScalingGroups><member><AutoScalingGroupName>x"
		"</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>1x</MaxSize>"
		"<DesiredCapacity>1</DesiredCapacity></member>"
		"</AutoScalingGroups></DescribeAutoScalingGroupsResult>"
		"</DescribeAutoScalingGroupsResponse>",
	};
	struct aws_asg_page p;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(aws_xml_asg_groups(bad[i], strlen(bad[i]), &p,
		    err, sizeof(err)), FL_ERR_PARSE);
		assert_true(strlen(err) > 0);
		assert_int_equal(p.ngroups, 0);
	}
}

/* A document with a DOCTYPE (entities, XXE, expansion bombs) is refused. */
static void
test_no_entities(void **state)
{
	static const char xxe[] =
	    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e SYSTEM "
	    "\"file:///etc/passwd\"><!ENTITY n \"ZZZ\">]>"
	    "<ErrorResponse><Error><Code>&n;</Code><Message>&e;</Message>"
	    "</Error></ErrorResponse>";
	static const char lol[] =
	    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\">"
	    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
	    "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>"
	    "<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult>"
	    "<AutoScalingGroups/><NextToken>&c;</NextToken>"
	    "</DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>";
	struct aws_asg_page p;
	char code[64], msg[256], err[256];

	(void)state;
	assert_int_equal(aws_xml_error(xxe, strlen(xxe), code, sizeof(code),
	    msg, sizeof(msg)), FL_ERR_PARSE);
	assert_int_equal(aws_xml_asg_groups(lol, strlen(lol), &p, err,
	    sizeof(err)), FL_ERR_PARSE);
}

static const char ec2_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<DescribeInstancesResponse xmlns=\"" EC2_NS "\">\n"
    " <requestId>8f7724cf-496f-496e-8fe3-example</requestId>\n"
    " <reservationSet>\n"
    "  <item><reservationId>r-1</reservationId><ownerId>123</ownerId>"
    "<groupSet/><instancesSet>\n"
    "   <item><instanceId>i-0aaa</instanceId><imageId>ami-1</imageId>"
    "<instanceState><code>16</code><name>running</name></instanceState>"
    "<privateDnsName>ip-10-0-0-5.ec2.internal</privateDnsName>"
    "<placement><availabilityZone>eu-west-1b</availabilityZone>"
    "<tenancy>default</tenancy></placement>"
    "<privateIpAddress>10.0.0.5</privateIpAddress>"
    "<ipAddress>203.0.113.7</ipAddress>"
    "<groupSet><item><groupId>sg-1</groupId></item></groupSet>"
    "<architecture>arm64</architecture>"
    "<tagSet><item><key>Name</key><value>x</value></item>"
    "<item><key>aws:autoscaling:groupName</key><value>runners</value></item>"
    "</tagSet></item>\n"
    "  </instancesSet></item>\n"
    "  <item><reservationId>r-2</reservationId><instancesSet>"
    "<item><instanceId>i-0bbb</instanceId>"
    "<instanceState><code>48</code><name>terminated</name></instanceState>"
    "<platform>windows</platform><architecture>x86_64</architecture>"
    "</item></instancesSet></item>\n"
    " </reservationSet>\n"
    " <nextToken>n2</nextToken>\n"
    "</DescribeInstancesResponse>\n";

static void
test_ec2_instances(void **state)
{
	struct aws_ec2_page p;
	char err[256];

	(void)state;
	assert_int_equal(aws_xml_ec2_instances(ec2_page, strlen(ec2_page), &p,
	    err, sizeof(err)), 0);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.inst[0].id, "i-0aaa");
	assert_string_equal(p.inst[0].state, "running");
	assert_string_equal(p.inst[0].private_ip, "10.0.0.5");
	assert_string_equal(p.inst[0].public_ip, "203.0.113.7");
	assert_string_equal(p.inst[0].arch, "arm64");
	assert_null(p.inst[0].platform);
	assert_string_equal(p.inst[0].az, "eu-west-1b");
	assert_string_equal(p.inst[0].group, "runners");
	assert_string_equal(p.inst[1].id, "i-0bbb");
	assert_string_equal(p.inst[1].state, "terminated");
	assert_null(p.inst[1].private_ip);
	assert_null(p.inst[1].public_ip);
	assert_string_equal(p.inst[1].platform, "windows");
	assert_null(p.inst[1].group);
	assert_string_equal(p.next_token, "n2");

	struct aws_ec2_instance copy;
	aws_ec2_instance_copy(&copy, &p.inst[0]);
	aws_ec2_page_release(&p);
	assert_string_equal(copy.group, "runners");
	aws_ec2_instance_release(&copy);
	aws_ec2_instance_release(&copy);	/* twice: fields are NULL */
}

static void
test_ec2_empty_and_refused(void **state)
{
	static const char empty[] =
	    "<DescribeInstancesResponse xmlns=\"" EC2_NS "\"><requestId>x"
	    "</requestId><reservationSet/></DescribeInstancesResponse>";
	static const char no_state[] =
	    "<DescribeInstancesResponse><reservationSet><item><instancesSet>"
	    "<item><instanceId>i-1</instanceId></item></instancesSet></item>"
	    "</reservationSet></DescribeInstancesResponse>";
	struct aws_ec2_page p;
	char err[256];

	(void)state;
	assert_int_equal(aws_xml_ec2_instances(empty, strlen(empty), &p, err,
	    sizeof(err)), 0);
	assert_int_equal(p.n, 0);
	assert_null(p.next_token);
	aws_ec2_page_release(&p);
	assert_int_equal(aws_xml_ec2_instances(no_state, strlen(no_state), &p,
	    err, sizeof(err)), FL_ERR_PARSE);
	assert_int_equal(aws_xml_ec2_instances(asg_page, strlen(asg_page), &p,
	    err, sizeof(err)), FL_ERR_PARSE);
}

static void
test_sts_credentials(void **state)
{
	static const char ok[] =
	    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws."
	    "com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>"
	    "<SubjectFromWebIdentityToken>s</SubjectFromWebIdentityToken>"
	    "<Credentials><SessionToken>TOKEN123</SessionToken>"
	    "<SecretAccessKey>SECRET456</SecretAccessKey>"
	    "<Expiration>2030-01-02T03:04:05Z</Expiration>"
	    "<AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials>"
	    "</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r"
	    "</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>";
	static const char partial[] =
	    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
	    "<Credentials><AccessKeyId>ASIA</AccessKeyId>"
	    "<SecretAccessKey>S</SecretAccessKey>"
	    "<Expiration>2030-01-02T03:04:05Z</Expiration></Credentials>"
	    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
	struct aws_keys k;
	char err[256];

	(void)state;
	assert_int_equal(aws_xml_sts_credentials(ok, strlen(ok), &k, err,
	    sizeof(err)), 0);
	assert_string_equal(k.akid, "ASIAEXAMPLE");
	assert_string_equal(k.secret, "SECRET456");
	assert_string_equal(k.token, "TOKEN123");
	assert_int_equal(k.expires, 1893553445);
	aws_keys_release(&k);
	assert_int_equal(aws_xml_sts_credentials(partial, strlen(partial), &k,
	    err, sizeof(err)), FL_ERR_PARSE);
	assert_null(k.akid);
	assert_null(strstr(err, "S<"));
}

static void
test_errors(void **state)
{
	static const char query[] =
	    "<ErrorResponse xmlns=\"" ASG_NS "\"><Error><Type>Sender</Type>"
	    "<Code>ValidationError</Code><Message>New SetDesiredCapacity value "
	    "11 is above max value 10 for the AutoScalingGroup.</Message></Error>"
	    "<RequestId>r</RequestId></ErrorResponse>";
	static const char ec2[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors>"
	    "<Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance "
	    "ID 'i-1' does not exist</Message></Error></Errors><RequestID>x"
	    "</RequestID></Response>";
	static const char nomsg[] =
	    "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
	static const char ctrl[] =
	    "<ErrorResponse><Error><Code>X</Code><Message>a\nb\tc</Message>"
	    "</Error></ErrorResponse>";
	char code[64], msg[256];

	(void)state;
	assert_int_equal(aws_xml_error(query, strlen(query), code, sizeof(code),
	    msg, sizeof(msg)), 0);
	assert_string_equal(code, "ValidationError");
	assert_string_equal(msg, "New SetDesiredCapacity value 11 is above max "
	    "value 10 for the AutoScalingGroup.");
	assert_int_equal(aws_xml_error(ec2, strlen(ec2), code, sizeof(code),
	    msg, sizeof(msg)), 0);
	assert_string_equal(code, "InvalidInstanceID.NotFound");
	assert_string_equal(msg, "The instance ID 'i-1' does not exist");
	assert_int_equal(aws_xml_error(nomsg, strlen(nomsg), code, sizeof(code),
	    msg, sizeof(msg)), 0);
	assert_string_equal(code, "Throttling");
	assert_string_equal(msg, "");
	assert_int_equal(aws_xml_error(ctrl, strlen(ctrl), code, sizeof(code),
	    msg, sizeof(msg)), 0);
	assert_string_equal(msg, "a b c");
	/* truncated to the buffer */
	char small[8];
	assert_int_equal(aws_xml_error(query, strlen(query), small,
	    sizeof(small), msg, sizeof(msg)), 0);
	assert_string_equal(small, "Validat");
	/* not errors */
	assert_int_equal(aws_xml_error(asg_page, strlen(asg_page), code,
	    sizeof(code), msg, sizeof(msg)), FL_ERR_PARSE);
	assert_int_equal(aws_xml_error("<html>502</html>", 16, code,
	    sizeof(code), msg, sizeof(msg)), FL_ERR_PARSE);
	assert_int_equal(aws_xml_error("", 0, code, sizeof(code), msg,
	    sizeof(msg)), FL_ERR_PARSE);
}

static void
test_is_response(void **state)
{
	static const char set[] =
	    "<SetDesiredCapacityResponse xmlns=\"" ASG_NS "\"><ResponseMetadata>"
	    "<RequestId>r</RequestId></ResponseMetadata>"
	    "</SetDesiredCapacityResponse>";

	(void)state;
	assert_true(aws_xml_is_response(set, strlen(set),
	    "SetDesiredCapacityResponse"));
	assert_false(aws_xml_is_response(set, strlen(set),
	    "TerminateInstanceInAutoScalingGroupResponse"));
	assert_false(aws_xml_is_response("<a>", 3, "a"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_asg_page),
		cmocka_unit_test(test_asg_empty_page),
		cmocka_unit_test(test_asg_refused),
		cmocka_unit_test(test_no_entities),
		cmocka_unit_test(test_ec2_instances),
		cmocka_unit_test(test_ec2_empty_and_refused),
		cmocka_unit_test(test_sts_credentials),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_is_response),
	};

	aws_xml_init();
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	aws_xml_cleanup();
	return rc;
}
