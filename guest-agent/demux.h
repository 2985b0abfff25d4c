/*
 * The host channel's demultiplexer: at every message boundary the next byte says whether a
 * gmig frame ('G') or a QGA-style JSON line (anything else) follows. Whitespace and NUL bytes
 * between messages are skipped; 0xFF there is qemu-ga's parser reset and is taken alone.
 */
#ifndef GMIG_AGENT_DEMUX_H
#define GMIG_AGENT_DEMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmig/frame.h"
#include "gmig/qga.h"

#define DEMUX_BLOCK	1	/* a callback's "stop here" */

struct demux_ops {
	/*
	 * A whole, valid frame. Return 0 to go on, or DEMUX_BLOCK to stop: the frame is then
	 * held and handed out again by the next demux_feed().
	 */
	int (*frame)(void *ctx, const struct gmig_frame *f);
	/* One JSON line, NUL-terminated. Return 0 to go on, or DEMUX_BLOCK to stop after it. */
	int (*line)(void *ctx, const char *line, size_t len);
	/* A line longer than GMIG_QGA_LINE_MAX; its bytes are dropped up to the newline. */
	void (*oversize)(void *ctx);
	/* The frame stream broke; the demux takes nothing more. @err is the decoder's error. */
	void (*error)(void *ctx, int err);
};

enum demux_mode {
	DM_BOUNDARY,	/* between messages */
	DM_FRAME,	/* inside a frame */
	DM_LINE,	/* inside a JSON line */
	DM_DEAD,	/* after a frame error */
};

extern const char *const demux_mode_names[DM_DEAD + 1];

struct demux {
	enum demux_mode mode;
	const struct demux_ops *ops;
	void *ctx;
	uint32_t frame_cap;		/* largest frame payload accepted */
	uint8_t *frame_buf;		/* allocated at the first frame */
	struct gmig_decoder dec;
	uint8_t min_version, max_version;
	char *line_buf;			/* allocated at the first line */
	struct gmig_qga_lines lines;
	bool held;			/* held_frame waits to be handed out again */
	struct gmig_frame held_frame;	/* points into frame_buf */
	int error;			/* the frame error that killed the stream */
};

void demux_init(struct demux *d, uint32_t frame_cap, const struct demux_ops *ops, void *ctx);
/* Frees the buffers; the demux can be initialised again. */
void demux_clear(struct demux *d);
/* Frames of versions [min, max] only, from now on (the agreed version after WELCOME). */
void demux_set_versions(struct demux *d, uint8_t min, uint8_t max);

/*
 * Takes bytes until they are all used, a callback blocks or the stream breaks. A held frame
 * is handed out first (call with len 0 to retry it alone). Returns the bytes taken, or
 * -ENOMEM; after a frame error it takes nothing and returns 0.
 */
long demux_feed(struct demux *d, const void *data, size_t len);

/* A frame is held, waiting for demux_feed() to hand it out again. */
bool demux_held(const struct demux *d);
/* Ends the stream from a callback (the connection is closing); it takes nothing more. */
void demux_stop(struct demux *d);

#endif
