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

static ssize_t gmig_counter_show(char *buf, atomic64_t *counter)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(counter));
}

static ssize_t staging_bytes_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return gmig_counter_show(buf, &gmig.staging_bytes);
}
static DEVICE_ATTR_RO(staging_bytes);

static ssize_t freezes_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return gmig_counter_show(buf, &gmig.freezes);
}
static DEVICE_ATTR_RO(freezes);

static ssize_t freeze_timeouts_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return gmig_counter_show(buf, &gmig.freeze_timeouts);
}
static DEVICE_ATTR_RO(freeze_timeouts);

static ssize_t bad_ioctls_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return gmig_counter_show(buf, &gmig.bad_ioctls);
}
static DEVICE_ATTR_RO(bad_ioctls);

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
