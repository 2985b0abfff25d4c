/*
 * In-guest test of gmig.ko's ioctl ABI: a numbered table of good and malformed calls, staging
 * buffers checked against the page tables, the registry, the barrier, unload and counters.
 *
 * Run as root right after `insmod gmig.ko staging_max_bytes=4194304 staging_total_bytes=8388608`
 * (the limits the rows expect). `kmd-test` runs everything and unloads the module at the end;
 * prints one line per failed check and exits 1 if any failed.
 *
 * `kmd-test qga SOCKET LINE` is the guest's JSON client: it sends LINE to the agent's unix
 * socket and prints the reply line (the guest has no socat).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uapi/gmig.h"

#define MAX_BYTES	(4u << 20)	/* staging_max_bytes the module was loaded with */
#define TOTAL_BYTES	(8u << 20)	/* staging_total_bytes */
#define PAGE		4096u
#define SYSFS		"/sys/class/misc/gmig/"

static int failures;
static unsigned int checks;
static long expect_bad;		/* ioctls that must have counted as bad */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("FAIL ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
	failures++;
}

#define CHECK(cond, ...) do { checks++; if (!(cond)) fail(__VA_ARGS__); } while (0)

/* One table row: the ioctl must fail with @err (0: succeed). */
static void row(int n, const char *what, int fd, unsigned long cmd, void *arg, int err)
{
	int rc = ioctl(fd, cmd, arg), got = rc < 0 ? errno : 0;

	checks++;
	if (err == EINVAL || err == ENOTTY || err == EFAULT)
		expect_bad++;
	if (got != err)
		fail("row %d (%s): errno %d (%s), want %d (%s)", n, what, got, strerror(got), err,
		     strerror(err));
}

static int gmig_open(void)
{
	int fd = open(GMIG_KMD_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("FAIL open %s: %s\n", GMIG_KMD_DEVICE, strerror(errno));
		exit(1);
	}
	return fd;
}

static int reg(int fd, uint32_t role)
{
	struct gmig_kmd_register r = { .size = sizeof(r), .role = role };

	return ioctl(fd, GMIG_IOC_REGISTER, &r) ? -errno : 0;
}

static long sysfs_read(const char *name)
{
	char path[128], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), SYSFS "%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	if (buf[0] >= 'a' && buf[0] <= 'z')
		return buf[0];		/* barrier: first letter */
	return strtol(buf, NULL, 10);
}

static int staging_create(int agent, uint64_t bytes, int *fd)
{
	struct gmig_kmd_staging_create c = { .size = sizeof(c), .bytes = bytes,
					  .flags = GMIG_KMD_STAGING_CLOEXEC };

	if (ioctl(agent, GMIG_IOC_STAGING_CREATE, &c))
		return -errno;
	*fd = c.fd;
	return 0;
}

/* Waits up to @ms for @events on @fd; returns the revents. */
static short wait_fd(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return p.revents;
}

static int take_events(int agent, struct gmig_kmd_client_event *ev, unsigned int cap)
{
	struct gmig_kmd_client_events req = { .size = sizeof(req), .count = cap,
					  .events = (uintptr_t)ev };

	if (ioctl(agent, GMIG_IOC_CLIENT_EVENTS, &req))
		return -errno;
	return (int)req.count;
}

static int freeze_status(int agent, struct gmig_kmd_freeze_status *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return ioctl(agent, GMIG_IOC_FREEZE_STATUS, st) ? -errno : 0;
}

static int simple_op(int fd, unsigned long cmd)
{
	struct gmig_kmd_op op = { .size = sizeof(op) };

	return ioctl(fd, cmd, &op) ? -errno : 0;
}

static int freeze(int agent, uint32_t ms)
{
	struct gmig_kmd_freeze f = { .size = sizeof(f), .deadline_ms = ms };

	return ioctl(agent, GMIG_IOC_FREEZE, &f) ? -errno : 0;
}

/*
 * Waits (bounded) until the freeze in progress has an outcome, taking client events that also
 * make the agent's fd readable meanwhile; the outcome is in @st.
 */
