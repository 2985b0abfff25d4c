/* The data path between clients' staging slots and the host channel, with its flow control. */
#include <errno.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "client.h"
#include "demux.h"
#include "fault.h"
#include "frameio.h"
#include "host.h"
#include "log.h"
#include "op.h"
#include "pump.h"

/* The round step the bytes of FIFO-attributed step @id may go to, or NULL. */
static struct op *round_live(struct agent *a, uint32_t id)
{
	struct op *op = a->op;

	if (!op || op->id != id || op->kind != OP_ROUND || op->finished || !a->host ||
	    op->who.host_gen != a->session.gen)
		return NULL;
	return op;
}

static void slot_back(struct client *c, uint32_t slot)
{
	struct gmig_msg m = { .type = GMIG_MSG_SLOT_FREE };

	staging_in_release(&c->st, slot);
	if (c->state == CS_READY) {
		m.u.slot.slot = slot;
		client_send(c, &m);
	}
}

static void queue_pop(struct client *c)
{
	c->q_head = (c->q_head + 1) % c->q_cap;
	c->q_len--;
	if (c->paused && c->q_len < c->q_cap)
		client_unpause(c);
}

static int queue_push(struct client *c, const struct stage_ent *e)
{
	if (c->q_len == c->q_cap)
		return -ENOSPC;
	c->q[(c->q_head + c->q_len) % c->q_cap] = *e;
	c->q_len++;
	/* Full: take no more frames from it until the host makes room. */
	if (c->q_len == c->q_cap)
		client_pause(c);
	return 0;
}

void pump_staged(struct agent *a, struct client *c, const struct gmig_staged *s)
{
	struct stage_ent e = { .staged = *s };
	bool raw = s->encoding == GMIG_ENC_RAW;
	int rc;

	if (raw) {
		if (s->length > c->st.slot_size) {
			client_violation(c, "STAGED longer than a slot");
			return;
		}
		rc = staging_in_take(&c->st, s->slot);
		if (rc) {
			client_violation(c, rc == -EBUSY ? "STAGED in a slot not handed back" :
					 "STAGED in a slot that is not its own");
			return;
		}
	}
	if (!c->fifo_len || c->fifo[c->fifo_head].type != GMIG_MSG_ROUND_BEGIN) {
		client_violation(c, "STAGED outside a round");
		return;
	}
	e.op = c->fifo[c->fifo_head].op;
	/* The client moves, even through a round nobody waits for: a later round waits on it. */
	op_progress(a);
	if (!round_live(a, e.op)) {
		/* A round whose host went away: its bytes are drained and forgotten. */
		if (raw)
			slot_back(c, s->slot);
		return;
	}
	if (queue_push(c, &e)) {
		client_violation(c, "its queue overflowed");
		return;
	}
	pump_run(a);
}

void pump_round_end(struct agent *a, struct client *c, uint32_t op, const struct gmig_round_end *e)
{
	struct stage_ent ent = { .end = true, .op = op, .round_end = *e };

	if (queue_push(c, &ent)) {
		client_violation(c, "its queue overflowed");
		return;
	}
	pump_run(a);
}

void pump_slot_free(struct agent *a, struct client *c, uint32_t slot)
{
	if (staging_out_put(&c->st, slot)) {
		client_violation(c, "SLOT_FREE for a slot it was not given");
		return;
	}
	/* A RESTORE_DATA waiting for this very slot gets it; else the host may fill it. */
	if (a->restore.blocked_pid == (uint32_t)c->pid)
		host_unblock(a);
	else
		pump_lend(a, c);
}

/*
 * Zero-copy: the host reaches the client's staging itself and the agent only names slots.
 * PHYS: pinned staging (gmig.ko) the host reads in guest RAM. SHM: a host on the same machine
 * (unix channel) maps the staging fd, sent along with STAGING_PHYS. Either way the agent
 * tells once per connection where the staging lies.
 */
static bool use_refs(struct agent *a, const struct client *c)
{
	if ((a->session.caps & GMIG_CAP_PHYS) && c->st.phys && c->st.nphys &&
	    c->st.nphys <= GMIG_PHYS_MAX)
		return true;
	return c->st.fd >= 0 && host_passes_fds(a);
}

