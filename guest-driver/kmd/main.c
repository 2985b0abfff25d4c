// SPDX-License-Identifier: GPL-2.0
/* gmig.ko: the /dev/gmig misc device, its open files and the dispatch of their ioctls. */
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "gmig_dev.h"

struct gmig_dev gmig;

/*
 * Copies an ioctl argument whose first field is its size. The ioctl number already encodes
 * @ksize; the size field must say the same, so a caller built against another layout fails
 * loudly instead of being half-read.
 */
int gmig_copy_arg(void *karg, size_t ksize, const void __user *uarg)
{
	u32 usize;

	if (get_user(usize, (const u32 __user *)uarg))
		return -EFAULT;
	if (usize != ksize)
		return -EINVAL;
	if (copy_from_user(karg, uarg, ksize))
		return -EFAULT;
	return 0;
}

static long gmig_ioctl_version(void __user *uarg)
{
	struct gmig_kmd_version v;
	int rc;

	rc = gmig_copy_arg(&v, sizeof(v), uarg);
	if (rc)
		return rc;
	if (v.reserved)
		return -EINVAL;
	v.abi = GMIG_KMD_ABI_VERSION;
	v.features = 0;
	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static long gmig_ioctl_register(struct gmig_file *f, void __user *uarg)
{
	struct gmig_kmd_register r;
	int rc;

	rc = gmig_copy_arg(&r, sizeof(r), uarg);
	if (rc)
		return rc;
	if (r.flags || r.reserved)
		return -EINVAL;
	rc = gmig_register(f, r.role);
	if (rc)
		return rc;
	r.id = f->id;
	/* The registration stands even if the caller's memory went away meanwhile. */
	return copy_to_user(uarg, &r, sizeof(r)) ? -EFAULT : 0;
}

static long gmig_dispatch(struct gmig_file *f, unsigned int cmd, void __user *uarg)
{
	switch (cmd) {
	case GMIG_IOC_VERSION:
		return gmig_ioctl_version(uarg);
	case GMIG_IOC_REGISTER:
		return gmig_ioctl_register(f, uarg);
	case GMIG_IOC_STAGING_CREATE:
		return gmig_ioctl_staging_create(f, uarg);
	case GMIG_IOC_CLIENT_EVENTS:
		return gmig_ioctl_events(f, uarg);
	case GMIG_IOC_FREEZE:
		return gmig_ioctl_freeze(f, uarg);
	case GMIG_IOC_FREEZE_STATUS:
		return gmig_ioctl_freeze_status(f, uarg);
	case GMIG_IOC_THAW:
		return gmig_ioctl_thaw(f, uarg);
	case GMIG_IOC_FROZEN:
		return gmig_ioctl_frozen(f, uarg);
	case GMIG_IOC_WAIT_THAW:
		return gmig_ioctl_wait_thaw(f, uarg);
	default:
		/* STAGING_PHYS belongs to staging fds, not to /dev/gmig. */
		return -ENOTTY;
	}
}

static long gmig_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long rc = gmig_dispatch(file->private_data, cmd, (void __user *)arg);

	if (rc == -ENOTTY || rc == -EINVAL || rc == -EFAULT)
		atomic64_inc(&gmig.bad_ioctls);
	return rc;
}

static __poll_t gmig_poll(struct file *file, poll_table *wait)
{
	struct gmig_file *f = file->private_data;
	__poll_t mask = 0;

	switch (READ_ONCE(f->role)) {
	case GMIG_FILE_AGENT:
		poll_wait(file, &gmig.agent_wq, wait);
		if (gmig_events_pending() || gmig_barrier_result_ready())
			mask |= EPOLLIN | EPOLLRDNORM;
		break;
	case GMIG_FILE_CLIENT:
		poll_wait(file, &gmig.barrier_wq, wait);
		mask |= gmig_barrier_client_poll(f);
		break;
	case GMIG_FILE_NONE:
		break;
	}
	return mask;
}

static int gmig_open(struct inode *inode, struct file *file)
{
	struct gmig_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	INIT_LIST_HEAD(&f->node);
	file->private_data = f;
	return nonseekable_open(inode, file);
}

static int gmig_release(struct inode *inode, struct file *file)
{
	struct gmig_file *f = file->private_data;

	gmig_unregister(f);
	put_pid(f->pid);
	kfree(f);
	return 0;
}

static const struct file_operations gmig_fops = {
	.owner = THIS_MODULE,
	.open = gmig_open,
	.release = gmig_release,
	.unlocked_ioctl = gmig_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.poll = gmig_poll,
	.llseek = no_llseek,
};

struct miscdevice gmig_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "gmig",
	.fops = &gmig_fops,
	.groups = gmig_groups,
	.mode = 0666,
};

static int __init gmig_init(void)
{
	spin_lock_init(&gmig.lock);
	INIT_LIST_HEAD(&gmig.clients);
	init_waitqueue_head(&gmig.agent_wq);
	init_waitqueue_head(&gmig.barrier_wq);
	gmig_barrier_init();
	return misc_register(&gmig_misc);
}

static void __exit gmig_exit(void)
{
	/* No file is open (each holds a module reference), so nothing races with this. */
	misc_deregister(&gmig_misc);
	gmig_barrier_exit();
}

module_init(gmig_init);
module_exit(gmig_exit);

MODULE_DESCRIPTION("gmig: pinned staging, client registry and freeze barrier for GPU live migration");
MODULE_LICENSE("GPL");
MODULE_VERSION("0.1.0");