static int wait_barrier(int agent, struct gmig_kmd_freeze_status *st)
{
	struct gmig_kmd_client_event ev[8];

	for (int i = 0; i < 100; i++) {
		if (!(wait_fd(agent, POLLIN, 20000) & POLLIN))
			return -ETIMEDOUT;
		while (take_events(agent, ev, 8) > 0)
			;
		if (freeze_status(agent, st))
			return -EIO;
		if (st->result != -EINPROGRESS)
			return 0;
	}
	return -ELOOP;
}

/* The table of malformed and refused calls. */
static void test_rows(int agent)
{
	struct gmig_kmd_version v = { .size = sizeof(v) };
	struct gmig_kmd_register r = { .size = sizeof(r), .role = GMIG_KMD_ROLE_CLIENT };
	struct gmig_kmd_staging_create c = { .size = sizeof(c), .bytes = PAGE };
	struct gmig_kmd_freeze fz = { .size = sizeof(fz), .deadline_ms = 1000 };
	struct gmig_kmd_client_events ce = { .size = sizeof(ce), .count = 1 };
	struct gmig_kmd_op op = { .size = sizeof(op) };
	struct gmig_kmd_phys_range ranges[4];
	struct gmig_kmd_staging_phys ph = { .size = sizeof(ph), .count = 4,
					.ranges = (uintptr_t)ranges };
	int fresh = gmig_open(), client = gmig_open(), st;
	void *hole;

	hole = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(hole, PAGE);

	/* 1 */ row(1, "version", fresh, GMIG_IOC_VERSION, &v, 0);
	CHECK(v.abi == GMIG_KMD_ABI_VERSION, "version: abi %u", v.abi);
	v.size = sizeof(v) - 4;
	/* 2 */ row(2, "version, short size field", fresh, GMIG_IOC_VERSION, &v, EINVAL);
	v.size = sizeof(v) + 4;
	/* 3 */ row(3, "version, long size field", fresh, GMIG_IOC_VERSION, &v, EINVAL);
	v.size = sizeof(v);
	v.reserved = 1;
	/* 4 */ row(4, "version, reserved set", fresh, GMIG_IOC_VERSION, &v, EINVAL);
	/* 5 */ row(5, "version, NULL", fresh, GMIG_IOC_VERSION, NULL, EFAULT);
	/* 6 */ row(6, "version, unmapped", fresh, GMIG_IOC_VERSION, hole, EFAULT);
	/* 7 */ row(7, "unknown number", fresh, _IOWR(GMIG_KMD_IOC_MAGIC, 0x3f, struct gmig_kmd_version),
		    &v, ENOTTY);
	/* 8 */ row(8, "size encoded wrong", fresh, _IOWR(GMIG_KMD_IOC_MAGIC, 0x00, char[12]), &v,
		    ENOTTY);
	/* 9 */ row(9, "other magic", fresh, _IOWR('T', 0x00, struct gmig_kmd_version), &v, ENOTTY);

	r.role = 0;
	/* 10 */ row(10, "register, role 0", fresh, GMIG_IOC_REGISTER, &r, EINVAL);
	r.role = 3;
	/* 11 */ row(11, "register, role 3", fresh, GMIG_IOC_REGISTER, &r, EINVAL);
	r.role = GMIG_KMD_ROLE_CLIENT;
	r.flags = 1;
	/* 12 */ row(12, "register, flags", fresh, GMIG_IOC_REGISTER, &r, EINVAL);
	r.flags = 0;
	r.reserved = 7;
	/* 13 */ row(13, "register, reserved", fresh, GMIG_IOC_REGISTER, &r, EINVAL);
	r.reserved = 0;
	r.role = GMIG_KMD_ROLE_AGENT;
	/* 14 */ row(14, "second agent", fresh, GMIG_IOC_REGISTER, &r, EBUSY);
	/* 15 */ row(15, "agent registers again", agent, GMIG_IOC_REGISTER, &r, EALREADY);

	/* 16 */ row(16, "staging, unregistered", fresh, GMIG_IOC_STAGING_CREATE, &c, EPERM);
	CHECK(reg(client, GMIG_KMD_ROLE_CLIENT) == 0, "client register");
	r.role = GMIG_KMD_ROLE_CLIENT;
	/* 17 */ row(17, "client registers again", client, GMIG_IOC_REGISTER, &r, EALREADY);
	/* 18 */ row(18, "staging, by a client", client, GMIG_IOC_STAGING_CREATE, &c, EPERM);
	c.bytes = 0;
	/* 19 */ row(19, "staging, 0 bytes", agent, GMIG_IOC_STAGING_CREATE, &c, EINVAL);
	c.bytes = PAGE + 1;
	/* 20 */ row(20, "staging, not pages", agent, GMIG_IOC_STAGING_CREATE, &c, EINVAL);
	c.bytes = MAX_BYTES + PAGE;
	/* 21 */ row(21, "staging, over the buffer limit", agent, GMIG_IOC_STAGING_CREATE, &c,
		     E2BIG);
	c.bytes = 1ull << 62;
	/* 22 */ row(22, "staging, huge", agent, GMIG_IOC_STAGING_CREATE, &c, E2BIG);
	c.bytes = PAGE;
	c.flags = 2;
	/* 23 */ row(23, "staging, bad flags", agent, GMIG_IOC_STAGING_CREATE, &c, EINVAL);
	c.flags = 0;
	c.reserved = 1;
	/* 24 */ row(24, "staging, reserved", agent, GMIG_IOC_STAGING_CREATE, &c, EINVAL);
	c.reserved = 0;
	/* 25 */ row(25, "staging, unmapped", agent, GMIG_IOC_STAGING_CREATE, hole, EFAULT);

	fz.deadline_ms = 0;
	/* 26 */ row(26, "freeze, deadline 0", agent, GMIG_IOC_FREEZE, &fz, EINVAL);
	fz.deadline_ms = GMIG_KMD_DEADLINE_MAX_MS + 1;
	/* 27 */ row(27, "freeze, deadline huge", agent, GMIG_IOC_FREEZE, &fz, EINVAL);
	fz.deadline_ms = 1000;
	fz.flags = 1;
	/* 28 */ row(28, "freeze, flags", agent, GMIG_IOC_FREEZE, &fz, EINVAL);
	fz.flags = 0;
	/* 29 */ row(29, "freeze, by a client", client, GMIG_IOC_FREEZE, &fz, EPERM);
	/* 30 */ row(30, "frozen without a freeze", client, GMIG_IOC_FROZEN, &op, ESRCH);
	/* 31 */ row(31, "frozen, by the agent", agent, GMIG_IOC_FROZEN, &op, EPERM);
	/* 32 */ row(32, "frozen, unregistered", fresh, GMIG_IOC_FROZEN, &op, EPERM);
	/* 33 */ row(33, "thaw while open", agent, GMIG_IOC_THAW, &op, EALREADY);
	/* 34 */ row(34, "thaw, by a client", client, GMIG_IOC_THAW, &op, EPERM);
	op.flags = 1;
	/* 35 */ row(35, "wait_thaw, flags", client, GMIG_IOC_WAIT_THAW, &op, EINVAL);
	op.flags = 0;
	/* 36 */ row(36, "wait_thaw while open", client, GMIG_IOC_WAIT_THAW, &op, 0);
	/* 37 */ row(37, "wait_thaw, by the agent", agent, GMIG_IOC_WAIT_THAW, &op, EPERM);

	ce.count = 0;
	/* 38 */ row(38, "events, count 0", agent, GMIG_IOC_CLIENT_EVENTS, &ce, EINVAL);
	ce.count = 1;
	/* 39 */ row(39, "events, NULL array", agent, GMIG_IOC_CLIENT_EVENTS, &ce, EFAULT);
	/* 40 */ row(40, "events, by a client", client, GMIG_IOC_CLIENT_EVENTS, &ce, EPERM);
	ce.flags = 1;
	/* 41 */ row(41, "events, flags", agent, GMIG_IOC_CLIENT_EVENTS, &ce, EINVAL);
	ce.flags = 0;
	st = freeze_status(agent, &(struct gmig_kmd_freeze_status){ 0 });
	/* 42 */ CHECK(st == 0, "row 42: freeze_status while open: %d", st);
	/* 43 */ row(43, "freeze_status, by a client", client, GMIG_IOC_FREEZE_STATUS,
		     &(struct gmig_kmd_freeze_status){ .size = sizeof(struct gmig_kmd_freeze_status) },
		     EPERM);

	/* Wrong fd types both ways. */
	/* 44 */ row(44, "staging_phys on /dev/gmig", agent, GMIG_IOC_STAGING_PHYS, &ph, ENOTTY);
	CHECK(staging_create(agent, PAGE, &st) == 0, "staging of one page");
	/* 45 */ row(45, "freeze on a staging fd", st, GMIG_IOC_FREEZE, &fz, ENOTTY);
	/* 46 */ row(46, "register on a staging fd", st, GMIG_IOC_REGISTER, &r, ENOTTY);
	ph.count = GMIG_KMD_PHYS_MAX + 1;
	/* 47 */ row(47, "phys, count over the maximum", st, GMIG_IOC_STAGING_PHYS, &ph, EINVAL);
	ph.count = 4;
	ph.flags = 1;
	/* 48 */ row(48, "phys, flags", st, GMIG_IOC_STAGING_PHYS, &ph, EINVAL);
	ph.flags = 0;
	ph.ranges = 0;
	/* 49 */ row(49, "phys, NULL ranges", st, GMIG_IOC_STAGING_PHYS, &ph, EFAULT);
	ph.ranges = (uintptr_t)hole;
	/* 50 */ row(50, "phys, unmapped ranges", st, GMIG_IOC_STAGING_PHYS, &ph, EFAULT);
	ph.ranges = (uintptr_t)ranges;
	ph.count = 0;
	/* 51 */ row(51, "phys, no room", st, GMIG_IOC_STAGING_PHYS, &ph, ENOSPC);
	CHECK(ph.count == 1 && ph.bytes == PAGE, "row 51: needed %u, bytes %llu", ph.count,
	      (unsigned long long)ph.bytes);
	/* 52 */ CHECK(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, st, 0) == MAP_FAILED &&
			errno == EINVAL, "row 52: private mapping of staging");
	/* 53 */ CHECK(mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, st, 0) == MAP_FAILED &&
			errno == EINVAL, "row 53: mapping past the end");
	/* 54 */ CHECK(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, st, PAGE) == MAP_FAILED &&
			errno == EINVAL, "row 54: mapping at the end");
	close(st);
	close(client);
	close(fresh);
}