static int send_phys(struct agent *a, struct client *c)
{
	struct gmig_msg m = { .type = GMIG_MSG_STAGING_PHYS };
	bool phys = (a->session.caps & GMIG_CAP_PHYS) && c->st.phys && c->st.nphys;
	uint32_t n = phys ? c->st.nphys : 1;
	uint8_t *buf = malloc((size_t)n * GMIG_REC_phys_SIZE);
	int rc;

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		/* Through an fd its pieces are the fd's own bytes, [0, size). */
		struct gmig_rec_phys r = { 0, c->st.size };

		if (phys)
			r = (struct gmig_rec_phys){ c->st.phys[i].gpa, c->st.phys[i].len };
		gmig_rec_put_phys(buf + (size_t)i * GMIG_REC_phys_SIZE, &r);
	}
	m.u.staging_phys.pid = (uint32_t)c->pid;
	m.u.staging_phys.slots = c->st.slots;
	m.u.staging_phys.slot_size = c->st.slot_size;
	m.u.staging_phys.tail = (struct gmig_tail){ buf, n * GMIG_REC_phys_SIZE };
	rc = phys ? host_send(a, &m) : host_send_fd(a, &m, c->st.fd);
	free(buf);
	if (!rc)
		c->phys_gen = a->session.gen;
	return rc;
}

/* The host knows where client @c's staging lies: 0, -EAGAIN (not now: copy instead), -errno. */
static int staging_told(struct agent *a, struct client *c)
{
	if (!use_refs(a, c))
		return -EOPNOTSUPP;
	return c->phys_gen == a->session.gen ? 0 : send_phys(a, c);
}

/* REGION_REF for a RAW entry; the slot stays lent until REF_DONE. */
static int send_ref(struct agent *a, struct client *c, const struct stage_ent *e)
{
	struct gmig_msg m = { .type = GMIG_MSG_REGION_REF };
	int rc;

	m.u.region_ref.pid = (uint32_t)c->pid;
	m.u.region_ref.region = e->staged.region;
	m.u.region_ref.offset = e->staged.offset;
	m.u.region_ref.length = e->staged.length;
	m.u.region_ref.epoch = e->staged.epoch;
	m.u.region_ref.slot = e->staged.slot;
	rc = host_send(a, &m);
	if (!rc) {
		c->ref_busy |= 1ull << e->staged.slot;
		a->bytes_sent += e->staged.length;
	}
	return rc;
}

void pump_ref_done(struct agent *a, const struct gmig_ref_done *d)
{
	struct client *c = client_by_pid(a, (pid_t)d->pid);

	if (!c || d->slot >= 64 || !(c->ref_busy & (1ull << d->slot))) {
		log_rl(LV_WARN, NULL, "REF_DONE for pid %u slot %u, which is not lent; ignored",
		       d->pid, d->slot);
		return;
	}
	c->ref_busy &= ~(1ull << d->slot);
	slot_back(c, d->slot);
}

/* Slots lent for the restore come back: the host will not write them any more. */
static void lent_back(struct client *c)
{
	for (uint32_t i = 0; c->lent && i < 64; i++) {
		if (c->lent & (1ull << i)) {
			c->lent &= ~(1ull << i);
			staging_out_put(&c->st, c->st.slots + i);
		}
	}
}

void pump_refs_back(struct agent *a)
{
	struct client *c;

	TAILQ_FOREACH(c, &a->clients, link) {
		for (uint32_t s = 0; c->ref_busy && s < 64; s++) {
			if (c->ref_busy & (1ull << s)) {
				c->ref_busy &= ~(1ull << s);
				slot_back(c, s);
			}
		}
		lent_back(c);
		c->phys_gen = 0;
	}
}

