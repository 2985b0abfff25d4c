/* The guest's GPUs: simulated devices, then PCI display devices from sysfs and libdrm (drmGetDevices2). */
#ifndef GMIG_AGENT_INVENTORY_H
#define GMIG_AGENT_INVENTORY_H

#include "gmig/message.h"

#include "config.h"

/*
 * Fills at most @max records, indexed from 0: simulated GPUs of cfg->sim_dir first (in the
 * order libgmig numbers them), then PCI display controllers, each once whether sysfs or libdrm
 * found it. Returns the count; never fails (a source that cannot be read adds nothing).
 */
unsigned int inventory_gpus(const struct agent_config *cfg, struct gmig_rec_gpu *out,
			    unsigned int max);

#endif
