/* gmigctl: the operator's command for gmigd: migrate, checkpoint, restore, abort, status, inventory. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define DEFAULT_SOCKET	"/run/gmig/gmigd.sock"
#define REPLY_MAX	(32u << 20)	/* a status with many reports is large, but not this large */
#define REQUEST_MS	15000		/* gmigd answers a command within this (inventory: longer) */
#define POLL_MS		100		/* progress refresh */
#define BAR_WIDTH	30

/* Exit codes, as gmigctl(1) lists them. */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* the job failed; the guest is as it was (rolled back) */
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,	/* gmigd is not there, or did not answer */
	EXIT_REFUSED = 4,	/* gmigd refused the command */
	EXIT_IN_DOUBT = 5,	/* the job failed and the guest needs a look */
};

static struct {
	const char *socket;
	bool json, wait, quiet;
	long timeout_s;
} opt = { NULL, false, true, false, 0 };

static volatile sig_atomic_t interrupted;
static int sock = -1;
static char *inbuf;
static size_t inlen, incap;
static long next_id = 1;

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "gmigctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(code);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmigctl [OPTION]... COMMAND [ARG]...\n"
		"Drive gmigd, the gmig host daemon.\n"
		"\n"
		"Commands:\n"
		"  migrate GUEST DEST      migrate GUEST's GPU state live to the gmigd at DEST\n"
		"                          (HOST[:PORT], port 9191 by default)\n"
		"      --channel ADDR      the guest's channel as DEST reaches it (default: the same)\n"
		"      --qemu-uri URI      the guest runs under QEMU (vm.GUEST.qmp): unplug its GPU,\n"
		"                          migrate the VM to the QEMU started with -incoming URI\n"
		"      --map FROM:TO,...   GPU indices to move to (default: each to itself)\n"
		"  checkpoint GUEST FILE   write GUEST's GPU state to FILE; the programs go on\n"
		"      --stop              release the GPUs afterwards instead (restore resumes them)\n"
		"  restore GUEST FILE      verify FILE whole, then attach, restore and thaw GUEST\n"
		"      --map FROM:TO,...   GPU indices to restore onto\n"
		"  abort JOB               stop a running job; it rolls back\n"
		"  status [JOB]            gmigd's guests and jobs, or one job and its report\n"
		"  inventory GUEST         GUEST's GPUs and GPU programs\n"
		"\n"
		"  migrate and checkpoint also take --max-rounds N, --pause-target-ms MS and\n"
		"  --freeze-deadline-ms MS. GUEST is a name from gmigd's config or an address:\n"
		"  vsock:CID:PORT, hvsock:/PATH:PORT, serial:/PATH, unix:/PATH, tcp:HOST:PORT.\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH       gmigd's control socket (default $GMIG_SOCKET, else\n"
		"                          " DEFAULT_SOCKET ")\n"
		"  -j, --json              print JSON for scripts instead of text\n"
		"  -n, --no-wait           print the job id and return at once\n"
		"  -t, --timeout SECONDS   stop waiting for a job after this (it goes on)\n"
		"  -q, --quiet             no progress bar\n"
		"  -h, --help              show this help\n"
		"\n"
		"While gmigctl waits for a job, Ctrl-C asks gmigd to abort it; a second Ctrl-C\n"
		"leaves the job running and returns.\n"
		"\n"
		"Exit status: 0 done; 1 the job failed and the guest is as it was; 2 usage;\n"
		"3 gmigd unreachable or silent; 4 gmigd refused the command; 5 the job failed and\n"
		"the guest's state is in doubt.\n");
}

/* --- the control socket --- */

static void ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(opt.socket) >= sizeof(sa.sun_path))
		die(EXIT_USAGE, "socket path too long: %s", opt.socket);
	memcpy(sa.sun_path, opt.socket, strlen(opt.socket) + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		die(EXIT_UNREACHABLE, "socket: %s", strerror(errno));
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)))
		die(EXIT_UNREACHABLE, "cannot reach gmigd at %s: %s (is gmigd running?)", opt.socket,
		    strerror(errno));
}

