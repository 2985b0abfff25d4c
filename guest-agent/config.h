/* gmig-agent's settings: one table of keys with their defaults, the config file parser and the checks. */
#ifndef GMIG_AGENT_CONFIG_H
#define GMIG_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH	"/etc/gmig/agent.conf"
#define CONFIG_PATH_MAX		256		/* bytes of a path setting, NUL included */
#define CONFIG_FILE_MAX		(64u << 10)	/* a config file longer than this is refused */
#define CONFIG_ERR_MAX		320		/* room for one error message */

struct agent_config {
	uint32_t vsock_port;			/* host channel on AF_VSOCK; 0: off */
	char serial[CONFIG_PATH_MAX];		/* virtio-serial port; "": off */
	char unix_path[CONFIG_PATH_MAX];	/* host channel on a unix socket; "": off */
	uint32_t unix_mode;			/* permissions of that socket */
	char client_socket[CONFIG_PATH_MAX];	/* where GPU programs connect */
	uint32_t client_socket_mode;
	char sim_dir[CONFIG_PATH_MAX];		/* simulated GPUs for the inventory */
	char sysfs_dir[CONFIG_PATH_MAX];	/* root of sysfs for the PCI inventory */
	uint32_t slots;				/* staging slots per direction per client */
	uint32_t slot_size;			/* bytes per staging slot */
	uint32_t host_buffer;			/* output bytes queued to the host before pausing */
	uint32_t max_clients;
	uint32_t max_host_conns;
	uint32_t resume_timeout_ms;		/* frozen without a host this long: thaw */
	uint32_t request_timeout_ms;		/* a client's answer, or a round's progress */
	uint32_t freeze_grace_ms;		/* added to a freeze deadline for the answers */
	uint32_t hello_timeout_ms;		/* a new client must say HELLO within this */
	int log_level;				/* enum log_level */
};

/* The settable keys, in table order, for --help and the docs. */
struct config_key_info {
	const char *name;
	const char *def;	/* default, as written in the config file */
	const char *doc;
};
const struct config_key_info *config_keys(size_t *count);

/* Fills every setting with its default. */
void config_defaults(struct agent_config *c);

/* Sets one key from its text form. 0, or -EINVAL/-ENOENT with a message in @err. */
int config_set(struct agent_config *c, const char *key, const char *value, char *err, size_t errlen);

/*
 * Parses config text, "key = value" lines with '#' comments, into @c. @name labels errors
 * ("agent.conf:3: unknown key 'x'"). A key given twice is an error. 0, or -EINVAL.
 */
int config_parse(struct agent_config *c, const char *text, size_t len, const char *name,
		 char *err, size_t errlen);

/*
 * Reads and parses the file at @path. A missing file is fine when !@must_exist (the default
 * path); otherwise -ENOENT. Other errors as config_parse, or the negative errno of the read.
 */
int config_load(struct agent_config *c, const char *path, int must_exist, char *err, size_t errlen);

/* Checks that the settings fit together. 0, or -EINVAL with a message. */
int config_check(const struct agent_config *c, char *err, size_t errlen);

#endif