/* A process without CAP_SYS_ADMIN cannot be the agent. */
static void test_agent_needs_cap(void)
{
	pid_t pid = fork();
	int status = -1;

	if (pid == 0) {
		int fd = gmig_open();

		if (setuid(65534))
			_exit(3);
		_exit(reg(fd, GMIG_KMD_ROLE_AGENT) == -EPERM && reg(fd, GMIG_KMD_ROLE_CLIENT) == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "an unprivileged agent was not refused (status %d)", status);
}

/* The physical frame behind @va, from /proc/self/pagemap (root sees frame numbers). */
static uint64_t frame_of(const void *va)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, 8, (off_t)((uintptr_t)va / PAGE) * 8) != 8)
		e = 0;
	close(fd);
	if (!(e >> 63))
		return 0;
	return e & ((1ull << 55) - 1);
}

/* Sets the module's largest chunk order (a writable parameter); 0 or -errno. */
static int set_chunk_order(unsigned int order)
{
	FILE *f = fopen("/sys/module/gmig/parameters/staging_chunk_order", "w");
	int rc;

	if (!f)
		return -errno;
	rc = fprintf(f, "%u\n", order) < 0;
	return fclose(f) || rc ? -EIO : 0;
}

static void test_staging(int agent)
{
	struct gmig_kmd_phys_range *ranges;
	struct gmig_kmd_staging_phys ph = { .size = sizeof(ph) };
	uint64_t sum = 0, before = (uint64_t)sysfs_read("staging_bytes");
	int fd, fd2, fd3, rc;
	uint8_t *m, *m2;
	size_t i, page;

	CHECK(staging_create(agent, MAX_BYTES, &fd) == 0, "staging of the maximum");
	CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "staging fd not close-on-exec");
	CHECK((uint64_t)sysfs_read("staging_bytes") == before + MAX_BYTES, "staging_bytes");
	CHECK(staging_create(agent, MAX_BYTES, &fd2) == 0, "second staging");
	rc = staging_create(agent, PAGE, &fd3);
	CHECK(rc == -ENOSPC, "staging beyond the total: %d", rc);
	if (!rc)
		close(fd3);
	close(fd2);
	CHECK((uint64_t)sysfs_read("staging_bytes") == before + MAX_BYTES, "staging_bytes back");

	/* Bytes written through one mapping are read back through another. */
	m = mmap(NULL, MAX_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap staging: %s", strerror(errno));
	if (m == MAP_FAILED)
		return;
	for (i = 0; i < MAX_BYTES && !m[i]; i++)
		;
	CHECK(i == MAX_BYTES, "staging not zeroed at %zu", i);
	for (i = 0; i < MAX_BYTES; i++)
		m[i] = (uint8_t)(i * 131 + (i >> 12));
	m2 = mmap(NULL, MAX_BYTES - PAGE, PROT_READ, MAP_SHARED, fd, PAGE);
	CHECK(m2 != MAP_FAILED, "second mapping at an offset");
	if (m2 != MAP_FAILED) {
		CHECK(!memcmp(m2, m + PAGE, MAX_BYTES - PAGE), "bytes differ between mappings");
		munmap(m2, MAX_BYTES - PAGE);
	}
	CHECK(mremap(m, MAX_BYTES, 2 * MAX_BYTES, MREMAP_MAYMOVE) == MAP_FAILED,
	      "staging mapping grew with mremap");

	/* The ranges cover the buffer, page aligned, and are the frames the mapping uses. */
	ph.count = 0;
	rc = ioctl(fd, GMIG_IOC_STAGING_PHYS, &ph) ? errno : 0;
	CHECK(rc == ENOSPC && ph.count >= 1 && ph.count <= MAX_BYTES / PAGE,
	      "phys count: rc %d count %u", rc, ph.count);
	ranges = calloc(ph.count, sizeof(*ranges));
	ph.ranges = (uintptr_t)ranges;
	CHECK(ioctl(fd, GMIG_IOC_STAGING_PHYS, &ph) == 0, "phys: %s", strerror(errno));
	CHECK(ph.bytes == MAX_BYTES, "phys bytes %llu", (unsigned long long)ph.bytes);
	printf("staging of %u bytes: %u range(s)\n", MAX_BYTES, ph.count);
	page = 0;
	for (i = 0; i < ph.count; i++) {
		CHECK(ranges[i].gpa % PAGE == 0 && ranges[i].len % PAGE == 0 && ranges[i].len,
		      "range %zu not page aligned", i);
		if (i)
			CHECK(ranges[i - 1].gpa + ranges[i - 1].len != ranges[i].gpa,
			      "ranges %zu and %zu not merged", i - 1, i);
		for (uint64_t off = 0; off < ranges[i].len; off += PAGE, page++) {
			uint64_t want = (ranges[i].gpa + off) / PAGE, got = frame_of(m + page * PAGE);

			if (got != want) {
				CHECK(0, "page %zu: frame %llx, ranges say %llx", page,
				      (unsigned long long)got, (unsigned long long)want);
				break;
			}
		}
		sum += ranges[i].len;
	}
	CHECK(sum == MAX_BYTES, "ranges cover %llu bytes", (unsigned long long)sum);
	free(ranges);

	/* The pages outlive the fd while mapped. */
	close(fd);
	CHECK((uint64_t)sysfs_read("staging_bytes") == before + MAX_BYTES, "freed while mapped");
	CHECK(m[12345] == (uint8_t)(12345 * 131 + 3), "bytes changed after close");
	munmap(m, MAX_BYTES);
	CHECK((uint64_t)sysfs_read("staging_bytes") == before, "not freed after munmap");
}