void pump_lend(struct agent *a, struct client *c)
{
	struct gmig_msg m = { .type = GMIG_MSG_SLOT_LEND };

	int rc;

	if (!a->restore.active || !c->in_restore || c->state != CS_READY)
		return;
	rc = staging_told(a, c);
	if (rc) {
		log_rl(LV_DEBUG, c->peer, "no slots lent to the host: %s", strerror(-rc));
		return;
	}
	/*
	 * One slot is never lent: RESTORE_DATA (a host that copies, or bytes sent before the
	 * lending arrived) must always find a slot once the client frees one.
	 */
	while ((uint32_t)__builtin_popcountll(c->lent) + 1 < c->st.slots) {
		int slot = staging_out_get(&c->st);

		if (slot < 0)
			return;
		m.u.slot_lend.pid = (uint32_t)c->pid;
		m.u.slot_lend.slot = (uint32_t)slot;
		if (host_send(a, &m)) {
			staging_out_put(&c->st, (uint32_t)slot);
			return;
		}
		c->lent |= 1ull << (slot - c->st.slots);
	}
}

void pump_lend_all(struct agent *a)
{
	struct client *c;

	TAILQ_FOREACH(c, &a->clients, link)
		pump_lend(a, c);
}

/* One queued entry of client @c goes out; false when the host has no room. */
static bool pump_one(struct agent *a, struct client *c)
{
	struct stage_ent *e = &c->q[c->q_head];
	struct gmig_msg m = { 0 };
	struct op *op = round_live(a, e->op);
	int rc;

	if (!op) {
		if (!e->end && e->staged.encoding == GMIG_ENC_RAW)
			slot_back(c, e->staged.slot);
		queue_pop(c);
		return true;
	}
	if (e->end) {
		/* Its bytes are all in the host's buffer: now its answer counts. */
		m.type = GMIG_MSG_ROUND_END;
		m.u.round_end = e->round_end;
		queue_pop(c);
		op_answer(a, c, &m);
		return true;
	}
	if (host_out_len(a) >= a->cfg.host_buffer)
		return false;
	/* Where the staging cannot be told now (an fd waits for an empty output), bytes travel. */
	if (e->staged.encoding == GMIG_ENC_RAW && !staging_told(a, c)) {
		rc = send_ref(a, c, e);
		if (rc) {
			log_rl(LV_WARN, c->peer, "a reference for the host lost: %s", strerror(-rc));
			op_fail(a, rc, "round: bytes of pid %d could not be named: %s", (int)c->pid,
				strerror(-rc));
			slot_back(c, e->staged.slot);
		}
		queue_pop(c);
		op_progress(a);
		return true;
	}
	m.type = GMIG_MSG_REGION_DATA;
	m.u.region_data.pid = (uint32_t)c->pid;
	m.u.region_data.region = e->staged.region;
	m.u.region_data.offset = e->staged.offset;
	m.u.region_data.length = e->staged.length;
	m.u.region_data.encoding = e->staged.encoding;
	m.u.region_data.epoch = e->staged.epoch;
	if (e->staged.encoding == GMIG_ENC_RAW)
		m.u.region_data.tail = (struct gmig_tail){
			staging_in_ptr(&c->st, e->staged.slot), e->staged.length };
	rc = host_send(a, &m);
	if (rc) {
		log_rl(LV_WARN, c->peer, "bytes for the host lost: %s", strerror(-rc));
		op_fail(a, rc, "round: bytes of pid %d could not be queued: %s", (int)c->pid,
			strerror(-rc));
	} else if (e->staged.encoding == GMIG_ENC_RAW) {
		a->bytes_sent += e->staged.length;
	}
	/* The bytes are copied into the host's buffer: the slot is the client's again. */
	if (e->staged.encoding == GMIG_ENC_RAW)
		slot_back(c, e->staged.slot);
	queue_pop(c);
	op_progress(a);
	return true;
}

void pump_run(struct agent *a)
{
	struct client *c, *next;
	bool moved = true;

	/* A staging not told for want of an empty output (SHM's fd) goes now, with its slots. */
	TAILQ_FOREACH(c, &a->clients, link)
		if (c->phys_gen != a->session.gen)
			pump_lend(a, c);
	/* Round robin, one entry per client per pass, so no client starves the others. */
	while (moved) {
		moved = false;
		for (c = TAILQ_FIRST(&a->clients); c; c = next) {
			next = TAILQ_NEXT(c, link);
			if (!client_usable(c) || !c->q_len)
				continue;
			if (!pump_one(a, c))
				return;
			moved = true;
		}
	}
}

