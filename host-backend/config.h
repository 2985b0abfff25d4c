/* gmigd's settings: one table of keys with their defaults, the config file parser and the checks. */
#ifndef GMIG_HOST_CONFIG_H
#define GMIG_HOST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/limits.h"

#define CONFIG_DEFAULT_PATH	"/etc/gmig/gmigd.conf"
#define CONFIG_PATH_MAX		108		/* a path setting, NUL included (a unix socket's limit) */
#define CONFIG_FILE_MAX		(64u << 10)	/* a config file longer than this is refused */
#define CONFIG_ERR_MAX		320		/* room for one error message */
#define CONFIG_GUESTS_MAX	256		/* named guests in one config */
#define GUEST_NAME_MAX		32		/* bytes of a guest name (IMAGE_BEGIN's str32) */
#define CONFIG_LISTEN_MAX	160		/* peer_listen text */

struct config_guest {
	char name[GUEST_NAME_MAX + 1];
	char addr[GMIG_ADDR_MAX + 1];
};

/*
 * A guest that runs under a QEMU whose QMP socket gmigd may drive (vm.NAME.* keys): as the
 * source it hot-unplugs the GPU and migrates the VM; as the destination it hot-plugs a GPU
 * when the guest arrives.
 */
#define CONFIG_VM_ID_MAX	64		/* a QEMU device id, NUL included */

struct config_vm {
	char name[GUEST_NAME_MAX + 1];
	char qmp[CONFIG_PATH_MAX];		/* QEMU's QMP unix socket */
	char gpu[CONFIG_VM_ID_MAX];		/* the GPU's device id in QEMU */
	char gpu_file[CONFIG_PATH_MAX];		/* destination: the device file plugged on arrival */
	char ram[CONFIG_PATH_MAX];		/* the guest RAM's shared file: zero-copy pre-copy */
};

struct gmigd_config {
	char control_socket[CONFIG_PATH_MAX];	/* gmigctl's unix socket */
	uint32_t control_mode;			/* its permissions */
	char peer_listen[CONFIG_LISTEN_MAX];	/* HOST:PORT the destination role listens on; "": off */
	char peer_secret_file[CONFIG_PATH_MAX];	/* the shared secret of the peer link */
	char name[GUEST_NAME_MAX + 1];		/* this host's name in HELLO; "": the hostname */
	uint64_t image_cap;			/* bytes of images held in memory at once */
	uint32_t max_rounds;			/* pre-copy rounds at most; 0: stop-and-copy */
	uint32_t pause_target_ms;		/* stop pre-copy once the final delta fits in this */
	uint32_t freeze_deadline_ms;		/* time the guest's programs get to reach safe points */
	uint32_t step_timeout_ms;		/* a guest's answer to a request */
	uint32_t connect_timeout_ms;		/* connect + handshake + HELLO of any link */
	uint32_t guest_resume_ms;		/* a dropped guest channel may take this to resume */
	uint32_t rollback_timeout_ms;		/* rollback keeps trying to reach the guest this long */
	uint32_t peer_timeout_ms;		/* the peer link may be silent this long */
	uint32_t handover_timeout_ms;		/* the destination must confirm within this */
	bool peer_lz4;				/* compress region data on the peer link */
	bool guest_lz4;				/* compress restore data towards the guest */
	bool guest_shm;				/* offer SHM on unix guest channels */
	uint32_t peer_buffer;			/* bytes queued to the peer before guest input pauses */
	uint32_t guest_buffer;			/* bytes of restore data queued to a guest */
	uint32_t jobs_kept;			/* finished jobs remembered for status */
	int log_level;				/* enum log_level */
	uint32_t qmp_timeout_ms;		/* one QMP command */
	uint32_t vm_unplug_timeout_ms;		/* the guest must let go of its GPU device */
	uint32_t vm_migrate_timeout_ms;		/* QEMU's own migration of the VM */
	struct config_guest guests[CONFIG_GUESTS_MAX];
	unsigned int nguests;
	struct config_vm vms[CONFIG_GUESTS_MAX];
	unsigned int nvms;
};

/* The settable keys, in table order, for --help, the docs and the tests. */
struct config_key_info {
	const char *name;
	const char *def;	/* default, as written in the config file */
	const char *doc;
};
const struct config_key_info *config_keys(size_t *count);

/* Fills every setting with its default. */
void config_defaults(struct gmigd_config *c);

/*
 * Sets one key from its text form; "guest.NAME" keys name a guest and its address. 0, or
 * -EINVAL/-ENOENT with a message in @err.
 */
int config_set(struct gmigd_config *c, const char *key, const char *value, char *err,
	       size_t errlen);

/*
 * Parses config text, "key = value" lines with '#' comments, into @c. @name labels errors
 * ("gmigd.conf:3: unknown key 'x'"). A key given twice is an error. 0, or -EINVAL.
 */
int config_parse(struct gmigd_config *c, const char *text, size_t len, const char *name,
		 char *err, size_t errlen);

/*
 * Reads and parses the file at @path. A missing file is fine when !@must_exist (the default
 * path); otherwise -ENOENT. Other errors as config_parse, or the negative errno of the read.
 */
int config_load(struct gmigd_config *c, const char *path, bool must_exist, char *err,
		size_t errlen);

/* Checks that the settings fit together. 0, or -EINVAL with a message. */
int config_check(const struct gmigd_config *c, char *err, size_t errlen);

/* The address of the guest named @name, or NULL. */
const char *config_guest(const struct gmigd_config *c, const char *name);

/* The QEMU settings of the guest named @name, or NULL when it has no vm.NAME.qmp. */
const struct config_vm *config_vm(const struct gmigd_config *c, const char *name);

/* A guest name is 1 to 32 bytes of letters, digits, '.', '_' and '-'. */
bool guest_name_ok(const char *name);

#endif