/* A forked client: registers, says so on @ready, then acts as @mode says. */
enum child_mode {
	CHILD_EXIT,		/* exits when told (a byte on @go) */
	CHILD_ACK,		/* waits for POLLPRI, acks, waits for the thaw, exits 0 */
	CHILD_DIE,		/* waits for POLLPRI, exits without acking */
	CHILD_IGNORE,		/* never acks; exits when told */
	CHILD_INTR,		/* acks, then a signal must interrupt its wait for the thaw */
};

static void on_alarm(int sig)
{
	(void)sig;
}

static pid_t child(enum child_mode mode, int *ready_rd, int *go_wr)
{
	int ready[2], go[2];
	pid_t pid;
	char b = 0;

	if (pipe(ready) || pipe(go))
		exit(2);
	pid = fork();
	if (pid == 0) {
		int fd;

		/* Drop the parent's files: a copy of the agent's fd would keep it registered. */
		for (fd = 3; fd < 1024; fd++)
			if (fd != ready[1] && fd != go[0])
				close(fd);
		fd = gmig_open();
		prctl(PR_SET_NAME, "gmig-kid");
		close(ready[0]);
		close(go[1]);
		if (reg(fd, GMIG_KMD_ROLE_CLIENT))
			_exit(10);
		if (write(ready[1], &b, 1) != 1)
			_exit(11);
		switch (mode) {
		case CHILD_EXIT:
		case CHILD_IGNORE:
			if (read(go[0], &b, 1) < 0)
				_exit(12);
			_exit(0);
		case CHILD_ACK:
			if (!(wait_fd(fd, POLLPRI, 20000) & POLLPRI))
				_exit(13);
			if (simple_op(fd, GMIG_IOC_FROZEN))
				_exit(14);
			if (simple_op(fd, GMIG_IOC_WAIT_THAW))
				_exit(16);
			_exit(0);
		case CHILD_DIE:
			if (!(wait_fd(fd, POLLPRI, 20000) & POLLPRI))
				_exit(13);
			_exit(0);
		case CHILD_INTR:
			/* No SA_RESTART: the interrupted wait returns EINTR. */
			sigaction(SIGALRM, &(struct sigaction){ .sa_handler = on_alarm }, NULL);
			if (!(wait_fd(fd, POLLPRI, 20000) & POLLPRI))
				_exit(13);
			if (simple_op(fd, GMIG_IOC_FROZEN))
				_exit(14);
			alarm(1);
			_exit(simple_op(fd, GMIG_IOC_WAIT_THAW) == -EINTR ? 0 : 17);
		}
		_exit(9);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &b, 1) != 1)
		fail("child %d did not register", (int)pid);
	*ready_rd = ready[0];
	*go_wr = go[1];
	return pid;
}

