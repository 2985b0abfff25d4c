/*
 * The data path: bytes clients staged become REGION_DATA to the host, RESTORE_DATA from the
 * host becomes bytes in a client's slots. Slots go back only as room allows, so memory stays
 * bounded by the slots and the host buffer whatever the speed of either side.
 */
#ifndef GMIG_AGENT_PUMP_H
#define GMIG_AGENT_PUMP_H

#include <stdint.h>

#include "gmig/message.h"

struct agent;
struct client;

/* A STAGED from client @c; bytes of a round nobody waits for any more are handed back at once. */
void pump_staged(struct agent *a, struct client *c, const struct gmig_staged *s);
/* Client @c ended round step @op; it is answered after its bytes are out. */
void pump_round_end(struct agent *a, struct client *c, uint32_t op, const struct gmig_round_end *e);
/* A SLOT_FREE from client @c. */
void pump_slot_free(struct agent *a, struct client *c, uint32_t slot);

/* A REF_DONE from the host: the slot it read is the client's again. */
void pump_ref_done(struct agent *a, const struct gmig_ref_done *d);
/* The host connection went away: slots lent to it go back to their clients. */
void pump_refs_back(struct agent *a);

/* Moves queued bytes towards the host while its buffer has room. */
void pump_run(struct agent *a);

/* Hands back every slot client @c has queued, forgetting the bytes (@c may be dead). */
void pump_flush_client(struct agent *a, struct client *c);
void pump_flush_all(struct agent *a);

/*
 * A RESTORE_DATA frame from the host (sequence @seq): its bytes go into the slots of the
 * client it names. Returns 0 when done with it, or DEMUX_BLOCK to be called again with the
 * same frame once a slot is free.
 */
int pump_restore_data(struct agent *a, const struct gmig_region_data *rd, uint64_t seq);
/*
 * A RESTORE_REF from the host: bytes it wrote into a slot of the client that the agent lent
 * it; checked (slot lent, length, manifest) and handed to the client as STAGED. 0 or -errno
 * (ERROR sent, the restore fails).
 */
int pump_restore_ref(struct agent *a, const struct gmig_restore_ref *rr, uint64_t seq);
/*
 * During a restore, lends client @c's free agent-to-client slots to a host that can write
 * them (PHYS or SHM), all but one, after STAGING_PHYS; again whenever the client frees one.
 */
void pump_lend(struct agent *a, struct client *c);
void pump_lend_all(struct agent *a);
/* Forgets the restore (a new one begins, or the step ended). */
void restore_reset(struct agent *a);
/* Sets up a restore from the host's RESTORE_BEGIN; 0 or -errno with a text for ERROR. */
int restore_begin(struct agent *a, const struct gmig_restore_begin *rb, char *why, size_t whylen);

#endif
