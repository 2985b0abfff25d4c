// SPDX-License-Identifier: GPL-2.0
/*
 * Staging buffers: pages allocated and pinned for the life of an anon-inode fd, so that their
 * guest-physical addresses never change and the host can read them in place.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "gmig_dev.h"

static unsigned long staging_max_bytes = 64ul << 20;
module_param(staging_max_bytes, ulong, 0644);
MODULE_PARM_DESC(staging_max_bytes, "largest staging buffer in bytes (default 64 MiB)");

static unsigned long staging_total_bytes = 512ul << 20;
module_param(staging_total_bytes, ulong, 0644);
MODULE_PARM_DESC(staging_total_bytes, "all staging buffers together in bytes (default 512 MiB)");

/* Largest chunk tried: 4 MiB keeps the range list short without leaning on compaction. */
static unsigned int staging_chunk_order = 10;
module_param(staging_chunk_order, uint, 0644);
MODULE_PARM_DESC(staging_chunk_order, "largest chunk allocated, as a page order (default 10)");

struct gmig_chunk {
	struct page *page;
	unsigned int order;
};

/* Immutable after creation; freed when the fd's last reference (mappings included) goes. */
struct gmig_staging {
	u64 bytes;
	unsigned int nchunks;
	struct gmig_chunk chunks[];
};

/* Chunks are split into order-0 pages so that each can be mapped (and counted) on its own. */
static void gmig_chunk_free(struct gmig_chunk *c)
{
	unsigned long i;

	for (i = 0; i < 1ul << c->order; i++)
		__free_page(c->page + i);
}

static void gmig_staging_free(struct gmig_staging *s)
{
	unsigned int i;

	for (i = 0; i < s->nchunks; i++)
		gmig_chunk_free(&s->chunks[i]);
	atomic64_sub(s->bytes, &gmig.staging_bytes);
	kvfree(s);
}

/* High-order chunks first, smaller ones when memory is fragmented. */
static struct gmig_staging *gmig_staging_alloc(u64 bytes)
{
	unsigned long npages = bytes >> PAGE_SHIFT, done = 0;
	struct gmig_staging *s;
	unsigned int order;
	struct page *page;

	s = kvzalloc(struct_size(s, chunks, npages), GFP_KERNEL);
	if (!s)
		return ERR_PTR(-ENOMEM);
	s->bytes = bytes;
	while (done < npages) {
		order = min3(READ_ONCE(staging_chunk_order), (unsigned int)MAX_ORDER - 1,
			     (unsigned int)ilog2(npages - done));
		for (;;) {
			gfp_t gfp = GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN;

			if (order)
				gfp |= __GFP_NORETRY;
			page = alloc_pages(gfp, order);
			if (page || !order)
				break;
			order--;
		}
		if (!page)
			goto out_free_chunks;
		split_page(page, order);
		s->chunks[s->nchunks].page = page;
		s->chunks[s->nchunks].order = order;
		s->nchunks++;
		done += 1ul << order;
	}
	return s;

out_free_chunks:
	/* Not counted yet: undo only the pages. */
	while (s->nchunks--)
		gmig_chunk_free(&s->chunks[s->nchunks]);
	kvfree(s);
	return ERR_PTR(-ENOMEM);
}

static int gmig_staging_release(struct inode *inode, struct file *file)
{
	gmig_staging_free(file->private_data);
	return 0;
}

/*
 * Maps the pages as ordinary pages (not a PFN map), so page-table walkers such as
 * /proc/pid/pagemap and get_user_pages see them; they stay the buffer's, never migrated.
 */
static int gmig_staging_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gmig_staging *s = file->private_data;
	unsigned long addr = vma->vm_start, len = vma->vm_end - vma->vm_start;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT, pos = 0;
	unsigned int i;
	unsigned long j;
	int rc;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (off >= s->bytes || len > s->bytes - off)
		return -EINVAL;
#ifdef GMIG_HAVE_VM_FLAGS_SET
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
#else
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
#endif
	for (i = 0; i < s->nchunks && addr < vma->vm_end; i++) {
		unsigned long npages = 1ul << s->chunks[i].order;

		for (j = 0; j < npages && addr < vma->vm_end; j++, pos += PAGE_SIZE) {
			if (pos < off)
				continue;
			rc = vm_insert_page(vma, addr, s->chunks[i].page + j);
			if (rc)
				return rc;
			addr += PAGE_SIZE;
		}
	}
	return 0;
}

