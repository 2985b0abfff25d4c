/* libgmig's settings, read once from the environment. */
#ifndef GMIG_UMD_CONFIG_H
#define GMIG_UMD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#define GMIG_AGENT_SOCKET_DEFAULT	"/run/gmig/agent.sock"
#define GMIG_SIM_DIR_DEFAULT		"/dev/shm"
#define GMIG_CONFIG_PATH_MAX		256

struct gmig_config {
	char sim_device[GMIG_CONFIG_PATH_MAX];	/* GMIG_SIM_DEVICE; empty: first in sim_dir */
	/*
	 * GMIG_SIM_DIR, where attach looks for devices by UUID; unset, the
	 * directory of GMIG_SIM_DEVICE, so a program pointed at one device
	 * finds the others beside it; else /dev/shm.
	 */
	char sim_dir[GMIG_CONFIG_PATH_MAX];
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];	/* GMIG_AGENT_SOCKET */
	uint32_t chunk;				/* GMIG_CHUNK, given in KiB, kept in bytes */
	bool disable;				/* GMIG_DISABLE=1: no link to the agent */
	bool debug;				/* GMIG_LOG=debug */
};

/*
 * Fills cfg from the environment. A setting that is malformed (a chunk that is
 * not a power of two in range, a path too long) falls back to its default, so
 * a typo never stops a program; the reason is returned as a sentence in *why
 * (NULL when every setting was taken).
 */
void gmig_config_from_env(struct gmig_config *cfg, const char **why);

#endif