static int reap(pid_t pid, int rd, int wr)
{
	int status = -1;

	close(wr);
	close(rd);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + status;
}

static void test_registry(int agent)
{
	struct gmig_kmd_client_event ev[8];
	int rd, wr, n, rc;
	pid_t pid;

	while (take_events(agent, ev, 8) > 0)
		;	/* what the rows and the cap test left */
	CHECK(!(wait_fd(agent, POLLIN, 0) & POLLIN), "agent readable with nothing pending");
	pid = child(CHILD_EXIT, &rd, &wr);
	CHECK(wait_fd(agent, POLLIN, 5000) & POLLIN, "agent not told of a new client");
	n = take_events(agent, ev, 8);
	CHECK(n == 1 && ev[0].kind == GMIG_KMD_EVENT_REGISTERED && ev[0].pid == (uint32_t)pid &&
	      !strcmp(ev[0].comm, "gmig-kid"), "registered event: n %d kind %u pid %u comm %.16s",
	      n, n > 0 ? ev[0].kind : 0, n > 0 ? ev[0].pid : 0, n > 0 ? ev[0].comm : "");
	CHECK(sysfs_read("clients") == 1, "clients counter %ld", sysfs_read("clients"));
	rc = reap(pid, rd, wr);
	CHECK(rc == 0, "child exit %d", rc);
	CHECK(wait_fd(agent, POLLIN, 5000) & POLLIN, "agent not told a client went away");
	n = take_events(agent, ev, 8);
	CHECK(n == 1 && ev[0].kind == GMIG_KMD_EVENT_GONE && ev[0].pid == (uint32_t)pid,
	      "gone event: n %d", n);
	CHECK(sysfs_read("clients") == 0, "clients counter after exit");
	CHECK(!(wait_fd(agent, POLLIN, 0) & POLLIN), "agent readable after taking events");
}