static void send_all(const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(sock, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(EXIT_UNREACHABLE, "writing to gmigd: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* One reply line, within @ms; NULL-terminated, newline removed. */
static char *read_line(int ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		char *nl = inlen ? memchr(inbuf, '\n', inlen) : NULL;
		struct pollfd p = { .fd = sock, .events = POLLIN };
		long left;
		ssize_t n;
		int rc;

		if (nl) {
			size_t len = (size_t)(nl - inbuf);
			char *line = malloc(len + 1);

			if (!line)
				die(EXIT_UNREACHABLE, "out of memory");
			memcpy(line, inbuf, len);
			line[len] = '\0';
			memmove(inbuf, nl + 1, inlen - len - 1);
			inlen -= len + 1;
			return line;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			die(EXIT_UNREACHABLE, "gmigd did not answer within %d s", ms / 1000);
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			continue;
		if (inlen + 65536 > incap) {
			if (incap >= REPLY_MAX)
				die(EXIT_UNREACHABLE, "a reply from gmigd is over %u bytes", REPLY_MAX);
			incap = incap ? incap * 2 : 65536 * 2;
			inbuf = realloc(inbuf, incap);
			if (!inbuf)
				die(EXIT_UNREACHABLE, "out of memory");
		}
		n = recv(sock, inbuf + inlen, incap - inlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(EXIT_UNREACHABLE, "gmigd closed the connection");
		inlen += (size_t)n;
	}
}

/*
 * Runs one command: its "return" value (a new reference), or NULL with the error's description
 * in @err when gmigd refused it.
 */
static struct json_object *call(const char *cmd, struct json_object *args, int ms, char *err,
				size_t errlen)
{
	struct json_object *req = json_object_new_object(), *reply, *v, *e;
	long id = next_id++;
	const char *text;
	char *line;

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	json_object_object_add(req, "arguments", args ? args : json_object_new_object());
	json_object_object_add(req, "id", json_object_new_int64(id));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	send_all(text, strlen(text));
	send_all("\n", 1);
	json_object_put(req);
	for (;;) {
		line = read_line(ms);
		reply = json_tokener_parse(line);
		free(line);
		if (!reply || !json_object_is_type(reply, json_type_object))
			die(EXIT_UNREACHABLE, "gmigd sent something that is not a JSON object");
		/* A reply to an earlier request (after a timeout) is not ours. */
		if (json_object_object_get_ex(reply, "id", &v) && json_object_get_int64(v) == id)
			break;
		json_object_put(reply);
	}
	if (json_object_object_get_ex(reply, "return", &v)) {
		json_object_get(v);
		json_object_put(reply);
		return v;
	}
	if (json_object_object_get_ex(reply, "error", &e) &&
	    json_object_object_get_ex(e, "desc", &v))
		snprintf(err, errlen, "%s", json_object_get_string(v));
	else
		snprintf(err, errlen, "gmigd's reply has neither return nor error");
	json_object_put(reply);
	return NULL;
}

static struct json_object *call_or_die(const char *cmd, struct json_object *args, int ms)
{
	char err[1100];
	struct json_object *r = call(cmd, args, ms, err, sizeof(err));

	if (!r)
		die(EXIT_REFUSED, "%s: %s", cmd, err);
	return r;
}

/* --- printing --- */

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static double jnum(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : NAN;
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static struct json_object *jobj(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *human_bytes(double b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
	return buf;
}

static const char *human_ms(double ms, char *buf, size_t len)
{
	if (isnan(ms))
		snprintf(buf, len, "-");
	else if (ms >= 10000)
		snprintf(buf, len, "%.1f s", ms / 1000);
	else
		snprintf(buf, len, "%.1f ms", ms);
	return buf;
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void print_times(struct json_object *t, const char *const *keys, const char *label)
{
	char buf[32];
	bool any = false;

	for (const char *const *k = keys; *k; k++) {
		double v = jnum(t, *k);

		if (isnan(v))
			continue;
		if (!any)
			printf("  %-11s", label);
		printf("%s%s %s", any ? ", " : "", *k, human_ms(v, buf, sizeof(buf)));
		any = true;
	}
	if (any)
		printf("\n");
}

static void print_report(struct json_object *st)
{
	static const char *const steps1[] = { "load", "connect", "inventory", "peer", "precopy",
					      NULL };
	static const char *const steps2[] = { "freeze", "final", "release", "write", "handover",
					      NULL };
	static const char *const steps3[] = { "attach", "restore", "thaw", "rollback", "stream",
					      NULL };
	struct json_object *r = jobj(st, "report"), *rounds, *t, *rate, *pc;
	char b1[32], b2[32];
	const char *kind = jstr(st, "kind");
	double pause;

	printf("job %lld: %s %s%s%s: %s", (long long)jint(st, "job"), kind, jstr(st, "guest"),
	       jstr(st, "target")[0] ? (strcmp(kind, "incoming") ? " -> " : " <- ") : "",
	       jstr(st, "target"), jstr(st, "result"));
	if (jstr(st, "error")[0])
		printf(": %s", jstr(st, "error"));
	printf("\n");
	if (!r)
		return;
	printf("  %-11s%s in %lld clients, %lld regions\n", "image",
	       human_bytes((double)jint(r, "image_bytes"), b1, sizeof(b1)), (long long)jint(r, "clients"),
	       (long long)jint(r, "regions"));
	rounds = jobj(r, "rounds");
	for (size_t i = 0; rounds && i < json_object_array_length(rounds); i++) {
		struct json_object *o = json_object_array_get_idx(rounds, i);

		printf("  %-11s#%lld%s base %lld: %lld of %lld chunks changed (%lld zero), %s, %s\n",
		       i ? "" : "rounds", (long long)jint(o, "round"),
		       json_object_get_boolean(jobj(o, "final")) ? " final" : "",
		       (long long)jint(o, "base"), (long long)jint(o, "changed"),
		       (long long)jint(o, "chunks"), (long long)jint(o, "zero"),
		       human_bytes((double)jint(o, "bytes"), b1, sizeof(b1)),
		       human_ms(jnum(o, "ms"), b2, sizeof(b2)));
	}
	pc = jobj(r, "precopy");
	if (pc && jstr(pc, "stop")[0])
		printf("  %-11sstopped: %s (final delta estimated %lld ms, target %lld ms)\n",
		       "precopy", jstr(pc, "stop"), (long long)jint(pc, "estimated_final_ms"),
		       (long long)jint(pc, "pause_target_ms"));
	t = jobj(r, "times_ms");
	if (t) {
		print_times(t, steps1, "times");
		print_times(t, steps2, "");
		print_times(t, steps3, "");
	}
	pause = jnum(r, "pause_ms");
	if (!isnan(pause))
		printf("  %-11s%s%s\n", "pause", human_ms(pause, b1, sizeof(b1)),
		       pc ? "" : "");
	rate = jobj(r, "throughput_mbps");
	if (rate && json_object_object_length(rate)) {
		bool first = true;

		printf("  %-11s", "throughput");
		json_object_object_foreach(rate, key, val) {
			printf("%s%s %.1f MB/s", first ? "" : ", ", key, json_object_get_double(val));
			first = false;
		}
		printf("\n");
	}
	if (t)
		printf("  %-11s%s\n", "total", human_ms(jnum(t, "total"), b1, sizeof(b1)));
	if (jstr(r, "rollback_error")[0])
		printf("  %-11s%s\n", "undoing", jstr(r, "rollback_error"));
}

static void print_status(struct json_object *s)
{
	struct json_object *guests = jobj(s, "guests"), *jobs = jobj(s, "jobs");
	char b1[32], b2[32];

	printf("gmigd %s on %s, up %s, peer port %s, images %s of %s\n", jstr(s, "version"),
	       jstr(s, "host"), human_ms(jnum(s, "uptime_ms"), b1, sizeof(b1)),
	       jstr(s, "peer_listen")[0] ? jstr(s, "peer_listen") : "off",
	       human_bytes((double)jint(s, "image_bytes"), b2, sizeof(b2)),
	       human_bytes((double)jint(s, "image_cap"), b1, sizeof(b1)));
	if (guests && json_object_array_length(guests)) {
		printf("\n%-24s %-40s %-11s %s\n", "GUEST", "ADDRESS", "CHANNEL", "PHASE");
		for (size_t i = 0; i < json_object_array_length(guests); i++) {
			struct json_object *g = json_object_array_get_idx(guests, i);

			printf("%-24s %-40s %-11s %s\n", jstr(g, "name"), jstr(g, "address"),
			       jstr(g, "channel"), jstr(g, "phase")[0] ? jstr(g, "phase") : "-");
		}
	}
	if (jobs && json_object_array_length(jobs)) {
		printf("\n%-5s %-11s %-24s %-12s %-12s %s\n", "JOB", "KIND", "GUEST", "STATE",
		       "RESULT", "ELAPSED");
		for (size_t i = 0; i < json_object_array_length(jobs); i++) {
			struct json_object *j = json_object_array_get_idx(jobs, i);

			printf("%-5lld %-11s %-24s %-12s %-12s %s\n", (long long)jint(j, "job"),
			       jstr(j, "kind"), jstr(j, "guest"), jstr(j, "state"), jstr(j, "result"),
			       human_ms(jnum(j, "elapsed_ms"), b1, sizeof(b1)));
		}
	}
}

static void print_inventory(struct json_object *inv)
{
	struct json_object *gpus = jobj(inv, "gpus"), *clients = jobj(inv, "clients");
	char b1[32];

	printf("guest %s (%s), phase %s\n", jstr(inv, "guest"), jstr(inv, "address"),
	       jstr(inv, "phase"));
	printf("\n%-4s %-32s %-8s %-11s %s\n", "GPU", "MODEL", "BACKEND", "MEMORY", "UUID");
	for (size_t i = 0; gpus && i < json_object_array_length(gpus); i++) {
		struct json_object *g = json_object_array_get_idx(gpus, i);

		printf("%-4lld %-32s %-8s %-11s %s\n", (long long)jint(g, "index"), jstr(g, "model"),
		       jstr(g, "backend"), human_bytes((double)jint(g, "mem_bytes"), b1, sizeof(b1)),
		       jstr(g, "uuid"));
	}
	printf("\n%-8s %-32s %-4s %-8s %s\n", "PID", "PROGRAM", "GPU", "REGIONS", "BYTES");
	for (size_t i = 0; clients && i < json_object_array_length(clients); i++) {
		struct json_object *c = json_object_array_get_idx(clients, i);

		printf("%-8lld %-32s %-4lld %-8lld %s\n", (long long)jint(c, "pid"), jstr(c, "name"),
		       (long long)jint(c, "gpu"), (long long)jint(c, "regions"),
		       human_bytes((double)jint(c, "bytes"), b1, sizeof(b1)));
	}
}

/* --- waiting for a job --- */

static void on_sigint(int sig)
{
	(void)sig;
	interrupted++;
}

static void draw_bar(struct json_object *st, bool *drawn)
{
	struct json_object *p = jobj(st, "progress");
	double done = (double)jint(p, "done_bytes"), total = (double)jint(p, "total_bytes");
	int fill = total > 0 ? (int)(BAR_WIDTH * (done > total ? 1.0 : done / total)) : 0;
	char bar[BAR_WIDTH + 1], b1[32], b2[32], b3[32];

	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr, "\r\033[K[%s] %3.0f%%  %-11s round %-3lld %s / %s  %s", bar,
		total > 0 ? 100.0 * (done > total ? 1.0 : done / total) : 0.0, jstr(st, "state"),
		(long long)jint(p, "round"), human_bytes(done, b1, sizeof(b1)),
		human_bytes(total, b2, sizeof(b2)), human_ms(jnum(st, "elapsed_ms"), b3, sizeof(b3)));
	fflush(stderr);
	*drawn = true;
}

static int result_code(const char *result)
{
	if (!strcmp(result, "done"))
		return EXIT_OK;
	if (!strcmp(result, "in-doubt"))
		return EXIT_IN_DOUBT;
	return EXIT_FAILED;
}

static int wait_job(long id)
{
	bool bar = !opt.json && !opt.quiet && isatty(STDERR_FILENO), drawn = false;
	struct timespec t0, t;
	int aborted = 0, code;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	signal(SIGINT, on_sigint);
	for (;;) {
		struct json_object *args = json_object_new_object(), *st;

		json_object_object_add(args, "job", json_object_new_int64(id));
		st = call_or_die("status", args, REQUEST_MS);
		if (strcmp(jstr(st, "result"), "running")) {
			if (drawn)
				fprintf(stderr, "\r\033[K");
			if (opt.json)
				print_json(st);
			else
				print_report(st);
			code = result_code(jstr(st, "result"));
			json_object_put(st);
			return code;
		}
		if (bar)
			draw_bar(st, &drawn);
		json_object_put(st);
		if (interrupted > 1) {
			if (drawn)
				fprintf(stderr, "\r\033[K");
			fprintf(stderr, "gmigctl: job %ld goes on; 'gmigctl abort %ld' stops it\n", id, id);
			return EXIT_FAILED;
		}
		if (interrupted && !aborted) {
			char err[1100];
			struct json_object *a = json_object_new_object(), *r;

			aborted = 1;
			json_object_object_add(a, "job", json_object_new_int64(id));
			r = call("abort", a, REQUEST_MS, err, sizeof(err));
			if (drawn)
				fprintf(stderr, "\r\033[K");
			fprintf(stderr, "gmigctl: %s (Ctrl-C again to stop waiting)\n",
				r ? "aborting; the job rolls back" : err);
			json_object_put(r);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (opt.timeout_s && t.tv_sec - t0.tv_sec >= opt.timeout_s) {
			if (drawn)
				fprintf(stderr, "\r\033[K");
			fprintf(stderr, "gmigctl: job %ld still runs after %ld s; it goes on\n", id,
				opt.timeout_s);
			return EXIT_UNREACHABLE;
		}
		usleep(POLL_MS * 1000);
	}
}

/* --- commands --- */

static void add_u32_opt(struct json_object *args, const char *name, const char *text)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || !*text || text[0] == '-' || v > UINT32_MAX)
		die(EXIT_USAGE, "--%s wants a number, not '%s'", name, text);
	json_object_object_add(args, name, json_object_new_int64((int64_t)v));
}

static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		die(EXIT_USAGE, "cannot tell the current directory: %s", strerror(errno));
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		die(EXIT_USAGE, "out of memory");
	return out;
}

static int start(const char *cmd, struct json_object *args)
{
	struct json_object *r = call_or_die(cmd, args, REQUEST_MS);
	long id = (long)jint(r, "job");

	json_object_put(r);
	if (!opt.wait) {
		if (opt.json)
			printf("{\"job\": %ld}\n", id);
		else
			printf("job %ld\n", id);
		return EXIT_OK;
	}
	return wait_job(id);
}

/* Parses the options of migrate, checkpoint and restore into @args; the rest are operands. */
static int job_args(int argc, char **argv, const char *cmd, struct json_object *args,
		    char **operands, int max_operands)
{
	static const struct {
		const char *name;
		bool value;
		const char *cmds;	/* the commands that take it */
	} known[] = {
		{ "channel", true, "migrate" },
		{ "qemu-uri", true, "migrate" },
		{ "map", true, "migrate restore" },
		{ "stop", false, "checkpoint" },
		{ "max-rounds", true, "migrate checkpoint" },
		{ "pause-target-ms", true, "migrate checkpoint" },
		{ "freeze-deadline-ms", true, "migrate checkpoint" },
	};
	int n = 0;

	for (int i = 1; i < argc; i++) {
		char name[32], *value = NULL, *eq;
		size_t k;

		if (strncmp(argv[i], "--", 2) || !argv[i][2]) {
			if (!strcmp(argv[i], "--"))
				continue;
			if (n == max_operands)
				die(EXIT_USAGE, "%s: too many arguments ('%s')", cmd, argv[i]);
			operands[n++] = argv[i];
			continue;
		}
		snprintf(name, sizeof(name), "%s", argv[i] + 2);
		eq = strchr(name, '=');
		if (eq) {
			*eq = '\0';
			value = strchr(argv[i], '=') + 1;
		}
		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
			if (!strcmp(known[k].name, name))
				break;
		}
		if (k == sizeof(known) / sizeof(known[0]))
			die(EXIT_USAGE, "%s: unknown option --%s (see gmigctl --help)", cmd, name);
		if (!strstr(known[k].cmds, cmd))
			die(EXIT_USAGE, "%s does not take --%s", cmd, name);
		if (known[k].value && !value) {
			if (i + 1 == argc)
				die(EXIT_USAGE, "--%s wants a value", name);
			value = argv[++i];
		} else if (!known[k].value && value) {
			die(EXIT_USAGE, "--%s takes no value", name);
		}
		if (!strcmp(name, "stop"))
			json_object_object_add(args, "stop", json_object_new_boolean(1));
		else if (!strcmp(name, "channel") || !strcmp(name, "map") ||
			 !strcmp(name, "qemu-uri"))
			json_object_object_add(args, name, json_object_new_string(value));
		else
			add_u32_opt(args, name, value);
	}
	return n;
}

static int cmd_job(const char *cmd, int argc, char **argv)
{
	struct json_object *args = json_object_new_object();
	char *ops[2] = { NULL, NULL }, *path;
	int n;

	n = job_args(argc, argv, cmd, args, ops, 2);
	if (n != 2)
		die(EXIT_USAGE, "usage: gmigctl %s GUEST %s [OPTION]...", cmd,
		    !strcmp(cmd, "migrate") ? "DEST" : "FILE");
	json_object_object_add(args, "guest", json_object_new_string(ops[0]));
	if (!strcmp(cmd, "migrate")) {
		json_object_object_add(args, "to", json_object_new_string(ops[1]));
	} else {
		path = absolute(ops[1]);
		json_object_object_add(args, "file", json_object_new_string(path));
		free(path);
	}
	ctl_connect();
	return start(cmd, args);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd;
	char *end;
	int c;

	opt.socket = getenv("GMIG_SOCKET") ? getenv("GMIG_SOCKET") : DEFAULT_SOCKET;
	while ((c = getopt_long(argc, argv, "+s:jnt:qh", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			opt.socket = optarg;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'n':
			opt.wait = false;
			break;
		case 't':
			opt.timeout_s = strtol(optarg, &end, 10);
			if (*end || opt.timeout_s <= 0)
				die(EXIT_USAGE, "--timeout wants a number of seconds");
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;

	if (!strcmp(cmd, "migrate") || !strcmp(cmd, "checkpoint") || !strcmp(cmd, "restore"))
		return cmd_job(cmd, argc, argv);
	if (!strcmp(cmd, "abort")) {
		struct json_object *args = json_object_new_object(), *r;
		long id;

		if (argc != 2 || (id = strtol(argv[1], &end, 10)) <= 0 || *end)
			die(EXIT_USAGE, "usage: gmigctl abort JOB");
		json_object_object_add(args, "job", json_object_new_int64(id));
		ctl_connect();
		r = call_or_die("abort", args, REQUEST_MS);
		json_object_put(r);
		if (opt.json)
			printf("{\"job\": %ld, \"aborting\": true}\n", id);
		else
			printf("job %ld: aborting; it rolls back\n", id);
		return opt.wait ? wait_job(id) : EXIT_OK;
	}
	if (!strcmp(cmd, "status")) {
		struct json_object *args = json_object_new_object(), *r;
		long id = 0;
		int code = EXIT_OK;

		if (argc > 2 || (argc == 2 && ((id = strtol(argv[1], &end, 10)) <= 0 || *end)))
			die(EXIT_USAGE, "usage: gmigctl status [JOB]");
		if (id)
			json_object_object_add(args, "job", json_object_new_int64(id));
		ctl_connect();
		r = call_or_die("status", args, REQUEST_MS);
		if (opt.json)
			print_json(r);
		else if (id && !strcmp(jstr(r, "result"), "running"))
			printf("job %ld: %s %s: %s, round %lld, %lld of %lld bytes\n", id,
			       jstr(r, "kind"), jstr(r, "guest"), jstr(r, "state"),
			       (long long)jint(jobj(r, "progress"), "round"),
			       (long long)jint(jobj(r, "progress"), "done_bytes"),
			       (long long)jint(jobj(r, "progress"), "total_bytes"));
		else if (id)
			print_report(r);
		else
			print_status(r);
		if (id && strcmp(jstr(r, "result"), "running"))
			code = result_code(jstr(r, "result"));
		json_object_put(r);
		return code;
	}
	if (!strcmp(cmd, "inventory")) {
		struct json_object *args = json_object_new_object(), *r;

		if (argc != 2)
			die(EXIT_USAGE, "usage: gmigctl inventory GUEST");
		json_object_object_add(args, "guest", json_object_new_string(argv[1]));
		ctl_connect();
		/* gmigd answers once the guest has, within its own connect and step timeouts. */
		r = call_or_die("inventory", args, 120000);
		if (opt.json)
			print_json(r);
		else
			print_inventory(r);
		json_object_put(r);
		return EXIT_OK;
	}
	fprintf(stderr, "gmigctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