void pump_flush_client(struct agent *a, struct client *c)
{
	(void)a;
	while (c->q_len) {
		struct stage_ent *e = &c->q[c->q_head];

		if (!e->end && e->staged.encoding == GMIG_ENC_RAW)
			slot_back(c, e->staged.slot);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	if (c->paused)
		client_unpause(c);
}

void pump_flush_all(struct agent *a)
{
	struct client *c;

	TAILQ_FOREACH(c, &a->clients, link) {
		if (c->state == CS_READY)
			pump_flush_client(a, c);
	}
}

/* --- restore --- */

void restore_reset(struct agent *a)
{
	struct client *c;

	free(a->restore.man);
	memset(&a->restore, 0, sizeof(a->restore));
	TAILQ_FOREACH(c, &a->clients, link) {
		lent_back(c);
		c->in_restore = false;
		c->rs_chunks = 0;
		c->rs_bytes = 0;
		c->rs_err = 0;
	}
}

static int man_cmp(const void *x, const void *y)
{
	const struct gmig_rec_manifest *p = x, *q = y;

	if (p->pid != q->pid)
		return p->pid < q->pid ? -1 : 1;
	if (p->region != q->region)
		return p->region < q->region ? -1 : 1;
	return 0;
}

/* Sends client @c its part of the manifest, records [from, to). */
static int restore_hand_out(struct agent *a, struct client *c, uint32_t from, uint32_t to)
{
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_BEGIN };
	uint32_t n = to - from;
	uint8_t *recs = fault_malloc((size_t)n * GMIG_REC_manifest_SIZE);
	uint64_t bytes = 0;
	int rc = 0;

	if (!recs)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct gmig_rec_manifest r = a->restore.man[from + i];

		/* The host names it by the agent's pid; the client knows itself by its own. */
		if (c->has_inv)
			r.pid = c->self_pid;
		gmig_rec_put_manifest(recs + (size_t)i * GMIG_REC_manifest_SIZE, &r);
		bytes = bytes > UINT64_MAX - r.size ? UINT64_MAX : bytes + r.size;
	}
	m.u.restore_begin.clients = 1;
	m.u.restore_begin.bytes = bytes;
	m.u.restore_begin.tail = (struct gmig_tail){ recs, n * GMIG_REC_manifest_SIZE };
	rc = client_send(c, &m);
	free(recs);
	if (!rc) {
		c->in_restore = true;
		log_info(c->peer, "restore: %u regions, %llu bytes", n, (unsigned long long)bytes);
	}
	return rc;
}

int restore_begin(struct agent *a, const struct gmig_restore_begin *rb, char *why, size_t whylen)
{
	struct restore_ctx *r = &a->restore;
	uint32_t n = gmig_rec_count(&rb->tail, GMIG_REC_manifest_SIZE), pids = 0, i, j;
	int rc;

	restore_reset(a);
	r->man = fault_calloc(n ? n : 1, sizeof(*r->man));
	if (!r->man) {
		snprintf(why, whylen, "out of memory for %u manifest records", n);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		gmig_rec_get_manifest(&rb->tail, i, &r->man[i]);
	qsort(r->man, n, sizeof(*r->man), man_cmp);
	r->nman = n;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && r->man[j].pid == r->man[i].pid; j++) {
			if (r->man[j].region == r->man[j - 1].region) {
				snprintf(why, whylen, "pid %u region %u is listed twice",
					 r->man[j].pid, r->man[j].region);
				rc = -EPROTO;
				goto out_reset;
			}
		}
		if (!client_by_pid(a, (pid_t)r->man[i].pid)) {
			snprintf(why, whylen, "no client with pid %u", r->man[i].pid);
			rc = -ESRCH;
			goto out_reset;
		}
		pids++;
	}
	if (pids != rb->clients) {
		snprintf(why, whylen, "the manifest names %u clients, the header %u", pids,
			 rb->clients);
		rc = -EPROTO;
		goto out_reset;
	}
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && r->man[j].pid == r->man[i].pid; j++)
			;
		rc = restore_hand_out(a, client_by_pid(a, (pid_t)r->man[i].pid), i, j);
		if (rc) {
			snprintf(why, whylen, "pid %u: %s", r->man[i].pid, strerror(-rc));
			goto out_reset;
		}
	}
	r->active = true;
	log_info(NULL, "restore begins: %u regions of %u clients", n, pids);
	pump_lend_all(a);
	return 0;

