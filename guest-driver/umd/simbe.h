/* The sim backend: simulated device files (simdev.h) for memory, the engine's streams for work. */
#ifndef GMIG_UMD_SIMBE_H
#define GMIG_UMD_SIMBE_H

#include "backend.h"
#include "config.h"
#include "engine.h"

struct gmig_simbe {
	struct gmig_be be;		/* be.priv points back here */
	struct gmig_engine *engine;
	char dir[GMIG_CONFIG_PATH_MAX];		/* where devices are found by UUID */
	char device[GMIG_CONFIG_PATH_MAX];	/* the default device; empty: the first in dir */
	uint32_t pid;				/* owner of the granules taken */
};

/* Sets sb up as a backend; the engine must outlive it. */
void gmig_simbe_init(struct gmig_simbe *sb, struct gmig_engine *engine, const char *dir,
		     const char *device);

/* The file of an attached sim device, for gsim_device_info. */
void gmig_simbe_path(const struct gmig_bdev *dev, char *out, size_t cap);

#endif
