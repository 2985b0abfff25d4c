/* The host channel's demultiplexer: frames and JSON lines told apart at each message boundary. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "demux.h"
#include "fault.h"

const char *const demux_mode_names[] = {
	[DM_BOUNDARY] = "boundary",
	[DM_FRAME] = "frame",
	[DM_LINE] = "line",
	[DM_DEAD] = "dead",
};

void demux_init(struct demux *d, uint32_t frame_cap, const struct demux_ops *ops, void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->ctx = ctx;
	d->frame_cap = frame_cap;
	d->min_version = GMIG_VERSION_MIN;
	d->max_version = GMIG_VERSION_MAX;
}

void demux_clear(struct demux *d)
{
	free(d->frame_buf);
	free(d->line_buf);
	d->frame_buf = NULL;
	d->line_buf = NULL;
	d->held = false;
}

void demux_set_versions(struct demux *d, uint8_t min, uint8_t max)
{
	d->min_version = min;
	d->max_version = max;
	if (d->frame_buf)
		gmig_decoder_set_versions(&d->dec, min, max);
}

bool demux_held(const struct demux *d)
{
	return d->held;
}

void demux_stop(struct demux *d)
{
	d->mode = DM_DEAD;
	d->held = false;
}

static int frame_start(struct demux *d)
{
	if (!d->frame_buf) {
		d->frame_buf = fault_malloc(d->frame_cap);
		if (!d->frame_buf)
			return -ENOMEM;
		gmig_decoder_init(&d->dec, d->frame_buf, d->frame_cap);
		gmig_decoder_set_versions(&d->dec, d->min_version, d->max_version);
	}
	d->mode = DM_FRAME;
	return 0;
}

static int line_start(struct demux *d)
{
	if (!d->line_buf) {
		d->line_buf = fault_malloc(GMIG_QGA_LINE_BUF);
		if (!d->line_buf)
			return -ENOMEM;
		gmig_qga_lines_init(&d->lines, d->line_buf, GMIG_QGA_LINE_BUF);
	}
	d->mode = DM_LINE;
	return 0;
}

static bool boundary_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}

/* Bytes of a line up to and including its end: a newline, or the sentinel that resets it. */
static size_t line_piece(const uint8_t *p, size_t len, bool *ended)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == GMIG_QGA_SENTINEL) {
			*ended = true;
			return i + 1;
		}
	}
	*ended = false;
	return len;
}

/* Feeds one piece of a line (see line_piece); returns DEMUX_BLOCK when the callback blocked. */
static int line_feed(struct demux *d, const uint8_t *p, size_t n, bool ended)
{
	size_t off = 0;

	/*
	 * The assembler never sees a byte past the line's end, so a frame right after a
	 * dropped or blank line is not taken for the start of the next line.
	 */
	while (off < n) {
		const char *line;
		size_t used, line_len;
		int rc = gmig_qga_lines_feed(&d->lines, p + off, n - off, &used, &line, &line_len);

		off += used;
		if (rc == -EMSGSIZE) {
			d->ops->oversize(d->ctx);
			continue;
		}
		if (rc == 1) {
			d->mode = DM_BOUNDARY;
			return d->ops->line(d->ctx, line, line_len) == DEMUX_BLOCK ? DEMUX_BLOCK : 0;
		}
	}
	if (ended)
		d->mode = DM_BOUNDARY;
	return 0;
}

long demux_feed(struct demux *d, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t off = 0;
	int rc;

	if (d->mode == DM_DEAD)
		return 0;
	if (d->held) {
		if (d->ops->frame(d->ctx, &d->held_frame) == DEMUX_BLOCK)
			return 0;
		d->held = false;
	}

	while (off < len) {
		switch (d->mode) {
		case DM_BOUNDARY:
			if (p[off] == 'G') {
				rc = frame_start(d);
			} else if (boundary_space(p[off])) {
				/*
				 * Whitespace means nothing to a JSON line and NUL cannot start
				 * one (a C string's terminator sent along): both are skipped,
				 * so a frame that follows them is still found.
				 */
				off++;
				rc = 0;
			} else if (p[off] == GMIG_QGA_SENTINEL) {
				/* qemu-ga's parser reset, between messages: nothing to drop. */
				if (d->line_buf)
					gmig_qga_lines_reset(&d->lines);
				off++;
				rc = 0;
			} else {
				rc = line_start(d);
			}
			if (rc)
				return rc;
			break;
		case DM_FRAME: {
			struct gmig_frame f;
			size_t used;

			rc = gmig_decoder_feed(&d->dec, p + off, len - off, &used, &f);
			off += used;
			if (rc < 0) {
				d->mode = DM_DEAD;
				d->error = rc;
				d->ops->error(d->ctx, rc);
				return (long)off;
			}
			if (rc == 1) {
				d->mode = DM_BOUNDARY;
				if (d->ops->frame(d->ctx, &f) == DEMUX_BLOCK) {
					d->held = true;
					d->held_frame = f;
					return (long)off;
				}
				/* A callback may have killed the stream (the connection is closing). */
				if (d->mode == DM_DEAD)
					return (long)off;
			}
			break;
		}
		case DM_LINE: {
			bool ended;
			size_t n = line_piece(p + off, len - off, &ended);

			rc = line_feed(d, p + off, n, ended);
			off += n;
			if (rc == DEMUX_BLOCK || d->mode == DM_DEAD)
				return (long)off;
			break;
		}
		case DM_DEAD:
			return (long)off;
		}
	}
	return (long)off;
}