static void test_barrier(int agent)
{
	struct gmig_kmd_client_event ev[8];
	struct gmig_kmd_freeze_status st;
	int rd1, wr1, rd2, wr2, rc1, rc2;
	long timeouts = sysfs_read("freeze_timeouts"), freezes = sysfs_read("freezes");
	int me = gmig_open();
	pid_t p1, p2;

	/* One client acks, one dies: the barrier closes with the dead one counted as gone. */
	p1 = child(CHILD_ACK, &rd1, &wr1);
	p2 = child(CHILD_DIE, &rd2, &wr2);
	CHECK(reg(me, GMIG_KMD_ROLE_CLIENT) == 0, "the test as a client");
	take_events(agent, ev, 8);
	CHECK(freeze(agent, 20000) == 0, "freeze");
	CHECK(freeze(agent, 20000) == -EBUSY, "freeze while closed");
	CHECK(wait_fd(me, POLLPRI, 0) & POLLPRI, "client not polling POLLPRI");
	CHECK(simple_op(me, GMIG_IOC_FROZEN) == 0, "ack");
	CHECK(!(wait_fd(me, POLLPRI, 0) & POLLPRI), "POLLPRI after the ack");
	CHECK(simple_op(me, GMIG_IOC_FROZEN) == -EALREADY, "second ack");
	CHECK(wait_barrier(agent, &st) == 0 && st.state == GMIG_KMD_BARRIER_FROZEN && st.result == 0 &&
	      st.clients == 3 && st.acked == 2 && st.gone == 1,
	      "frozen status: state %u result %d clients %u acked %u gone %u", st.state, st.result,
	      st.clients, st.acked, st.gone);
	CHECK(sysfs_read("barrier") == 'f', "sysfs barrier not frozen");
	CHECK(!(wait_fd(agent, POLLIN, 0) & POLLIN), "agent readable after the status was read");
	rc2 = reap(p2, rd2, wr2);
	CHECK(rc2 == 0, "dying child exit %d", rc2);
	CHECK(simple_op(agent, GMIG_IOC_THAW) == 0, "thaw");
	CHECK(simple_op(me, GMIG_IOC_WAIT_THAW) == 0, "wait_thaw after the thaw");
	close(me);
	rc1 = reap(p1, rd1, wr1);
	CHECK(rc1 == 0, "acking child exit %d", rc1);
	CHECK(sysfs_read("barrier") == 'o', "sysfs barrier not open after thaw");

	/* A signal ends a client's wait for the thaw while the barrier stays closed. */
	p1 = child(CHILD_INTR, &rd1, &wr1);
	take_events(agent, ev, 8);
	CHECK(freeze(agent, 20000) == 0, "freeze for the interrupted wait");
	rc1 = reap(p1, rd1, wr1);
	CHECK(rc1 == 0, "interrupted wait_thaw: exit %d", rc1);
	CHECK(freeze_status(agent, &st) == 0 && st.state == GMIG_KMD_BARRIER_FROZEN,
	      "state after the interrupted wait: %u", st.state);
	CHECK(simple_op(agent, GMIG_IOC_THAW) == 0, "thaw after the interrupted wait");

	/* Nobody registered: frozen at once. */
	take_events(agent, ev, 8);
	CHECK(freeze(agent, 1000) == 0, "freeze with no clients");
	CHECK(freeze_status(agent, &st) == 0 && st.state == GMIG_KMD_BARRIER_FROZEN && st.clients == 0,
	      "empty freeze state %u", st.state);
	CHECK(simple_op(agent, GMIG_IOC_THAW) == 0, "thaw of the empty freeze");

	/* A client that never acks: the deadline reopens the barrier with -ETIMEDOUT. */
	p1 = child(CHILD_IGNORE, &rd1, &wr1);
	take_events(agent, ev, 8);
	CHECK(freeze(agent, 300) == 0, "freeze with a deadline");
	CHECK(freeze_status(agent, &st) == 0 && st.state == GMIG_KMD_BARRIER_FREEZING &&
	      st.result == -EINPROGRESS, "freezing state %u result %d", st.state, st.result);
	CHECK(wait_barrier(agent, &st) == 0 && st.state == GMIG_KMD_BARRIER_OPEN &&
	      st.result == -ETIMEDOUT && st.acked == 0, "timeout state %u result %d", st.state,
	      st.result);
	CHECK(simple_op(agent, GMIG_IOC_THAW) == -EALREADY, "thaw after the deadline");
	rc1 = reap(p1, rd1, wr1);
	CHECK(rc1 == 0, "ignoring child exit %d", rc1);
	CHECK(sysfs_read("freeze_timeouts") == timeouts + 1, "freeze_timeouts");
	CHECK(sysfs_read("freezes") == freezes + 4, "freezes %ld", sysfs_read("freezes"));
	take_events(agent, ev, 8);
}