out_reset:
	restore_reset(a);
	return rc;
}

/* A frame of the restore is refused: ERROR to the host, and the restore will fail. */
static void restore_bad(struct agent *a, uint16_t type, uint64_t seq, int code,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void restore_bad(struct agent *a, uint16_t type, uint64_t seq, int code,
			const char *fmt, ...)
{
	struct restore_ctx *r = &a->restore;
	char text[160];
	struct gmig_msg m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_rl(LV_WARN, a->host ? a->host->peer : NULL, "restore data refused: %s", text);
	if (r->active && !r->err) {
		r->err = code;
		snprintf(r->err_text, sizeof(r->err_text), "%s", text);
	}
	msg_error(&m, code, type, seq, text);
	host_send(a, &m);
}

/* Checks that bytes of a @type frame lie inside a region of the manifest; 0 or -errno. */
static int restore_place(struct agent *a, uint16_t type, uint64_t seq, uint32_t pid,
			 uint32_t region, uint64_t offset, uint32_t length)
{
	struct restore_ctx *r = &a->restore;
	struct gmig_rec_manifest key = { .pid = pid, .region = region }, *rec;

	if (!r->active) {
		restore_bad(a, type, seq, -EPROTO, "%s outside a restore", gmig_msg_name(type));
		return -EPROTO;
	}
	rec = bsearch(&key, r->man, r->nman, sizeof(*r->man), man_cmp);
	if (!rec) {
		restore_bad(a, type, seq, -ENOENT, "pid %u region %u is not in the manifest", pid,
			    region);
		return -ENOENT;
	}
	if (offset > rec->size || length > rec->size - offset) {
		restore_bad(a, type, seq, -ERANGE, "pid %u region %u: bytes [%llu, +%u) past its %llu",
			    pid, region, (unsigned long long)offset, length,
			    (unsigned long long)rec->size);
		return -ERANGE;
	}
	return 0;
}

/* Checks a new RESTORE_DATA frame; 0 when its bytes may go to the client. */
static int restore_check(struct agent *a, const struct gmig_region_data *rd, uint64_t seq)
{
	struct restore_ctx *r = &a->restore;
	int n, rc;

	rc = restore_place(a, GMIG_MSG_RESTORE_DATA, seq, rd->pid, rd->region, rd->offset,
			   rd->length);
	if (rc)
		return rc;
	if (rd->encoding == GMIG_ENC_LZ4) {
		if (!(a->session.caps & GMIG_CAP_LZ4)) {
			restore_bad(a, GMIG_MSG_RESTORE_DATA, seq, -EPROTO, "LZ4 data without the LZ4 capability");
			return -EPROTO;
		}
		n = LZ4_decompress_safe((const char *)rd->tail.ptr, (char *)a->scratch,
					(int)rd->tail.len, GMIG_DATA_MAX);
		if (n < 0 || (uint32_t)n != rd->length) {
			restore_bad(a, GMIG_MSG_RESTORE_DATA, seq, -EBADMSG, "pid %u region %u: LZ4 block does not decode "
				    "to %u bytes", rd->pid, rd->region, rd->length);
			return -EBADMSG;
		}
	}
	r->chunks++;
	r->bytes += rd->length;
	return 0;
}

int pump_restore_data(struct agent *a, const struct gmig_region_data *rd, uint64_t seq)
{
	struct restore_ctx *r = &a->restore;
	struct gmig_msg m = { .type = GMIG_MSG_STAGED };
	const uint8_t *src;
	struct client *c;

	if (r->busy && r->busy_seq != seq)
		r->busy = false;
	if (!r->busy) {
		if (restore_check(a, rd, seq))
			return 0;
		r->busy = true;
		r->busy_seq = seq;
		r->done = 0;
	}
	c = client_by_pid(a, (pid_t)rd->pid);
	if (!c) {
		/* It died: its bytes have nowhere to go, and nobody needs them. */
		log_rl(LV_INFO, NULL, "restore data for pid %u dropped: no such client", rd->pid);
		r->busy = false;
		r->blocked_pid = 0;
		return 0;
	}
	m.u.staged.region = rd->region;
	m.u.staged.epoch = rd->epoch;
	if (rd->encoding == GMIG_ENC_ZERO) {
		m.u.staged.offset = rd->offset;
		m.u.staged.length = rd->length;
		m.u.staged.encoding = GMIG_ENC_ZERO;
		client_send(c, &m);
		r->done = rd->length;
	}
	src = rd->encoding == GMIG_ENC_LZ4 ? a->scratch : rd->tail.ptr;
	while (r->done < rd->length) {
		int slot = staging_out_get(&c->st);
		uint32_t n = rd->length - r->done;

		if (slot < 0) {
			/* Every slot is with the client: read no more from the host until one frees. */
			r->blocked_pid = (uint32_t)c->pid;
			return DEMUX_BLOCK;
		}
		if (n > c->st.slot_size)
			n = c->st.slot_size;
		memcpy(staging_out_ptr(&c->st, (uint32_t)slot), src + r->done, n);
		m.u.staged.offset = rd->offset + r->done;
		m.u.staged.length = n;
		m.u.staged.encoding = GMIG_ENC_RAW;
		m.u.staged.slot = (uint32_t)slot;
		client_send(c, &m);
		r->done += n;
	}
	c->rs_chunks++;
	c->rs_bytes += rd->length;
	a->bytes_restored += rd->length;
	r->busy = false;
	r->blocked_pid = 0;
	return 0;
}

int pump_restore_ref(struct agent *a, const struct gmig_restore_ref *rr, uint64_t seq)
{
	struct restore_ctx *r = &a->restore;
	struct gmig_msg m = { .type = GMIG_MSG_STAGED };
	struct client *c;
	uint32_t i;
	int rc;

	rc = restore_place(a, GMIG_MSG_RESTORE_REF, seq, rr->pid, rr->region, rr->offset,
			   rr->length);
	if (rc)
		return rc;
	c = client_by_pid(a, (pid_t)rr->pid);
	if (!c) {
		/* It died with its staging: nothing to hand on, and nobody needs the bytes. */
		log_rl(LV_INFO, NULL, "restore reference for pid %u dropped: no such client",
		       rr->pid);
		r->chunks++;
		r->bytes += rr->length;
		return 0;
	}
	i = rr->slot - c->st.slots;
	if (rr->slot < c->st.slots || rr->slot >= 2 * c->st.slots || !(c->lent & (1ull << i))) {
		restore_bad(a, GMIG_MSG_RESTORE_REF, seq, -EPROTO,
			    "pid %u: slot %u is not lent to the host", rr->pid, rr->slot);
		return -EPROTO;
	}
	if (rr->length > c->st.slot_size) {
		restore_bad(a, GMIG_MSG_RESTORE_REF, seq, -ERANGE,
			    "pid %u: %u bytes in a slot of %u", rr->pid, rr->length,
			    c->st.slot_size);
		return -ERANGE;
	}
	/* The slot goes from the host to the client; it comes back with the client's SLOT_FREE. */
	c->lent &= ~(1ull << i);
	m.u.staged.region = rr->region;
	m.u.staged.offset = rr->offset;
	m.u.staged.length = rr->length;
	m.u.staged.encoding = GMIG_ENC_RAW;
	m.u.staged.epoch = rr->epoch;
	m.u.staged.slot = rr->slot;
	client_send(c, &m);
	r->chunks++;
	r->bytes += rr->length;
	c->rs_chunks++;
	c->rs_bytes += rr->length;
	a->bytes_restored += rr->length;
	a->bytes_restored_ref += rr->length;
	return 0;
}