/* Merges physically adjacent chunks into ranges; @out may be NULL to count them. */
static u32 gmig_staging_ranges(const struct gmig_staging *s, struct gmig_kmd_phys_range *out)
{
	phys_addr_t next = 0;
	unsigned int i;
	u32 n = 0;

	for (i = 0; i < s->nchunks; i++) {
		phys_addr_t pa = page_to_phys(s->chunks[i].page);
		u64 len = PAGE_SIZE << s->chunks[i].order;

		if (n && pa == next) {
			if (out)
				out[n - 1].len += len;
		} else {
			if (out) {
				out[n].gpa = pa;
				out[n].len = len;
			}
			n++;
		}
		next = pa + len;
	}
	return n;
}

static long gmig_staging_phys(struct gmig_staging *s, void __user *uarg)
{
	struct gmig_kmd_staging_phys req;
	struct gmig_kmd_phys_range *buf;
	u32 need;
	int rc;

	rc = gmig_copy_arg(&req, sizeof(req), uarg);
	if (rc)
		return rc;
	if (req.flags || req.reserved || req.count > GMIG_KMD_PHYS_MAX)
		return -EINVAL;
	need = gmig_staging_ranges(s, NULL);
	req.bytes = s->bytes;
	if (req.count < need) {
		req.count = need;
		return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : -ENOSPC;
	}
	buf = kvcalloc(need, sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	gmig_staging_ranges(s, buf);
	req.count = need;
	rc = 0;
	if (copy_to_user(u64_to_user_ptr(req.ranges), buf, (size_t)need * sizeof(*buf)) ||
	    copy_to_user(uarg, &req, sizeof(req)))
		rc = -EFAULT;
	kvfree(buf);
	return rc;
}

static long gmig_staging_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long rc;

	switch (cmd) {
	case GMIG_IOC_STAGING_PHYS:
		rc = gmig_staging_phys(file->private_data, (void __user *)arg);
		break;
	default:
		rc = -ENOTTY;
		break;
	}
	if (rc == -ENOTTY || rc == -EINVAL || rc == -EFAULT)
		atomic64_inc(&gmig.bad_ioctls);
	return rc;
}

static const struct file_operations gmig_staging_fops = {
	.owner = THIS_MODULE,
	.release = gmig_staging_release,
	.mmap = gmig_staging_mmap,
	.unlocked_ioctl = gmig_staging_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

long gmig_ioctl_staging_create(struct gmig_file *f, void __user *uarg)
{
	struct gmig_kmd_staging_create req;
	struct gmig_staging *s;
	struct file *file;
	int rc, fd;

	rc = gmig_copy_arg(&req, sizeof(req), uarg);
	if (rc)
		return rc;
	if ((req.flags & ~GMIG_KMD_STAGING_CLOEXEC) || req.reserved)
		return -EINVAL;
	if (!req.bytes || !PAGE_ALIGNED(req.bytes))
		return -EINVAL;
	if (req.bytes > READ_ONCE(staging_max_bytes))
		return -E2BIG;
	if (READ_ONCE(f->role) != GMIG_FILE_AGENT)
		return -EPERM;

	/* Reserve against the total first so that racing creates cannot overshoot it. */
	if (atomic64_add_return(req.bytes, &gmig.staging_bytes) > READ_ONCE(staging_total_bytes)) {
		rc = -ENOSPC;
		goto out_unreserve;
	}
	s = gmig_staging_alloc(req.bytes);
	if (IS_ERR(s)) {
		rc = PTR_ERR(s);
		goto out_unreserve;
	}
	fd = get_unused_fd_flags(O_RDWR | ((req.flags & GMIG_KMD_STAGING_CLOEXEC) ? O_CLOEXEC : 0));
	if (fd < 0) {
		rc = fd;
		goto out_free_staging;
	}
	file = anon_inode_getfile("[gmig-staging]", &gmig_staging_fops, s, O_RDWR);
	if (IS_ERR(file)) {
		rc = PTR_ERR(file);
		goto out_put_fd;
	}
	req.fd = fd;
	if (copy_to_user(uarg, &req, sizeof(req))) {
		rc = -EFAULT;
		goto out_put_file;
	}
	/* Visible to the process only now, when nothing can fail any more. */
	fd_install(fd, file);
	return 0;

out_put_file:
	fput(file);	/* its release frees the buffer and gives the reservation back */
	put_unused_fd(fd);
	return rc;
out_put_fd:
	put_unused_fd(fd);
out_free_staging:
	gmig_staging_free(s);	/* gives the reservation back */
	return rc;
out_unreserve:
	atomic64_sub(req.bytes, &gmig.staging_bytes);
	return rc;
}
