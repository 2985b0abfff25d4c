/* gmigd's settings: one table of keys with their defaults, the config file parser and the checks. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "log.h"

enum key_kind {
	K_U32,		/* decimal */
	K_SIZE32,	/* decimal with an optional K, M or G suffix (binary), 32 bits */
	K_SIZE64,	/* the same, 64 bits, and T */
	K_MODE,		/* octal permission bits */
	K_PATH,		/* an absolute path, or empty where the key allows it */
	K_BOOL,		/* yes/no, true/false, on/off, 1/0 */
	K_LEVEL,	/* a log level name */
	K_LISTEN,	/* HOST:PORT, or empty for off */
	K_NAME,		/* a host name for logs, or empty */
};

#define GUEST_PREFIX	"guest."
#define VM_PREFIX	"vm."

static const struct config_key {
	struct config_key_info info;
	enum key_kind kind;
	size_t off;
	uint64_t min, max;	/* numbers: the range; K_PATH: min 1 = not empty */
} keys[] = {
#define KEY(name, field, kind, def, min, max, doc)				\
	{ { name, def, doc }, kind, offsetof(struct gmigd_config, field), min, max }
	KEY("control_socket", control_socket, K_PATH, "/run/gmig/gmigd.sock", 1, 0,
	    "unix socket gmigctl talks to"),
	KEY("control_mode", control_mode, K_MODE, "0660", 0, 0777,
	    "permissions of the control socket"),
	KEY("peer_listen", peer_listen, K_LISTEN, "0.0.0.0:9191", 0, 0,
	    "HOST:PORT where this gmigd takes migrations in (the destination role); empty: off"),
	KEY("peer_secret_file", peer_secret_file, K_PATH, "/etc/gmig/peer.secret", 1, 0,
	    "file holding the secret both peers share (16 to 1024 bytes; a final newline is dropped)"),
	KEY("name", name, K_NAME, "", 0, 0,
	    "this host's name in HELLO and logs; empty: the hostname"),
	KEY("image_cap", image_cap, K_SIZE64, "16G", 1u << 20, UINT64_MAX,
	    "bytes of guest images held in memory at once; a larger image is refused"),
	KEY("max_rounds", max_rounds, K_U32, "8", 0, 1000,
	    "pre-copy rounds at most; 0 is stop-and-copy"),
	KEY("pause_target_ms", pause_target_ms, K_U32, "300", 1, 3600000,
	    "pre-copy stops once the final delta is estimated to move within this"),
	KEY("freeze_deadline_ms", freeze_deadline_ms, K_U32, "5000", 1, 600000,
	    "time the guest's programs get to reach their safe points"),
	KEY("step_timeout_ms", step_timeout_ms, K_U32, "30000", 100, 3600000,
	    "a guest must answer a request, or show progress, within this"),
	KEY("connect_timeout_ms", connect_timeout_ms, K_U32, "5000", 100, 600000,
	    "a connection (and its handshake and HELLO) must be up within this"),
	KEY("guest_resume_ms", guest_resume_ms, K_U32, "10000", 0, 3600000,
	    "a dropped guest channel may take this long to resume before a migration rolls back"),
	KEY("rollback_timeout_ms", rollback_timeout_ms, K_U32, "60000", 1000, 3600000,
	    "a rollback keeps trying to reach the guest this long"),
	KEY("peer_timeout_ms", peer_timeout_ms, K_U32, "30000", 100, 3600000,
	    "the peer link may be silent this long while it is waited on"),
	KEY("handover_timeout_ms", handover_timeout_ms, K_U32, "120000", 1000, 3600000,
	    "the destination must confirm a hand-over within this"),
	KEY("peer_lz4", peer_lz4, K_BOOL, "no", 0, 0,
	    "compress region data on the peer link with LZ4 when the destination offers it"),
	KEY("guest_lz4", guest_lz4, K_BOOL, "no", 0, 0,
	    "compress restore data towards the guest with LZ4 when the agent offers it"),
	KEY("guest_shm", guest_shm, K_BOOL, "yes", 0, 0,
	    "on a unix channel, map the clients' staging fds the agent sends (no copies); off "
	    "when a proxy that drops fds sits in between"),
	KEY("peer_buffer", peer_buffer, K_SIZE32, "32M", 1u << 20, 1u << 30,
	    "bytes queued towards the peer before the guest channel stops being read"),
	KEY("guest_buffer", guest_buffer, K_SIZE32, "8M", 1u << 20, 1u << 30,
	    "bytes of restore data queued towards a guest at once"),
	KEY("jobs_kept", jobs_kept, K_U32, "32", 1, 10000,
	    "finished jobs remembered for status"),
	KEY("log_level", log_level, K_LEVEL, "info", 0, 0,
	    "error, warn, info or debug"),
	KEY("qmp_timeout_ms", qmp_timeout_ms, K_U32, "5000", 100, 600000,
	    "QEMU must answer one QMP command within this"),
	KEY("vm_unplug_timeout_ms", vm_unplug_timeout_ms, K_U32, "10000", 100, 600000,
	    "the guest must release its GPU device (DEVICE_DELETED) within this"),
	KEY("vm_migrate_timeout_ms", vm_migrate_timeout_ms, K_U32, "600000", 1000, 86400000,
	    "QEMU's migration of the VM must complete within this"),
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

/* Parses an unsigned number in @base, with a binary K/M/G/T suffix when @suffix. */
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
		case 'T': case 't': shift = 40; break;
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

bool guest_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > GUEST_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

void config_defaults(struct gmigd_config *c)
{
	char err[CONFIG_ERR_MAX];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		/* The defaults are in the table above; a bad one is a bug caught by the tests. */
		if (config_set(c, keys[i].info.name, keys[i].info.def, err, sizeof(err)))
			abort();
	}
}

