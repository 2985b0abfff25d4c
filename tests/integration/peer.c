/* A blocking test peer playing the host side of a migration against gmig-agent. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gmig/version.h"
#include "peer.h"

#define BUSY_RETRIES 200	/* x 25 ms: the agent may still be winding down a dropped step */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(struct peer *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->path);
	if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(p->fd);
		p->fd = -1;
		return err;
	}
	p->in_off = p->in_len = 0;
	gmig_decoder_init(&p->dec, p->payload, GMIG_PAYLOAD_MAX);
	return 0;
}

int peer_send_raw(struct peer *p, const void *data, size_t n)
{
	const uint8_t *b = data;

	while (n) {
		ssize_t w = send(p->fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int peer_send(struct peer *p, const struct gmig_msg *m)
{
	static uint8_t buf[GMIG_HDR_SIZE + GMIG_PAYLOAD_MAX];
	struct gmig_hdr h = { .version = GMIG_VERSION_MAX, .session = p->session, .seq = ++p->seq };
	long n = gmig_msg_encode(buf, sizeof(buf), &h, m);

	if (n < 0)
		return (int)n;
	return peer_send_raw(p, buf, (size_t)n);
}

int peer_recv(struct peer *p, struct gmig_msg *m)
{
	struct gmig_frame f;
	size_t used;
	int rc;

	for (;;) {
		if (p->in_off == p->in_len) {
			struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
			ssize_t r;

			rc = poll(&pfd, 1, p->timeout_ms);
			if (rc == 0)
				return -ETIMEDOUT;
			if (rc < 0)
				return -errno;
			r = recv(p->fd, p->in, sizeof(p->in), 0);
			if (r == 0)
				return -ECONNRESET;
			if (r < 0)
				return errno == EINTR ? peer_recv(p, m) : -errno;
			p->in_off = 0;
			p->in_len = (size_t)r;
			p->bytes_in += (size_t)r;
		}
		rc = gmig_decoder_feed(&p->dec, p->in + p->in_off, p->in_len - p->in_off, &used, &f);
		p->in_off += used;
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
	}
	rc = gmig_msg_decode(&f, m);
	if (rc)
		return rc;
	if (m->type == GMIG_MSG_ERROR) {
		snprintf(p->error, sizeof(p->error), "%.*s", (int)m->u.error.tail.len,
			 (const char *)m->u.error.tail.ptr);
	}
	return m->type;
}

static struct peer_region *find_region(struct peer *p, uint32_t pid, uint32_t region)
{
	for (unsigned i = 0; i < p->nregions; i++)
		if (p->regions[i].pid == pid && p->regions[i].region == region)
			return &p->regions[i];
	return NULL;
}

/* Takes one client's regions into the image: new ones start zeroed, grown ones keep their bytes. */
static int take_client(struct peer *p, const struct gmig_inv_client *c)
{
	for (uint32_t i = 0; i < gmig_rec_count(&c->tail, GMIG_REC_region_SIZE); i++) {
		struct gmig_rec_region r;
		struct peer_region *pr;

		gmig_rec_get_region(&c->tail, i, &r);
		pr = find_region(p, c->pid, r.id);
		if (!pr) {
			if (p->nregions == PEER_REGIONS_MAX)
				return -ENOSPC;
			pr = &p->regions[p->nregions++];
			*pr = (struct peer_region){ .pid = c->pid, .region = r.id };
		}
		if (r.size != pr->size) {
			uint8_t *d = realloc(pr->data, r.size);

			if (!d)
				return -ENOMEM;
			if (r.size > pr->size)
				memset(d + pr->size, 0, r.size - pr->size);
			pr->data = d;
		}
		pr->va = r.va;
		pr->size = r.size;
		pr->chunk = r.chunk;
	}
	return 0;
}

/* Waits for the answer of type want; an ERROR becomes its code. */
static int expect(struct peer *p, struct gmig_msg *m, uint16_t want)
{
	int type;

	for (;;) {
		type = peer_recv(p, m);
		if (type == GMIG_MSG_PONG)
			continue;
		/* A client's regions may grow at any time; the agent says so unasked. */
		if (type == GMIG_MSG_INV_CLIENT && want != GMIG_MSG_INV_CLIENT) {
			int err = take_client(p, &m->u.inv_client);

			if (err)
				return err;
			continue;
		}
		break;
	}
	if (type < 0)
		return type;
	if (type == GMIG_MSG_ERROR)
		return m->u.error.code;
	if (type != want) {
		snprintf(p->error, sizeof(p->error), "expected %s, got %s", gmig_msg_name(want),
			 gmig_msg_name((uint16_t)type));
		return -EPROTO;
	}
	return 0;
}

static int hello(struct peer *p, bool resume)
{
	struct gmig_msg m = { .type = GMIG_MSG_HELLO, .u.hello = {
		.min_version = GMIG_VERSION_MIN, .max_version = GMIG_VERSION_MAX,
		.role = GMIG_ROLE_HOST, .caps = 0, .name = "test-peer" } };
	int err;

	if (resume) {
		m.u.hello.session = p->session;
		memcpy(m.u.hello.token, p->token, sizeof(p->token));
	}
	err = peer_send(p, &m);
	if (err)
		return err;
	err = expect(p, &m, GMIG_MSG_WELCOME);
	if (err)
		return err;
	if (resume && (!m.u.welcome.resumed || m.u.welcome.session != p->session))
		return -ESTALE;
	p->session = m.u.welcome.session;
	memcpy(p->token, m.u.welcome.token, sizeof(p->token));
	p->phase = m.u.welcome.phase;
	gmig_decoder_set_versions(&p->dec, (uint8_t)m.u.welcome.version, (uint8_t)m.u.welcome.version);
	return 0;
}

int peer_connect(struct peer *p, const char *path)
{
	int err;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->timeout_ms = 30000;
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->payload = malloc(GMIG_PAYLOAD_MAX);
	if (!p->payload)
		return -ENOMEM;
	err = dial(p);
	return err ? err : hello(p, false);
}

int peer_resume(struct peer *p)
{
	int err;

	if (p->fd >= 0)
		close(p->fd);
	err = dial(p);
	return err ? err : hello(p, true);
}

void peer_close(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	for (unsigned i = 0; i < p->nregions; i++)
		free(p->regions[i].data);
	p->nregions = 0;
	free(p->payload);
	p->payload = NULL;
}

int peer_inventory(struct peer *p)
{
	struct gmig_msg m = { .type = GMIG_MSG_INV_REQUEST };
	int err = peer_send(p, &m);

	if (err || (err = expect(p, &m, GMIG_MSG_INV_GPUS)))
		return err;
	p->ngpus = gmig_rec_count(&m.u.inv_gpus.tail, GMIG_REC_gpu_SIZE);
	if (p->ngpus > PEER_GPUS_MAX)
		p->ngpus = PEER_GPUS_MAX;
	for (unsigned i = 0; i < p->ngpus; i++)
		gmig_rec_get_gpu(&m.u.inv_gpus.tail, i, &p->gpus[i]);
	p->clients = m.u.inv_gpus.clients;
	for (uint32_t c = 0; c < p->clients; c++)
		if ((err = expect(p, &m, GMIG_MSG_INV_CLIENT)) || (err = take_client(p, &m.u.inv_client)))
			return err;
	return 0;
}

/* Applies region data to the image; the guest is not trusted. */
static int apply(struct peer *p, const struct gmig_region_data *d)
{
	struct peer_region *r = find_region(p, d->pid, d->region);

	if (!r || d->offset > r->size || d->length > r->size - d->offset)
		return -ERANGE;
	if (d->encoding == GMIG_ENC_ZERO)
		memset(r->data + d->offset, 0, d->length);
	else if (d->encoding == GMIG_ENC_RAW)
		memcpy(r->data + d->offset, d->tail.ptr, d->length);
	else
		return -EPROTO;	/* the peer offered no LZ4 */
	return 0;
}

/* Sends a request, retrying while the agent answers -EBUSY. */
static int request(struct peer *p, const struct gmig_msg *req, struct gmig_msg *m, uint16_t want)
{
	int err;

	for (int i = 0; i < BUSY_RETRIES; i++) {
		err = peer_send(p, req);
		if (err)
			return err;
		err = expect(p, m, want);
		if (err != -EBUSY)
			return err;
		usleep(25000);
	}
	return -EBUSY;
}

int peer_round(struct peer *p, uint32_t round, uint32_t base, struct gmig_round_end *st, bool drop_mid)
{
	struct gmig_msg req = { .type = GMIG_MSG_ROUND_BEGIN, .u.round_begin = { round, base } }, m;
	uint64_t frames = 0;
	int type, err;

	for (int i = 0;; i++) {
		if ((err = peer_send(p, &req)))
			return err;
		type = peer_recv(p, &m);
		if (type == GMIG_MSG_ERROR && m.u.error.code == -EBUSY && i < BUSY_RETRIES) {
			usleep(25000);
			continue;
		}
		break;
	}
	for (;; type = peer_recv(p, &m)) {
		if (type < 0)
			return type;
		if (type == GMIG_MSG_ERROR)
			return m.u.error.code;
		if (type == GMIG_MSG_ROUND_END)
			break;
		if (type == GMIG_MSG_INV_CLIENT) {
			if ((err = take_client(p, &m.u.inv_client)))
				return err;
			continue;
		}
		if (type != GMIG_MSG_REGION_DATA)
			return -EPROTO;
		if ((err = apply(p, &m.u.region_data)))
			return err;
		if (drop_mid && ++frames == 3)
			return peer_resume(p) ? -ECONNRESET : -EINTR;
	}
	*st = m.u.round_end;
	return 0;
}

int peer_freeze(struct peer *p, uint32_t deadline_ms)
{
	struct gmig_msg req = { .type = GMIG_MSG_FREEZE, .u.freeze.deadline_ms = deadline_ms }, m;
	int err = request(p, &req, &m, GMIG_MSG_FROZEN);

	if (err)
		return err;
	/* One FROZEN per client, or one with count 0. */
	for (uint32_t i = 1; i < m.u.frozen.count; i++)
		if ((err = expect(p, &m, GMIG_MSG_FROZEN)))
			return err;
	return 0;
}

int peer_step(struct peer *p, uint16_t request_type, uint16_t answer)
{
	struct gmig_msg req = { .type = request_type }, m;
	int err = request(p, &req, &m, answer);

	return err ? err : (int)m.u.clients.clients;
}

int peer_attach(struct peer *p, uint32_t from, uint32_t to)
{
	uint8_t map[GMIG_REC_gpu_map_SIZE];
	struct gmig_rec_gpu_map r = { .from = from, .to = to };
	struct gmig_msg req = { .type = GMIG_MSG_ATTACH, .u.attach.tail = { map, sizeof(map) } }, m;
	int err;

	for (unsigned i = 0; i < p->ngpus; i++)
		if (p->gpus[i].index == to)
			memcpy(r.uuid, p->gpus[i].uuid, sizeof(r.uuid));
	gmig_rec_put_gpu_map(map, &r);
	err = request(p, &req, &m, GMIG_MSG_ATTACHED);
	return err ? err : (int)m.u.clients.clients;
}

static bool zero(const uint8_t *b, size_t n)
{
	return !b[0] && !memcmp(b, b + 1, n - 1);
}

int peer_restore(struct peer *p, bool drop_mid)
{
	static uint8_t man[PEER_REGIONS_MAX * GMIG_REC_manifest_SIZE];
	struct gmig_msg m = { .type = GMIG_MSG_RESTORE_BEGIN };
	struct gmig_totals sent = { 0 };
	uint64_t total = 0;
	int err;

	for (unsigned i = 0; i < p->nregions; i++) {
		struct peer_region *r = &p->regions[i];
		struct gmig_rec_manifest e = { r->pid, r->region, r->va, r->size, r->chunk };

		gmig_rec_put_manifest(man + i * GMIG_REC_manifest_SIZE, &e);
		total += r->size;
	}
	m.u.restore_begin = (struct gmig_restore_begin){ .clients = p->clients, .bytes = total,
		.tail = { man, p->nregions * GMIG_REC_manifest_SIZE } };
	if ((err = peer_send(p, &m)))
		return err;
	for (unsigned i = 0; i < p->nregions; i++) {
		struct peer_region *r = &p->regions[i];

		for (uint64_t off = 0; off < r->size; off += r->chunk) {
			uint32_t len = (uint32_t)(r->size - off < r->chunk ? r->size - off : r->chunk);
			struct gmig_msg d = { .type = GMIG_MSG_RESTORE_DATA, .u.region_data = {
				.pid = r->pid, .region = r->region, .offset = off, .length = len,
				.encoding = GMIG_ENC_RAW, .epoch = 1, .tail = { r->data + off, len } } };

			if (zero(r->data + off, len)) {
				d.u.region_data.encoding = GMIG_ENC_ZERO;
				d.u.region_data.tail = (struct gmig_tail){ NULL, 0 };
			}
			if ((err = peer_send(p, &d)))
				return err;
			sent.chunks++;
			sent.bytes += len;
			if (drop_mid && sent.chunks == 5)
				return peer_resume(p) ? -ECONNRESET : -EINTR;
		}
	}
	m = (struct gmig_msg){ .type = GMIG_MSG_RESTORE_END, .u.totals = sent };
	if ((err = peer_send(p, &m)) || (err = expect(p, &m, GMIG_MSG_RESTORED)))
		return err;
	if (m.u.totals.bytes != sent.bytes || m.u.totals.chunks != sent.chunks) {
		snprintf(p->error, sizeof(p->error), "restored %llu of %llu bytes",
			 (unsigned long long)m.u.totals.bytes, (unsigned long long)sent.bytes);
		return -EIO;
	}
	return 0;
}

/* Drops and resumes the channel when the plan says so at this point. */
static int maybe_drop(struct peer *p, const struct peer_options *o, enum peer_drop here)
{
	return o->drop == here ? peer_resume(p) : 0;
}

static uint64_t round_bytes(const struct gmig_round_end *st)
{
	return st->bytes;
}

int peer_migrate(struct peer *p, const struct peer_options *opts, struct peer_report *rep)
{
	struct peer_options o = *opts;
	struct gmig_round_end st;
	uint64_t last_dirty = UINT64_MAX;
	uint32_t round = 0, base = 0;
	double t0 = now(), tf;
	int err;

	if (!o.max_rounds)
		o.max_rounds = 5;
	if (!o.freeze_deadline_ms)
		o.freeze_deadline_ms = 5000;
	memset(rep, 0, sizeof(*rep));

	if ((err = peer_inventory(p)) || (err = maybe_drop(p, &o, DROP_AFTER_INVENTORY)))
		return err;
	while (round < o.max_rounds) {
		bool drop_mid = o.drop == DROP_MID_ROUND && round == 1;

		err = peer_round(p, ++round, base, &st, drop_mid);
		if (err == -EINTR) {
			o.drop = DROP_NONE;	/* dropped and resumed: run it again against the same base */
			continue;
		}
		if (err)
			return err;
		base = round;
		rep->precopy_bytes += round_bytes(&st);
		if ((err = maybe_drop(p, &o, DROP_AFTER_ROUND)))
			return err;
		if (o.drop == DROP_AFTER_ROUND)
			o.drop = DROP_NONE;
		if (st.dirty >= last_dirty)
			break;
		last_dirty = st.dirty;
	}
	rep->rounds = round;
	rep->precopy_s = now() - t0;

	tf = now();
	if ((err = peer_freeze(p, o.freeze_deadline_ms)) || (err = maybe_drop(p, &o, DROP_AFTER_FREEZE)))
		return err;
	if ((err = peer_round(p, ++round, base, &st, false)))
		return err;
	rep->final_bytes = round_bytes(&st);
	if ((err = peer_step(p, GMIG_MSG_RELEASE, GMIG_MSG_RELEASED)) < 0 ||
	    (err = maybe_drop(p, &o, DROP_AFTER_RELEASE)))
		return err;
	if ((err = peer_attach(p, 0, o.target_gpu)) < 0 || (err = maybe_drop(p, &o, DROP_AFTER_ATTACH)))
		return err;
	err = peer_restore(p, o.drop == DROP_MID_RESTORE);
	if (err == -EINTR)
		err = peer_restore(p, false);
	if (err || (err = maybe_drop(p, &o, DROP_AFTER_RESTORE)))
		return err;
	for (unsigned i = 0; i < p->nregions; i++)
		rep->restore_bytes += p->regions[i].size;
	if ((err = peer_step(p, GMIG_MSG_THAW, GMIG_MSG_THAWED)) < 0)
		return err;
	rep->pause_s = now() - tf;
	rep->total_s = now() - t0;
	return 0;
}