/* The agent going away while the barrier is closed lets a waiting client go. */
static void test_agent_gone(void)
{
	int agent = gmig_open(), rd, wr, rc;
	struct gmig_kmd_client_event ev[8];
	struct gmig_kmd_freeze_status st;
	pid_t pid;

	CHECK(reg(agent, GMIG_KMD_ROLE_AGENT) == 0, "agent again");
	pid = child(CHILD_ACK, &rd, &wr);
	while (take_events(agent, ev, 8) > 0)
		;
	CHECK(freeze(agent, 20000) == 0, "freeze before the agent closes");
	CHECK(wait_barrier(agent, &st) == 0 && st.state == GMIG_KMD_BARRIER_FROZEN, "state %u",
	      st.state);
	close(agent);
	rc = reap(pid, rd, wr);
	CHECK(rc == 0, "client waiting for the thaw: exit %d", rc);
	CHECK(sysfs_read("barrier") == 'o' && sysfs_read("agent") == 0, "barrier after the agent");
}

static int unload(void)
{
	return syscall(SYS_delete_module, "gmig", O_NONBLOCK) ? -errno : 0;
}

/* Unloading fails while a client or a staging mapping holds the module, then succeeds. */
static void test_unload(void)
{
	int client = gmig_open(), agent = gmig_open(), st = -1, rc;
	void *m;

	CHECK(reg(client, GMIG_KMD_ROLE_CLIENT) == 0, "client for unload");
	CHECK(reg(agent, GMIG_KMD_ROLE_AGENT) == 0, "agent for unload");
	CHECK(staging_create(agent, PAGE, &st) == 0, "staging for unload");
	m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, st, 0);
	CHECK(m != MAP_FAILED, "map for unload");
	close(st);
	close(agent);
	rc = unload();
	CHECK(rc == -EWOULDBLOCK, "unload with a client open: %d", rc);
	close(client);
	rc = unload();
	CHECK(rc == -EWOULDBLOCK, "unload with a staging mapping: %d", rc);
	munmap(m, PAGE);
	rc = unload();
	CHECK(rc == 0, "unload after the last close: %d", rc);
	CHECK(access(GMIG_KMD_DEVICE, F_OK) != 0, "/dev/gmig still there after unload");
}