const char *config_guest(const struct gmigd_config *c, const char *name)
{
	for (unsigned int i = 0; i < c->nguests; i++) {
		if (!strcmp(c->guests[i].name, name))
			return c->guests[i].addr;
	}
	return NULL;
}

static int set_guest(struct gmigd_config *c, const char *name, const char *value, char *err,
		     size_t errlen)
{
	struct config_guest *g = NULL;
	char why[ADDR_ERR_MAX];
	struct gaddr a;

	if (!guest_name_ok(name)) {
		snprintf(err, errlen, "guest name '%s': use 1 to %d letters, digits, '.', '_' or '-'",
			 name, GUEST_NAME_MAX);
		return -EINVAL;
	}
	if (addr_parse(value, &a, why, sizeof(why))) {
		snprintf(err, errlen, "guest %s: %s", name, why);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < c->nguests; i++) {
		if (!strcmp(c->guests[i].name, name))
			g = &c->guests[i];
	}
	if (!g) {
		if (c->nguests == CONFIG_GUESTS_MAX) {
			snprintf(err, errlen, "more than %d guests", CONFIG_GUESTS_MAX);
			return -EINVAL;
		}
		g = &c->guests[c->nguests++];
		snprintf(g->name, sizeof(g->name), "%s", name);
	}
	addr_format(&a, g->addr, sizeof(g->addr));
	return 0;
}

const struct config_vm *config_vm(const struct gmigd_config *c, const char *name)
{
	for (unsigned int i = 0; i < c->nvms; i++) {
		if (!strcmp(c->vms[i].name, name) && c->vms[i].qmp[0])
			return &c->vms[i];
	}
	return NULL;
}

