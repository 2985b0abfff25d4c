/* libgmig's settings, read once from the environment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gmig/limits.h"

/* Copies an environment value into dst if it fits; false (dst unchanged) if it does not. */
static bool take_path(char *dst, size_t cap, const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return true;
	if (strlen(v) >= cap)
		return false;
	memcpy(dst, v, strlen(v) + 1);
	return true;
}

static bool parse_chunk(const char *v, uint32_t *chunk)
{
	unsigned long kib;
	char *end;

	errno = 0;
	kib = strtoul(v, &end, 10);
	if (errno || end == v || *end || kib > GMIG_CHUNK_MAX / 1024)
		return false;
	kib *= 1024;
	if (kib < GMIG_CHUNK_MIN || (kib & (kib - 1)))
		return false;
	*chunk = (uint32_t)kib;
	return true;
}

void gmig_config_from_env(struct gmig_config *cfg, const char **why)
{
	const char *v, *slash;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->sim_dir, sizeof(cfg->sim_dir), "%s", GMIG_SIM_DIR_DEFAULT);
	snprintf(cfg->socket, sizeof(cfg->socket), "%s", GMIG_AGENT_SOCKET_DEFAULT);
	cfg->chunk = GMIG_CHUNK_DEFAULT;
	*why = NULL;

	if (!take_path(cfg->sim_device, sizeof(cfg->sim_device), "GMIG_SIM_DEVICE"))
		*why = "GMIG_SIM_DEVICE is too long; ignored";
	slash = strrchr(cfg->sim_device, '/');
	if (slash)
		snprintf(cfg->sim_dir, sizeof(cfg->sim_dir), "%.*s",
			 slash == cfg->sim_device ? 1 : (int)(slash - cfg->sim_device), cfg->sim_device);
	if (!take_path(cfg->sim_dir, sizeof(cfg->sim_dir), "GMIG_SIM_DIR"))
		*why = "GMIG_SIM_DIR is too long; ignored";
	if (!take_path(cfg->socket, sizeof(cfg->socket), "GMIG_AGENT_SOCKET"))
		*why = "GMIG_AGENT_SOCKET is too long for a unix socket; ignored";
	v = getenv("GMIG_CHUNK");
	if (v && *v && !parse_chunk(v, &cfg->chunk))
		*why = "GMIG_CHUNK is not a power of two from 4 to 4096 (KiB); using 64";
	v = getenv("GMIG_DISABLE");
	cfg->disable = v && !strcmp(v, "1");
	v = getenv("GMIG_LOG");
	cfg->debug = v && !strcmp(v, "debug");
}
