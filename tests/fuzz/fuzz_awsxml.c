/*
 * libFuzzer target for fleeting-plugin-aws's XML readers (what AWS, or
 * anything posing as it, sends back): the Auto Scaling group page, the
 * EC2 instance page, STS credentials and the error documents, each on
 * the same arbitrary bytes.  Whatever they accept must satisfy the
 * header's promises (ids non-NULL, counts matching arrays); what the
 * error reader finds must be NUL-terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugin-aws/aws_xml.c"
#include "../../plugin-aws/aws_http.c"
#include "../../plugin-aws/aws_creds.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *x = (const char *)data;
	struct aws_asg_page ap;
	struct aws_ec2_page ep;
	struct aws_keys keys;
	char err[256], code[128], msg[512];
	static int inited;

	err[0] = '\0';
	if (!inited) {
		aws_xml_init();
		inited = 1;
	}
	memset(&ap, 0, sizeof(ap));
	if (aws_xml_asg_groups(x, size, &ap, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < ap.ngroups; i++) {
			if (ap.groups[i].name == NULL)
				__builtin_trap();
			for (size_t k = 0; k < ap.groups[i].ninst; k++)
				if (ap.groups[i].inst[k].id == NULL)
					__builtin_trap();
		}
		aws_asg_page_release(&ap);
	}
	memset(&ep, 0, sizeof(ep));
	if (aws_xml_ec2_instances(x, size, &ep, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < ep.n; i++)
			if (ep.inst[i].id == NULL)
				__builtin_trap();
		aws_ec2_page_release(&ep);
	}
	memset(&keys, 0, sizeof(keys));
	(void)aws_xml_sts_credentials(x, size, &keys, err, sizeof(err));
	aws_keys_release(&keys);
	code[0] = msg[0] = 'x';
	if (aws_xml_error(x, size, code, sizeof(code), msg, sizeof(msg)) == 0 &&
	    (memchr(code, '\0', sizeof(code)) == NULL ||
	    memchr(msg, '\0', sizeof(msg)) == NULL))
		__builtin_trap();
	(void)aws_xml_is_response(x, size, "DescribeAutoScalingGroupsResponse");
	return 0;
}
