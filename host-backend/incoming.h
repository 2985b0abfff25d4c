/*
 * The destination side: a peer gmigd connects, proves the shared secret, streams a guest's
 * image into memory under image_cap, and hands the guest over; this gmigd then resumes the
 * guest's session with the token, attaches it to the mapped GPUs, restores the image, thaws
 * it and answers MIGRATED. One table of {state, event, action, next} and one driver.
 *
 *   HELLO -> AUTH -> IMAGE -> STREAM -> PLUG -> CONNECT -> INVENTORY -> ATTACH -> RESTORE -> THAW
 *   -> DONE; PLUG waits for a guest under QEMU (vm.NAME.qmp) to run here and hot-plugs its GPU
 *   (vm.NAME.gpu_file), and passes straight on for other guests.
 *   before HANDOVER any failure discards the image; after it, a failure before the thaw hands
 *   the guest back (MIGRATED with the error) so that the source can roll back.
 */
#ifndef GMIG_HOST_INCOMING_H
#define GMIG_HOST_INCOMING_H

#include <stdbool.h>

struct gmigd;

#define INCOMING_MAX	8	/* peer connections at once, authenticated or not */

enum in_state {
	IS_HELLO,	/* waiting for HELLO (role PEER) */
	IS_AUTH,	/* CHALLENGE sent, waiting for AUTH */
	IS_IMAGE,	/* authenticated, waiting for IMAGE_BEGIN */
	IS_STREAM,	/* taking the inventory, rounds and frozen state */
	IS_PLUG,	/* HANDOVER taken: a VM's GPU is hot-plugged once the VM runs here */
	IS_CONNECT,	/* HANDOVER taken: resuming the guest's session */
	IS_INVENTORY,	/* the target GPUs' UUIDs, when the source did not know them */
	IS_ATTACH,
	IS_RESTORE,
	IS_THAW,
	IS_DONE,	/* terminal: the guest runs here */
	IS_FAILED,	/* terminal */
	IS_COUNT
};

enum in_event {
	IE_HELLO,
	IE_AUTH,	/* AUTH with the right MAC */
	IE_BAD_AUTH,	/* AUTH with a wrong one */
	IE_IMAGE,	/* IMAGE_BEGIN */
	IE_DATA,	/* INV_*, ROUND_*, REGION_DATA, FROZEN */
	IE_PING,
	IE_HANDOVER,
	IE_ABORT,
	IE_JUNK,	/* anything else, or anything before the proof */
	IE_PEER_LOST,
	IE_OK,		/* the guest step in flight succeeded */
	IE_FAIL,	/* it failed, or what came in cannot be used */
	IE_GUEST_LOST,
	IE_TIMEOUT,	/* the source fell silent */
	IE_COUNT
};

enum in_action {
	IA_NONE,
	IA_CHALLENGE,
	IA_WELCOME,
	IA_REFUSE,	/* ERROR to the source, then close */
	IA_BEGIN,	/* check the announcement and make room for the image */
	IA_APPLY,
	IA_PONG,
	IA_TAKE_OVER,	/* check the image; a VM's GPU goes in */
	IA_CONNECT,	/* resume the guest's session */
	IA_PREPARE,	/* the map's UUIDs, from the guest's inventory if needed */
	IA_ATTACH,
	IA_RESTORE,
	IA_THAW,
	IA_DONE,
	IA_DISCARD,	/* before the hand-over: drop the image */
	IA_GIVE_BACK,	/* after it: MIGRATED with the error, and let go of the guest */
	IA_COUNT
};

extern const char *const in_state_names[];
extern const char *const in_event_names[];
extern const char *const in_action_names[];

#define IN_ANY	IS_COUNT	/* as a row's state: every state */

struct in_row {
	enum in_state state;
	enum in_event event;
	enum in_action action;
	enum in_state next;
};

const struct in_row *in_row(enum in_state state, enum in_event event);
const struct in_row *in_table(unsigned int *count);

/* Takes an accepted peer connection (closed on failure). */
void incoming_accept(struct gmigd *d, int fd, const char *peer);
/* Closes every incoming connection and frees it (daemon exit). */
void incoming_free_all(struct gmigd *d);

#endif
