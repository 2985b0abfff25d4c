/*
 * gmig.ko from the agent's side: its registration as the AGENT, pinned staging buffers, the
 * kernel's word that a client died, and the freeze barrier. Everything is optional: without the
 * module (or with GMIG_DEVICE=none) each call reports -ENODEV and the agent works as before.
 *
 * The module admits one agent per system, so the registration is the process's, not a
 * struct agent's.
 */
#ifndef GMIG_AGENT_KMOD_H
#define GMIG_AGENT_KMOD_H

#include <stdint.h>

struct agent;
struct staging_phys;

#define KMOD_DEVICE_ENV	"GMIG_DEVICE"	/* the device's path, or "none": do not use the module */

/* Opens the device, registers and watches it on @a's loop; 0 or -errno (logged). */
int kmod_start(struct agent *a);
/* Closes the registration; safe when kmod_start failed or never ran. */
void kmod_stop(void);
/* Whether the agent is registered with the module. */
int kmod_active(void);

/* A new pinned staging buffer of @bytes: its fd, or -errno (-ENODEV without the module). */
int kmod_staging_create(uint64_t bytes);
/* The buffer's guest-physical ranges, malloc'd into *out with their count in *n. 0 or -errno. */
int kmod_staging_phys(int fd, struct staging_phys **out, uint32_t *n);

/* Closes the kernel's barrier for a freeze with @deadline_ms; opens it. No-ops without it. */
void kmod_freeze(uint32_t deadline_ms);
void kmod_thaw(void);

#endif