/* Sends one JSON line to a unix socket and prints the reply line; 0, or 1 without a reply. */
static int qga(const char *path, const char *line)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char reply[4096];
	size_t n = 0;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) != 1) {
		perror("qga");
		return 1;
	}
	while (n + 1 < sizeof(reply) && wait_fd(fd, POLLIN, 60000) & POLLIN) {
		if (read(fd, &reply[n], 1) != 1)
			break;
		if (reply[n] == '\n')
			break;
		n++;
	}
	reply[n] = 0;
	close(fd);
	puts(reply);
	return n ? 0 : 1;
}

int main(int argc, char **argv)
{
	int agent;
	long bad0;

	if (argc == 4 && !strcmp(argv[1], "qga"))
		return qga(argv[2], argv[3]);
	agent = gmig_open();
	bad0 = sysfs_read("bad_ioctls");
	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK(reg(agent, GMIG_KMD_ROLE_AGENT) == 0, "agent register");
	CHECK(sysfs_read("agent") == 1, "sysfs agent");
	puts("kmd-test: rows");
	test_rows(agent);
	test_agent_needs_cap();
	puts("kmd-test: staging");
	test_staging(agent);
	/* Page-sized chunks: many pieces, merged where the pages happen to be adjacent. */
	CHECK(set_chunk_order(0) == 0, "staging_chunk_order");
	test_staging(agent);
	CHECK(set_chunk_order(10) == 0, "staging_chunk_order back");
	puts("kmd-test: registry");
	test_registry(agent);
	puts("kmd-test: barrier");
	test_barrier(agent);
	CHECK(sysfs_read("bad_ioctls") == bad0 + expect_bad, "bad_ioctls %ld, want %ld",
	      sysfs_read("bad_ioctls"), bad0 + expect_bad);
	close(agent);
	puts("kmd-test: agent gone");
	test_agent_gone();
	puts("kmd-test: unload");
	test_unload();
	printf("kmd-test: %u checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
