/* gmig-agent's settings: one table of keys with their defaults, the config file parser and the checks. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmig/limits.h"

#include "config.h"
#include "log.h"

enum key_kind {
	K_U32,		/* decimal */
	K_SIZE,		/* decimal with an optional K, M or G suffix (binary) */
	K_MODE,		/* octal permission bits */
	K_PATH,		/* a path, or empty for "off" where the key allows it */
	K_LEVEL,	/* a log level name */
};

static const struct config_key {
	struct config_key_info info;
	enum key_kind kind;
	size_t off;
	uint64_t min, max;	/* K_U32, K_SIZE, K_MODE: the range; K_PATH: min 1 = not empty */
} keys[] = {
#define KEY(name, field, kind, def, min, max, doc)				\
	{ { name, def, doc }, kind, offsetof(struct agent_config, field), min, max }
	KEY("vsock_port", vsock_port, K_U32, "9190", 0, UINT32_MAX - 1,
	    "AF_VSOCK port the host connects to; 0 turns vsock off"),
	KEY("serial", serial, K_PATH, "", 0, 0,
	    "virtio-serial port serving the host channel, e.g. /dev/virtio-ports/org.gmig.agent.0; empty: off"),
	KEY("unix", unix_path, K_PATH, "", 0, 0,
	    "unix socket serving the host channel; empty: off"),
	KEY("unix_mode", unix_mode, K_MODE, "0600", 0, 0777,
	    "permissions of the host channel's unix socket"),
	KEY("client_socket", client_socket, K_PATH, "/run/gmig/agent.sock", 1, 0,
	    "unix socket GPU programs (libgmig) connect to"),
	KEY("client_socket_mode", client_socket_mode, K_MODE, "0666", 0, 0777,
	    "permissions of the client socket"),
	KEY("sim_dir", sim_dir, K_PATH, "/dev/shm", 1, 0,
	    "directory searched for simulated GPUs (gmig-sim-*)"),
	KEY("sysfs_dir", sysfs_dir, K_PATH, "/sys", 1, 0,
	    "root of sysfs, read for PCI display devices"),
	KEY("slots", slots, K_U32, "8", 1, GMIG_SLOTS_MAX,
	    "staging slots in each direction per client"),
	KEY("slot_size", slot_size, K_SIZE, "1M", GMIG_CHUNK_MIN, GMIG_DATA_MAX,
	    "bytes per staging slot, a power of two"),
	KEY("host_buffer", host_buffer, K_SIZE, "16M", 64u << 10, 1u << 30,
	    "bytes queued towards the host before slots stop going back to clients"),
	KEY("max_clients", max_clients, K_U32, "64", 1, 1024,
	    "GPU programs served at once, held ones included"),
	KEY("max_host_conns", max_host_conns, K_U32, "8", 1, 64,
	    "host channel connections open at once"),
	KEY("resume_timeout_ms", resume_timeout_ms, K_U32, "30000", 100, 86400000,
	    "frozen clients are thawed when no host resumes within this"),
	KEY("request_timeout_ms", request_timeout_ms, K_U32, "30000", 100, 3600000,
	    "a client's answer to a request, or a round's progress, must come within this"),
	KEY("freeze_grace_ms", freeze_grace_ms, K_U32, "500", 0, 60000,
	    "added to a freeze deadline for the clients' answers to arrive"),
	KEY("hello_timeout_ms", hello_timeout_ms, K_U32, "5000", 100, 600000,
	    "a new client must send HELLO within this"),
	KEY("log_level", log_level, K_LEVEL, "info", 0, 0,
	    "error, warn, info or debug"),
#undef KEY
};

#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

const struct config_key_info *config_keys(size_t *count)
{
	static struct config_key_info infos[NKEYS];

	for (size_t i = 0; i < NKEYS; i++)
		infos[i] = keys[i].info;
	*count = NKEYS;
	return infos;
}

static const struct config_key *key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (!strcmp(keys[i].info.name, name))
			return &keys[i];
	}
	return NULL;
}

/* Parses an unsigned number in @base, with a binary K/M/G suffix when @suffix. */
static int parse_num(const char *s, int base, bool suffix, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno)
		return -EINVAL;
	if (suffix && *end) {
		unsigned shift = 0;

		switch (*end) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		default: return -EINVAL;
		}
		end++;
		if (v > (UINT64_MAX >> shift))
			return -EINVAL;
		v <<= shift;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool text_clean(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

void config_defaults(struct agent_config *c)
{
	char err[CONFIG_ERR_MAX];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		/* The defaults are in the table above; a bad one is a bug caught by the tests. */
		if (config_set(c, keys[i].info.name, keys[i].info.def, err, sizeof(err)))
			abort();
	}
}

