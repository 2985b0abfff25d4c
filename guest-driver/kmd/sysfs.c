// SPDX-License-Identifier: GPL-2.0
/* Counters under /sys/class/misc/gmig/: clients, staging bytes, freezes, timeouts, bad ioctls. */
#include <linux/device.h>
#include <linux/sysfs.h>

#include "gmig_dev.h"

static ssize_t clients_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	unsigned int n;

	spin_lock_bh(&gmig.lock);
	n = gmig.nclients;
	spin_unlock_bh(&gmig.lock);
	return sysfs_emit(buf, "%u\n", n);
}
static DEVICE_ATTR_RO(clients);

static ssize_t agent_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	bool agent;

	spin_lock_bh(&gmig.lock);
	agent = gmig.agent;
	spin_unlock_bh(&gmig.lock);
	return sysfs_emit(buf, "%d\n", agent);
}
static DEVICE_ATTR_RO(agent);

static ssize_t barrier_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	static const char *const names[] = {
		[GMIG_KMD_BARRIER_OPEN] = "open",
		[GMIG_KMD_BARRIER_FREEZING] = "freezing",
		[GMIG_KMD_BARRIER_FROZEN] = "frozen",
	};
	enum gmig_kmd_barrier_state st;

	spin_lock_bh(&gmig.lock);
	st = gmig.state;
	spin_unlock_bh(&gmig.lock);
	return sysfs_emit(buf, "%s\n", names[st]);
}
static DEVICE_ATTR_RO(barrier);

#define GMIG_COUNTER_ATTR(name)							\
static ssize_t name##_show(struct device *dev, struct device_attribute *attr, char *buf)	\
{										\
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&gmig.name));	\
}										\
static DEVICE_ATTR_RO(name)

GMIG_COUNTER_ATTR(staging_bytes);
GMIG_COUNTER_ATTR(freezes);
GMIG_COUNTER_ATTR(freeze_timeouts);
GMIG_COUNTER_ATTR(bad_ioctls);

static struct attribute *gmig_attrs[] = {
	&dev_attr_clients.attr,
	&dev_attr_agent.attr,
	&dev_attr_barrier.attr,
	&dev_attr_staging_bytes.attr,
	&dev_attr_freezes.attr,
	&dev_attr_freeze_timeouts.attr,
	&dev_attr_bad_ioctls.attr,
	NULL,
};

static const struct attribute_group gmig_group = {
	.attrs = gmig_attrs,
};

const struct attribute_group *gmig_groups[] = {
	&gmig_group,
	NULL,
};
