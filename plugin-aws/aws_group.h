/*
 * fleeting-plugin-aws's instance group: an EC2 Auto Scaling group, driven
 * as the official plugin drives it (cloud-plugins.md 2.1), with the gaps
 * it leaves filled (paging, MaxSize, throttling, batching):
 *
 *   Update       DescribeAutoScalingGroups (AutoScalingGroupNames.member.1,
 *                every NextToken page): LifecycleState InService is
 *                running, Terminating* / Terminated (and Warmed:Terminat*)
 *                deleting, every other state creating; an instance this
 *                plugin asked to terminate is deleting from then on; one
 *                that stops being listed is reported deleted once.
 *   Increase     SetDesiredCapacity (HonorCooldown=false) to desired +
 *                delta, capped at the group's MaxSize (partial success).
 *   Decrease     TerminateInstanceInAutoScalingGroup per id with
 *                ShouldDecrementDesiredCapacity=true; an id the group
 *                does not know is already gone (succeeded).
 *   ConnectInfo  DescribeInstances (InstanceId.N, concurrent callers
 *                batched into one call); os, arch, username, protocol
 *                derived as the official plugin does; with
 *                use_static_credentials = false a fresh ed25519 key pair
 *                whose public half goes to EC2 Instance Connect
 *                (SendSSHPublicKey) and which expires 60 s later.
 *   Heartbeat    DescribeInstances of that id (batched the same way).
 *
 * All calls may run concurrently (the SDK's pool threads); Increase and
 * Decrease are serialised among themselves, since both move the desired
 * capacity.
 */
#ifndef FL_AWS_GROUP_H
#define FL_AWS_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws_config.h"
#include "plugin_sdk.h"

/* How long concurrent DescribeInstances callers are gathered. */
#define AWS_BATCH_WINDOW_MS	20
/* Most ids in one DescribeInstances. */
#define AWS_BATCH_MAX		100
/* Lifetime of an EC2 Instance Connect key. */
#define AWS_IC_KEY_SECONDS	60

struct aws_group;

/*
 * Set up the cloud side for cfg (credentials, region, endpoints), read
 * the group once and fill info (id "aws/REGION/NAME", max_size = the
 * group's MaxSize).  NULL with *rc (PLUGIN_BAD_CONFIG for a setup the
 * user must fix, PLUGIN_FAILED for a cloud error) and a message in err.
 */
struct aws_group *aws_group_new(const struct aws_config *cfg,
    const struct plugin_connector *settings,
    struct plugin_provider_info *info, int *rc, char *err, size_t errlen);
void aws_group_free(struct aws_group *g);

/* The plugin_ops callbacks' work; PLUGIN_* results. */
int aws_group_update(struct aws_group *g, plugin_emit_fn emit, void *emit_arg,
    char *err, size_t errlen);
int aws_group_increase(struct aws_group *g, int64_t delta,
    int64_t *succeeded, char *err, size_t errlen);
int aws_group_decrease(struct aws_group *g, const char *const *ids, size_t n,
    bool *succeeded, char *err, size_t errlen);
int aws_group_connect_info(struct aws_group *g, const char *id,
    struct plugin_connect_info *out, char *err, size_t errlen);
int aws_group_heartbeat(struct aws_group *g, const char *id, char *err,
    size_t errlen);

/* Pure parts. */
/* An Auto Scaling LifecycleState as an instance state. */
enum plugin_state aws_lifecycle_state(const char *lifecycle);
/* EC2 architecture in Go's names: x86_64 amd64, arm64 arm64, i386 386;
 * NULL for others. */
const char *aws_go_arch(const char *ec2_arch);
/* "linux", "windows" (platform windows) or "darwin" (*_mac). */
const char *aws_os_of(const char *platform, const char *ec2_arch);

#endif