int config_set(struct agent_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_key *k = key_find(key);
	void *field;
	uint64_t v;
	int lv;

	if (!k) {
		snprintf(err, errlen, "unknown key '%s'", key);
		return -ENOENT;
	}
	field = (char *)c + k->off;
	switch (k->kind) {
	case K_U32:
	case K_SIZE:
	case K_MODE:
		if (parse_num(value, k->kind == K_MODE ? 8 : 10, k->kind == K_SIZE, &v)) {
			snprintf(err, errlen, "%s: '%s' is not %s", key, value,
				 k->kind == K_MODE ? "an octal mode" :
				 k->kind == K_SIZE ? "a size (bytes, or with K, M or G)" : "a number");
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			snprintf(err, errlen, "%s: %s is out of range [%llu, %llu]", key, value,
				 (unsigned long long)k->min, (unsigned long long)k->max);
			return -EINVAL;
		}
		if (k->kind == K_SIZE && !strcmp(key, "slot_size") && (v & (v - 1))) {
			snprintf(err, errlen, "%s: %s is not a power of two", key, value);
			return -EINVAL;
		}
		*(uint32_t *)field = (uint32_t)v;
		return 0;
	case K_PATH:
		if (strlen(value) >= CONFIG_PATH_MAX || !text_clean(value)) {
			snprintf(err, errlen, "%s: the path is too long or holds control characters",
				 key);
			return -EINVAL;
		}
		if (k->min && !value[0]) {
			snprintf(err, errlen, "%s: must not be empty", key);
			return -EINVAL;
		}
		if (value[0] && value[0] != '/') {
			snprintf(err, errlen, "%s: '%s' is not an absolute path", key, value);
			return -EINVAL;
		}
		snprintf(field, CONFIG_PATH_MAX, "%s", value);
		return 0;
	case K_LEVEL:
		lv = log_level_parse(value);
		if (lv < 0) {
			snprintf(err, errlen, "%s: '%s' is not error, warn, info or debug", key, value);
			return -EINVAL;
		}
		*(int *)field = lv;
		return 0;
	}
	snprintf(err, errlen, "%s: unhandled kind", key);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int config_parse(struct agent_config *c, const char *text, size_t len, const char *name,
		 char *err, size_t errlen)
{
	bool seen[NKEYS] = { false };
	char line[CONFIG_PATH_MAX + 128];
	char msg[CONFIG_ERR_MAX];
	size_t pos = 0;
	unsigned lineno = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		const struct config_key *k;
		char *key, *value, *eq;

		lineno++;
		if (n >= sizeof(line)) {
			snprintf(err, errlen, "%s:%u: line too long", name, lineno);
			return -EINVAL;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + (nl ? 1 : 0);
		if (memchr(line, '\0', n)) {
			snprintf(err, errlen, "%s:%u: NUL byte in line", name, lineno);
			return -EINVAL;
		}

		key = trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'", name, lineno);
			return -EINVAL;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		k = key_find(key);
		if (!k) {
			snprintf(err, errlen, "%s:%u: unknown key '%s'", name, lineno, key);
			return -EINVAL;
		}
		if (seen[k - keys]) {
			snprintf(err, errlen, "%s:%u: '%s' is set twice", name, lineno, key);
			return -EINVAL;
		}
		if (config_set(c, key, value, msg, sizeof(msg))) {
			snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
			return -EINVAL;
		}
		seen[k - keys] = true;
	}
	return 0;
}

int config_load(struct agent_config *c, const char *path, int must_exist, char *err, size_t errlen)
{
	char *text;
	size_t len = 0;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT && !must_exist)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	text = malloc(CONFIG_FILE_MAX + 1);
	if (!text) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out_close;
	}
	for (;;) {
		n = read(fd, text + len, CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			rc = -EFBIG;
			snprintf(err, errlen, "%s: longer than %u bytes", path, CONFIG_FILE_MAX);
			goto out_free;
		}
	}
	rc = config_parse(c, text, len, path, err, errlen);
out_free:
	free(text);
out_close:
	close(fd);
	return rc;
}

int config_check(const struct agent_config *c, char *err, size_t errlen)
{
	if (!c->vsock_port && !c->serial[0] && !c->unix_path[0]) {
		snprintf(err, errlen, "no host channel: set vsock_port, serial or unix");
		return -EINVAL;
	}
	if (c->unix_path[0] && !strcmp(c->unix_path, c->client_socket)) {
		snprintf(err, errlen, "unix and client_socket are the same path");
		return -EINVAL;
	}
	if (c->host_buffer < c->slot_size) {
		snprintf(err, errlen, "host_buffer (%u) is smaller than slot_size (%u)",
			 c->host_buffer, c->slot_size);
		return -EINVAL;
	}
	return 0;
}