/* "vm.NAME.qmp", ".gpu", ".gpu_file", ".ram": the attribute is after the last dot. */
static int set_vm(struct gmigd_config *c, const char *key, const char *value, char *err,
		  size_t errlen)
{
	const char *dot = strrchr(key, '.'), *attr;
	char name[GUEST_NAME_MAX + 1];
	struct config_vm *vm = NULL;
	size_t n;

	if (!dot || dot == key) {
		snprintf(err, errlen, "vm.%s: use vm.NAME.qmp, vm.NAME.gpu or vm.NAME.gpu_file", key);
		return -ENOENT;
	}
	attr = dot + 1;
	n = (size_t)(dot - key);
	if (n > GUEST_NAME_MAX) {
		snprintf(err, errlen, "vm.%s: the guest name is longer than %d bytes", key,
			 GUEST_NAME_MAX);
		return -EINVAL;
	}
	memcpy(name, key, n);
	name[n] = '\0';
	if (!guest_name_ok(name)) {
		snprintf(err, errlen, "guest name '%s': use 1 to %d letters, digits, '.', '_' or '-'",
			 name, GUEST_NAME_MAX);
		return -EINVAL;
	}
	if (strcmp(attr, "qmp") && strcmp(attr, "gpu") && strcmp(attr, "gpu_file") &&
	    strcmp(attr, "ram")) {
		snprintf(err, errlen, "unknown key 'vm.%s' (qmp, gpu, gpu_file or ram)", key);
		return -ENOENT;
	}
	if (!strcmp(attr, "gpu")) {
		if (!value[0] || strlen(value) >= CONFIG_VM_ID_MAX || !guest_name_ok(value)) {
			snprintf(err, errlen, "vm.%s: a QEMU id of letters, digits, '.', '_' or '-'",
				 key);
			return -EINVAL;
		}
	} else if (!value[0] || value[0] != '/' || strlen(value) >= CONFIG_PATH_MAX ||
		   !text_clean(value)) {
		snprintf(err, errlen, "vm.%s: an absolute path shorter than %d bytes", key,
			 CONFIG_PATH_MAX);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < c->nvms; i++) {
		if (!strcmp(c->vms[i].name, name))
			vm = &c->vms[i];
	}
	if (!vm) {
		if (c->nvms == CONFIG_GUESTS_MAX) {
			snprintf(err, errlen, "more than %d VMs", CONFIG_GUESTS_MAX);
			return -EINVAL;
		}
		vm = &c->vms[c->nvms++];
		memset(vm, 0, sizeof(*vm));
		snprintf(vm->name, sizeof(vm->name), "%s", name);
		snprintf(vm->gpu, sizeof(vm->gpu), "gpu0");
	}
	if (!strcmp(attr, "qmp"))
		snprintf(vm->qmp, sizeof(vm->qmp), "%s", value);
	else if (!strcmp(attr, "gpu"))
		snprintf(vm->gpu, sizeof(vm->gpu), "%s", value);
	else if (!strcmp(attr, "ram"))
		snprintf(vm->ram, sizeof(vm->ram), "%s", value);
	else
		snprintf(vm->gpu_file, sizeof(vm->gpu_file), "%s", value);
	return 0;
}

int config_set(struct gmigd_config *c, const char *key, const char *value, char *err,
	       size_t errlen)
{
	const struct config_key *k;
	char why[ADDR_ERR_MAX], host[ADDR_HOST_MAX];
	uint16_t port;
	void *field;
	uint64_t v;
	int lv;

	if (!strncmp(key, GUEST_PREFIX, strlen(GUEST_PREFIX)))
		return set_guest(c, key + strlen(GUEST_PREFIX), value, err, errlen);
	if (!strncmp(key, VM_PREFIX, strlen(VM_PREFIX)))
		return set_vm(c, key + strlen(VM_PREFIX), value, err, errlen);
	k = key_find(key);
	if (!k) {
		snprintf(err, errlen, "unknown key '%s'", key);
		return -ENOENT;
	}
	field = (char *)c + k->off;
	switch (k->kind) {
	case K_U32:
	case K_SIZE32:
	case K_SIZE64:
	case K_MODE:
		if (parse_num(value, k->kind == K_MODE ? 8 : 10,
			      k->kind == K_SIZE32 || k->kind == K_SIZE64, &v)) {
			snprintf(err, errlen, "%s: '%s' is not %s", key, value,
				 k->kind == K_MODE ? "an octal mode" :
				 k->kind == K_U32 ? "a number" : "a size (bytes, or with K, M, G or T)");
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			snprintf(err, errlen, "%s: %s is out of range [%llu, %llu]", key, value,
				 (unsigned long long)k->min, (unsigned long long)k->max);
			return -EINVAL;
		}
		if (k->kind == K_SIZE64)
			*(uint64_t *)field = v;
		else
			*(uint32_t *)field = (uint32_t)v;
		return 0;
	case K_PATH:
		if (strlen(value) >= CONFIG_PATH_MAX || !text_clean(value)) {
			snprintf(err, errlen, "%s: the path is longer than %d bytes or holds control "
				 "characters", key, CONFIG_PATH_MAX - 1);
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
	case K_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") ||
		    !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") ||
			 !strcmp(value, "0"))
			*(bool *)field = false;
		else {
			snprintf(err, errlen, "%s: '%s' is not yes or no", key, value);
			return -EINVAL;
		}
		return 0;
	case K_LEVEL:
		lv = log_level_parse(value);
		if (lv < 0) {
			snprintf(err, errlen, "%s: '%s' is not error, warn, info or debug", key, value);
			return -EINVAL;
		}
		*(int *)field = lv;
		return 0;
	case K_LISTEN:
		if (value[0] && hostport_parse_listen(value, host, sizeof(host), &port, why,
						      sizeof(why))) {
			snprintf(err, errlen, "%s: %s", key, why);
			return -EINVAL;
		}
		if (strlen(value) >= CONFIG_LISTEN_MAX) {
			snprintf(err, errlen, "%s: too long", key);
			return -EINVAL;
		}
		snprintf(field, CONFIG_LISTEN_MAX, "%s", value);
		return 0;
	case K_NAME:
		if (strlen(value) > GUEST_NAME_MAX || !text_clean(value)) {
			snprintf(err, errlen, "%s: at most %d printable bytes", key, GUEST_NAME_MAX);
			return -EINVAL;
		}
		snprintf(field, GUEST_NAME_MAX + 1, "%s", value);
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

int config_parse(struct gmigd_config *c, const char *text, size_t len, const char *name,
		 char *err, size_t errlen)
{
	bool seen[NKEYS] = { false };
	char line[GMIG_ADDR_MAX + 128];
	char msg[CONFIG_ERR_MAX];
	unsigned int lineno = 0, first_guest = c->nguests;
	size_t pos = 0;

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
		if (!strncmp(key, GUEST_PREFIX, strlen(GUEST_PREFIX))) {
			for (unsigned int i = first_guest; i < c->nguests; i++) {
				if (!strcmp(c->guests[i].name, key + strlen(GUEST_PREFIX))) {
					snprintf(err, errlen, "%s:%u: '%s' is set twice", name,
						 lineno, key);
					return -EINVAL;
				}
			}
		} else if (!strncmp(key, VM_PREFIX, strlen(VM_PREFIX))) {
			/* vm.NAME.* keys may be set again; the last one counts. */
		} else {
			k = key_find(key);
			if (!k) {
				snprintf(err, errlen, "%s:%u: unknown key '%s'", name, lineno, key);
				return -EINVAL;
			}
			if (seen[k - keys]) {
				snprintf(err, errlen, "%s:%u: '%s' is set twice", name, lineno, key);
				return -EINVAL;
			}
			seen[k - keys] = true;
		}
		if (config_set(c, key, value, msg, sizeof(msg))) {
			snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
			return -EINVAL;
		}
	}
	return 0;
}

int config_load(struct gmigd_config *c, const char *path, bool must_exist, char *err,
		size_t errlen)
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

int config_check(const struct gmigd_config *c, char *err, size_t errlen)
{
	if (c->peer_listen[0] && !c->peer_secret_file[0]) {
		snprintf(err, errlen, "peer_listen is set but peer_secret_file is empty");
		return -EINVAL;
	}
	if (c->rollback_timeout_ms < c->guest_resume_ms) {
		snprintf(err, errlen, "rollback_timeout_ms (%u) is shorter than guest_resume_ms (%u)",
			 c->rollback_timeout_ms, c->guest_resume_ms);
		return -EINVAL;
	}
	if (c->guest_buffer < GMIG_DATA_MAX / 4 || c->peer_buffer < GMIG_DATA_MAX / 4) {
		snprintf(err, errlen, "peer_buffer and guest_buffer must be at least %u bytes",
			 GMIG_DATA_MAX / 4);
		return -EINVAL;
	}
	return 0;
}
