/* Checkpoint files: an atomic streaming writer and a reader that verifies the whole file first. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>
#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "checkpoint.h"
#include "fault.h"

#define CKPT_HDR_SIZE		64
#define CKPT_HDR_HASHED		56	/* header bytes its own hash covers */
#define CKPT_CLIENT_SIZE	56
#define CKPT_NAME_SIZE		32
#define CKPT_REC_SIZE		32
#define CKPT_TRAILER_SIZE	24
#define CKPT_CLIENTS_MAX	GMIG_MANIFEST_MAX
#define CKPT_HAS_BLOB		0x1u
#define CKPT_IO_BUF		(1u << 20)	/* stdio buffer of the path entry points */
#define CKPT_PROGRESS_STEP	(64ull << 20)

static const char ckpt_magic[8] = { 'G', 'M', 'I', 'G', 'C', 'K', 'P', 'T' };
static const char trailer_magic[8] = { 'G', 'M', 'I', 'G', 'T', 'A', 'I', 'L' };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void *fault_malloc(size_t n)
{
	return gmig_fault() ? NULL : malloc(n ? n : 1);
}

struct ckpt_header {
	uint16_t version, flags;
	uint32_t size, gpus, clients, regions, reserved;
	uint64_t bytes, chunks, manifest_hash, hash;
};

/* Encodes h, its own hash included (h->hash is set). */
static void header_put(uint8_t *p, struct ckpt_header *h)
{
	memcpy(p, ckpt_magic, sizeof(ckpt_magic));
	put16(p + 8, h->version);
	put16(p + 10, h->flags);
	put32(p + 12, h->size);
	put32(p + 16, h->gpus);
	put32(p + 20, h->clients);
	put32(p + 24, h->regions);
	put32(p + 28, h->reserved);
	put64(p + 32, h->bytes);
	put64(p + 40, h->chunks);
	put64(p + 48, h->manifest_hash);
	h->hash = XXH3_64bits(p, CKPT_HDR_HASHED);
	put64(p + 56, h->hash);
}

static void header_get(const uint8_t *p, struct ckpt_header *h)
{
	h->version = get16(p + 8);
	h->flags = get16(p + 10);
	h->size = get32(p + 12);
	h->gpus = get32(p + 16);
	h->clients = get32(p + 20);
	h->regions = get32(p + 24);
	h->reserved = get32(p + 28);
	h->bytes = get64(p + 32);
	h->chunks = get64(p + 40);
	h->manifest_hash = get64(p + 48);
	h->hash = get64(p + 56);
}

static uint64_t manifest_size(uint64_t gpus, uint64_t clients, uint64_t regions)
{
	return gpus * GMIG_REC_gpu_SIZE + clients * CKPT_CLIENT_SIZE + regions * GMIG_REC_manifest_SIZE;
}

/* Whether a NUL-padded name field holds printable text and nothing after its end. */
static bool name_field_ok(const uint8_t *p)
{
	size_t n = strnlen((const char *)p, CKPT_NAME_SIZE);

	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	for (size_t i = n; i < CKPT_NAME_SIZE; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- writing ---- */

struct writer {
	XXH3_state_t hash;	/* of every byte written so far */
	FILE *f;
};

static int w_put(struct writer *w, const void *p, size_t n)
{
	if (gmig_fault())
		return -EIO;
	errno = 0;
	if (n && fwrite(p, 1, n, w->f) != n)
		return errno ? -errno : -EIO;
	XXH3_64bits_update(&w->hash, p, n);
	return 0;
}

/*
 * The reader's rules that a hand-changed image could break, checked before a
 * byte is written (names and records are checked as they are encoded).
 */
static int image_writable(const struct gmig_image *img)
{
	uint64_t bytes = 0;
	uint32_t c = 0;

	if (img->ngpus > GMIG_GPUS_MAX || img->nclients > CKPT_CLIENTS_MAX ||
	    img->nregions > GMIG_MANIFEST_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < img->nclients; i++) {
		const struct gmig_image_client *cl = &img->clients[i];
		uint32_t g = 0;

		if ((i && cl->pid <= img->clients[i - 1].pid) || !cl->pid)
			return -EINVAL;
		if (cl->blob_len > GMIG_BLOB_MAX || (!cl->blob && cl->blob_len))
			return -EINVAL;
		while (g < img->ngpus && img->gpus[g].index != cl->gpu)
			g++;
		if (g == img->ngpus)
			return -EINVAL;
	}
	for (uint32_t i = 0; i < img->nregions; i++) {
		const struct gmig_image_region *r = &img->regions[i];

		if (i && (r->pid < r[-1].pid || (r->pid == r[-1].pid && r->id <= r[-1].id)))
			return -EINVAL;
		while (c < img->nclients && img->clients[c].pid < r->pid)
			c++;
		if (c == img->nclients || img->clients[c].pid != r->pid)
			return -EINVAL;
		if (!r->data || !r->epochs || !r->chunk || r->size > UINT64_MAX - bytes)
			return -EINVAL;
		bytes += r->size;
	}
	if (bytes != img->bytes || !gmig_image_complete(img))
		return -EINVAL;
	return 0;
}

/* The manifest in wire form; *len bytes in a buffer the caller frees. */
static int manifest_build(const struct gmig_image *img, uint8_t **out, size_t *len)
{
	uint8_t *buf, *p;

	*len = (size_t)manifest_size(img->ngpus, img->nclients, img->nregions);
	buf = p = fault_malloc(*len);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->ngpus; i++, p += GMIG_REC_gpu_SIZE)
		if (gmig_rec_put_gpu(p, &img->gpus[i]) < 0)
			goto out_free_buf;
	for (uint32_t i = 0; i < img->nclients; i++, p += CKPT_CLIENT_SIZE) {
		const struct gmig_image_client *c = &img->clients[i];
		size_t n = strnlen(c->name, sizeof(c->name));

		put32(p, c->pid);
		put32(p + 4, c->gpu);
		put32(p + 8, c->blob ? CKPT_HAS_BLOB : 0);
		put32(p + 12, c->blob ? c->blob_len : 0);
		put64(p + 16, c->blob ? XXH3_64bits(c->blob, c->blob_len) : 0);
		if (n > CKPT_NAME_SIZE)
			goto out_free_buf;
		memset(p + 24, 0, CKPT_NAME_SIZE);
		memcpy(p + 24, c->name, n);
		if (!name_field_ok(p + 24))
			goto out_free_buf;
	}
	for (uint32_t i = 0; i < img->nregions; i++, p += GMIG_REC_manifest_SIZE) {
		const struct gmig_image_region *r = &img->regions[i];
		struct gmig_rec_manifest m = { .pid = r->pid, .region = r->id, .va = r->va,
					       .size = r->size, .chunk = r->chunk };

		if (gmig_rec_put_manifest(p, &m) < 0)
			goto out_free_buf;
	}
	*out = buf;
	return 0;

out_free_buf:
	free(buf);
	return -EINVAL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return !p[0] && !memcmp(p, p + 1, n - 1);
}

/* One record per chunk: ZERO without data, LZ4 when it is smaller, else RAW. */
static int write_chunks(struct writer *w, const struct gmig_image *img,
			gmig_ckpt_progress_fn progress, void *arg)
{
	uint64_t done = 0, next = CKPT_PROGRESS_STEP;
	uint8_t *scratch, rec[CKPT_REC_SIZE];
	uint32_t chunk_max = 0;
	int err = 0;

	for (uint32_t ri = 0; ri < img->nregions; ri++)
		if (img->regions[ri].chunk > chunk_max)
			chunk_max = img->regions[ri].chunk;
	scratch = fault_malloc((size_t)LZ4_compressBound((int)chunk_max));
	if (!scratch)
		return -ENOMEM;
	for (uint32_t ri = 0; ri < img->nregions && !err; ri++) {
		const struct gmig_image_region *r = &img->regions[ri];
		uint64_t n = gmig_image_nchunks(r);

		for (uint64_t ci = 0; ci < n && !err; ci++) {
			uint64_t off = ci * r->chunk;
			uint32_t len = (uint32_t)(r->size - off < r->chunk ? r->size - off : r->chunk);
			const uint8_t *src = r->data + off, *body = src;
			uint8_t enc = GMIG_ENC_RAW;
			uint32_t stored = len;
			int z;

			if (all_zero(src, len)) {
				enc = GMIG_ENC_ZERO;
				stored = 0;
			} else if ((z = LZ4_compress_default((const char *)src, (char *)scratch,
							     (int)len, (int)len - 1)) > 0) {
				enc = GMIG_ENC_LZ4;
				stored = (uint32_t)z;
				body = scratch;
			}
			put32(rec, ri);
			rec[4] = enc;
			rec[5] = rec[6] = rec[7] = 0;
			put64(rec + 8, off);
			put32(rec + 16, len);
			put32(rec + 20, stored);
			put64(rec + 24, XXH3_64bits(src, len));
			err = w_put(w, rec, sizeof(rec));
			if (!err)
				err = w_put(w, body, stored);
			done += len;
			if (!err && progress && (done >= next || done == img->bytes)) {
				err = progress(arg, done, img->bytes);
				next = done + CKPT_PROGRESS_STEP;
			}
		}
	}
	free(scratch);
	return err;
}

int gmig_checkpoint_write_file(const struct gmig_image *img, FILE *f,
			       gmig_ckpt_progress_fn progress, void *arg)
{
	struct ckpt_header h = { .version = GMIG_CKPT_VERSION, .size = CKPT_HDR_SIZE };
	struct writer w = { .f = f };
	uint8_t head[CKPT_HDR_SIZE], trailer[CKPT_TRAILER_SIZE];
	uint8_t *manifest;
	size_t mlen;
	int err;

	err = image_writable(img);
	if (err)
		return err;
	err = manifest_build(img, &manifest, &mlen);
	if (err)
		return err;
	h.gpus = img->ngpus;
	h.clients = img->nclients;
	h.regions = img->nregions;
	h.bytes = img->bytes;
	for (uint32_t i = 0; i < img->nregions; i++)
		h.chunks += gmig_image_nchunks(&img->regions[i]);
	h.manifest_hash = XXH3_64bits(manifest, mlen);
	header_put(head, &h);

	XXH3_64bits_reset(&w.hash);
	err = w_put(&w, head, sizeof(head));
	if (!err)
		err = w_put(&w, manifest, mlen);
	for (uint32_t i = 0; i < img->nclients && !err; i++)
		if (img->clients[i].blob)
			err = w_put(&w, img->clients[i].blob, img->clients[i].blob_len);
	if (!err)
		err = write_chunks(&w, img, progress, arg);
	if (!err) {
		memcpy(trailer, trailer_magic, sizeof(trailer_magic));
		put64(trailer + 8, h.chunks);
		put64(trailer + 16, XXH3_64bits_digest(&w.hash));
		err = w_put(&w, trailer, sizeof(trailer));
	}
	free(manifest);
	return err;
}

/* "<dir>/.<name>.XXXXXX" beside path, and the directory to sync after the rename. */
static int temp_names(const char *path, char **tmp, char **dir)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 1;

	*dir = fault_malloc(dlen + 2);
	*tmp = fault_malloc(dlen + strlen(name) + 16);
	if (!*dir || !*tmp) {
		free(*dir);
		free(*tmp);
		return -ENOMEM;
	}
	if (!slash) {
		strcpy(*dir, ".");
	} else if (!dlen) {
		strcpy(*dir, "/");
	} else {
		memcpy(*dir, path, dlen);
		(*dir)[dlen] = 0;
	}
	sprintf(*tmp, "%s/.%s.XXXXXX", *dir, name);
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd, err = 0;

	fd = gmig_fault() ? (errno = EIO, -1) : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (gmig_fault() ? (errno = EIO, 1) : fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

int gmig_checkpoint_write(const struct gmig_image *img, const char *path,
			  gmig_ckpt_progress_fn progress, void *arg)
{
	char *tmp, *dir;
	void *buf;
	FILE *f;
	int fd, err;

	err = temp_names(path, &tmp, &dir);
	if (err)
		return err;
	fd = gmig_fault() ? (errno = EIO, -1) : mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto out_free_names;
	}
	buf = fault_malloc(CKPT_IO_BUF);
	if (!buf) {
		err = -ENOMEM;
		goto out_close_fd;
	}
	f = gmig_fault() ? (errno = EIO, NULL) : fdopen(fd, "wb");
	if (!f) {
		err = -errno;
		goto out_free_buf;
	}
	setvbuf(f, buf, _IOFBF, CKPT_IO_BUF);

	err = gmig_checkpoint_write_file(img, f, progress, arg);
	if (!err && (gmig_fault() ? (errno = EIO, 1) : fflush(f)))
		err = -errno;
	if (!err && (gmig_fault() ? (errno = EIO, 1) : fsync(fd)))
		err = -errno;
	/* fclose closes fd too, and may report a late write error. */
	if (fclose(f) && !err)
		err = -errno;
	free(buf);
	if (!err && (gmig_fault() ? (errno = EIO, 1) : rename(tmp, path)))
		err = -errno;
	if (err)
		goto out_unlink;
	err = sync_dir(dir);
	free(tmp);
	free(dir);
	return err;

out_free_buf:
	free(buf);
out_close_fd:
	close(fd);
out_unlink:
	unlink(tmp);
out_free_names:
	free(tmp);
	free(dir);
	return err;
}

/* ---- reading ---- */

struct reader {
	XXH3_state_t hash;	/* of every byte read so far */
	FILE *f;
	uint64_t pos;		/* bytes read */
	uint64_t size;		/* of the stream, UINT64_MAX if unknown */
	char *detail;
	size_t detail_len;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct reader *rd, int err, const char *fmt, ...)
{
	va_list ap;

	if (rd->detail && rd->detail_len) {
		va_start(ap, fmt);
		vsnprintf(rd->detail, rd->detail_len, fmt, ap);
		va_end(ap);
	}
	return err;
}

static int r_get(struct reader *rd, void *p, size_t n)
{
	size_t got;
	int e;

	if (gmig_fault())
		return fail(rd, -EIO, "read error at byte %llu: injected fault",
			    (unsigned long long)rd->pos);
	errno = 0;
	got = n ? fread(p, 1, n, rd->f) : 0;
	XXH3_64bits_update(&rd->hash, p, got);
	rd->pos += got;
	if (got == n)
		return 0;
	if (ferror(rd->f)) {
		e = errno ? errno : EIO;
		return fail(rd, -e, "read error at byte %llu: %s", (unsigned long long)rd->pos,
			    strerror(e));
	}
	return fail(rd, -ENODATA, "truncated at byte %llu", (unsigned long long)rd->pos);
}

/* Refuses, before anything is allocated, what a stream of known size cannot hold. */
static int r_room(struct reader *rd, uint64_t n)
{
	if (rd->size == UINT64_MAX || (rd->pos <= rd->size && n <= rd->size - rd->pos))
		return 0;
	return fail(rd, -ENODATA, "truncated at byte %llu", (unsigned long long)rd->size);
}

/* Everything one read builds; the image is handed out only when all of it checked. */
struct load {
	struct reader rd;
	struct ckpt_header h;
	struct gmig_image img;
	uint8_t *manifest;
	uint8_t *region_recs;	/* the manifest's regions as INV_CLIENT region records */
	uint8_t *scratch;	/* stored bytes of an LZ4 chunk */
	uint64_t chunks;	/* in all regions */
	uint32_t chunk_max;	/* the largest chunk of any region */
	uint32_t zero_len;	/* length of the last zero chunk hashed */
	uint64_t zero_hash;
};

static int read_header(struct load *L)
{
	struct reader *rd = &L->rd;
	struct ckpt_header *h = &L->h;
	uint8_t b[CKPT_HDR_SIZE];
	int err;

	err = r_get(rd, b, sizeof(b));
	if (memcmp(b, ckpt_magic, rd->pos < sizeof(ckpt_magic) ? (size_t)rd->pos : sizeof(ckpt_magic)))
		return fail(rd, -EINVAL, "bad magic: not a gmig checkpoint");
	if (err == -ENODATA && !rd->pos)
		return fail(rd, -ENODATA, "truncated at byte 0: the file is empty");
	if (err)
		return err;
	header_get(b, h);
	if (h->version != GMIG_CKPT_VERSION)
		return fail(rd, -EPROTONOSUPPORT, "format version %u not supported (this reader knows %u)",
			    h->version, GMIG_CKPT_VERSION);
	if (XXH3_64bits(b, CKPT_HDR_HASHED) != h->hash)
		return fail(rd, -EBADMSG, "header checksum mismatch");
	if (h->flags)
		return fail(rd, -EINVAL, "header: unknown flags 0x%x", h->flags);
	if (h->size != CKPT_HDR_SIZE)
		return fail(rd, -EINVAL, "header: size %u, expected %u", h->size, CKPT_HDR_SIZE);
	if (h->reserved)
		return fail(rd, -EINVAL, "header: reserved field set");
	if (h->gpus > GMIG_GPUS_MAX)
		return fail(rd, -EINVAL, "header: %u GPUs, over the limit of %u", h->gpus, GMIG_GPUS_MAX);
	if (h->clients > CKPT_CLIENTS_MAX)
		return fail(rd, -EINVAL, "header: %u clients, over the limit of %u", h->clients,
			    CKPT_CLIENTS_MAX);
	if (h->regions > GMIG_MANIFEST_MAX)
		return fail(rd, -EINVAL, "header: %u regions, over the limit of %u", h->regions,
			    GMIG_MANIFEST_MAX);
	if (L->img.cap && h->bytes > L->img.cap)
		return fail(rd, -ENOSPC, "image of %llu bytes, over the cap of %llu",
			    (unsigned long long)h->bytes, (unsigned long long)L->img.cap);
	return 0;
}

static int read_manifest(struct load *L)
{
	struct reader *rd = &L->rd;
	uint64_t len = manifest_size(L->h.gpus, L->h.clients, L->h.regions);
	int err;

	err = r_room(rd, len);
	if (err)
		return err;
	L->manifest = fault_malloc((size_t)len);
	if (!L->manifest)
		return fail(rd, -ENOMEM, "out of memory for a manifest of %llu bytes",
			    (unsigned long long)len);
	err = r_get(rd, L->manifest, (size_t)len);
	if (err)
		return err;
	if (XXH3_64bits(L->manifest, (size_t)len) != L->h.manifest_hash)
		return fail(rd, -EBADMSG, "manifest checksum mismatch");
	return 0;
}

static int parse_gpus(struct load *L, const uint8_t *p)
{
	struct gmig_inv_gpus m = { .tail = { p, L->h.gpus * GMIG_REC_gpu_SIZE } };
	uint8_t wire[GMIG_REC_gpu_SIZE];
	struct gmig_rec_gpu g[GMIG_GPUS_MAX];
	int err;

	for (uint32_t i = 0; i < L->h.gpus; i++) {
		gmig_rec_get_gpu(&m.tail, i, &g[i]);
		if (gmig_rec_put_gpu(wire, &g[i]) < 0 || memcmp(wire, p + i * GMIG_REC_gpu_SIZE, sizeof(wire)))
			return fail(&L->rd, -EINVAL, "GPU record %u is invalid", i);
		for (uint32_t j = 0; j < i; j++)
			if (g[j].index == g[i].index)
				return fail(&L->rd, -EINVAL, "GPU %u is listed twice", g[i].index);
	}
	err = gmig_image_set_gpus(&L->img, &m);
	return err ? fail(&L->rd, err, "cannot hold the GPU list: %s", strerror(-err)) : 0;
}

/* The clients' fixed records; their regions and blobs come later. */
static int check_clients(struct load *L, const uint8_t *p)
{
	for (uint32_t i = 0; i < L->h.clients; i++, p += CKPT_CLIENT_SIZE) {
		uint32_t pid = get32(p), gpu = get32(p + 4), flags = get32(p + 8), len = get32(p + 12);
		bool known = false;

		if (!pid || (i && pid <= get32(p - CKPT_CLIENT_SIZE)))
			return fail(&L->rd, -EINVAL, "client %u: pid %u is 0 or out of order", i, pid);
		if (flags & ~CKPT_HAS_BLOB)
			return fail(&L->rd, -EINVAL, "client %u (pid %u): unknown flags 0x%x", i, pid, flags);
		if (!(flags & CKPT_HAS_BLOB) && (len || get64(p + 16)))
			return fail(&L->rd, -EINVAL, "client %u (pid %u): blob length without a blob", i, pid);
		if (len > GMIG_BLOB_MAX)
			return fail(&L->rd, -EINVAL, "client %u (pid %u): blob of %u bytes, over the limit of %u",
				    i, pid, len, GMIG_BLOB_MAX);
		if (!name_field_ok(p + 24))
			return fail(&L->rd, -EINVAL, "client %u (pid %u): invalid name", i, pid);
		for (uint32_t g = 0; g < L->img.ngpus; g++)
			known |= L->img.gpus[g].index == gpu;
		if (!known)
			return fail(&L->rd, -EINVAL, "client %u (pid %u): GPU %u is not in the file", i, pid, gpu);
	}
	return 0;
}

/* The regions: each valid, in (pid, id) order, owned by a client; the sizes add up. */
static int check_regions(struct load *L, const uint8_t *clients, const uint8_t *p)
{
	struct gmig_tail t = { p, L->h.regions * GMIG_REC_manifest_SIZE };
	uint8_t wire[GMIG_REC_manifest_SIZE];
	struct gmig_rec_manifest prev = { 0 }, m;
	uint64_t bytes = 0;
	uint32_t c = 0;

	for (uint32_t i = 0; i < L->h.regions; i++) {
		gmig_rec_get_manifest(&t, i, &m);
		if (gmig_rec_put_manifest(wire, &m) < 0)
			return fail(&L->rd, -EINVAL, "region %u: invalid record (pid %u, size %llu, chunk %u)",
				    i, m.pid, (unsigned long long)m.size, m.chunk);
		if (i && (m.pid < prev.pid || (m.pid == prev.pid && m.region <= prev.region)))
			return fail(&L->rd, -EINVAL, "region %u: not in (pid, id) order", i);
		while (c < L->h.clients && get32(clients + (size_t)c * CKPT_CLIENT_SIZE) < m.pid)
			c++;
		if (c == L->h.clients || get32(clients + (size_t)c * CKPT_CLIENT_SIZE) != m.pid)
			return fail(&L->rd, -EINVAL, "region %u: pid %u has no client", i, m.pid);
		if (m.size > UINT64_MAX - bytes)
			return fail(&L->rd, -EINVAL, "region %u: sizes overflow", i);
		bytes += m.size;
		L->chunks += m.size / m.chunk + (m.size % m.chunk != 0);
		if (m.chunk > L->chunk_max)
			L->chunk_max = m.chunk;
		prev = m;
	}
	if (bytes != L->h.bytes)
		return fail(&L->rd, -EINVAL, "the regions hold %llu bytes, the header says %llu",
			    (unsigned long long)bytes, (unsigned long long)L->h.bytes);
	return 0;
}

/* Gives the image each client and its regions, through the same checks as INV_CLIENT. */
static int add_clients(struct load *L, const uint8_t *clients, const uint8_t *regions)
{
	struct gmig_tail t = { regions, L->h.regions * GMIG_REC_manifest_SIZE };
	uint32_t r = 0;
	int err;

	L->region_recs = fault_malloc((size_t)L->h.regions * GMIG_REC_region_SIZE);
	if (!L->region_recs)
		return fail(&L->rd, -ENOMEM, "out of memory for the region list");
	for (uint32_t i = 0; i < L->h.regions; i++) {
		struct gmig_rec_manifest m;
		struct gmig_rec_region rr;

		gmig_rec_get_manifest(&t, i, &m);
		rr = (struct gmig_rec_region){ .id = m.region, .va = m.va, .size = m.size, .chunk = m.chunk };
		gmig_rec_put_region(L->region_recs + (size_t)i * GMIG_REC_region_SIZE, &rr);
	}
	for (uint32_t i = 0; i < L->h.clients; i++) {
		const uint8_t *p = clients + (size_t)i * CKPT_CLIENT_SIZE;
		struct gmig_inv_client m = { .pid = get32(p), .gpu = get32(p + 4) };
		uint32_t first = r;

		memcpy(m.name, p + 24, CKPT_NAME_SIZE);
		while (r < L->h.regions && get32(regions + (size_t)r * GMIG_REC_manifest_SIZE) == m.pid)
			r++;
		if (r - first > GMIG_REGIONS_MAX)
			return fail(&L->rd, -EINVAL, "client %u (pid %u): %u regions, over the limit of %u",
				    i, m.pid, r - first, GMIG_REGIONS_MAX);
		m.tail = (struct gmig_tail){ L->region_recs + (size_t)first * GMIG_REC_region_SIZE,
					     (r - first) * GMIG_REC_region_SIZE };
		err = gmig_image_set_client(&L->img, &m);
		if (err == -EINVAL)
			return fail(&L->rd, err, "client %u (pid %u): regions overlap", i, m.pid);
		if (err)
			return fail(&L->rd, err, "client %u (pid %u): cannot hold its regions: %s", i, m.pid,
				    strerror(-err));
	}
	return 0;
}

static int read_blobs(struct load *L, const uint8_t *p)
{
	struct reader *rd = &L->rd;
	int err;

	for (uint32_t i = 0; i < L->h.clients; i++, p += CKPT_CLIENT_SIZE) {
		struct gmig_image_client *c = &L->img.clients[i];
		uint32_t len = get32(p + 12);

		if (!(get32(p + 8) & CKPT_HAS_BLOB))
			continue;
		err = r_room(rd, len);
		if (err)
			return err;
		c->blob = fault_malloc(len);
		if (!c->blob)
			return fail(rd, -ENOMEM, "out of memory for a blob of %u bytes", len);
		c->blob_len = len;
		err = r_get(rd, c->blob, len);
		if (err)
			return err;
		if (XXH3_64bits(c->blob, len) != get64(p + 16))
			return fail(rd, -EBADMSG, "client %u (pid %u): blob checksum mismatch", i, c->pid);
	}
	return 0;
}

static int read_manifest_parts(struct load *L)
{
	const uint8_t *gpus = L->manifest;
	const uint8_t *clients = gpus + (size_t)L->h.gpus * GMIG_REC_gpu_SIZE;
	const uint8_t *regions = clients + (size_t)L->h.clients * CKPT_CLIENT_SIZE;
	int err;

	err = parse_gpus(L, gpus);
	if (!err)
		err = check_clients(L, clients);
	if (!err)
		err = check_regions(L, clients, regions);
	if (!err)
		err = add_clients(L, clients, regions);
	if (!err)
		err = read_blobs(L, clients);
	return err;
}

static int read_chunk(struct load *L, uint64_t k)
{
	struct reader *rd = &L->rd;
	struct gmig_image_region *r;
	uint8_t b[CKPT_REC_SIZE], *dst;
	uint32_t ri, len, stored, want;
	uint64_t off, ci, hash;
	int err;

	err = r_get(rd, b, sizeof(b));
	if (err)
		return err;
	ri = get32(b);
	off = get64(b + 8);
	len = get32(b + 16);
	stored = get32(b + 20);
	if (ri >= L->img.nregions)
		return fail(rd, -EINVAL, "record %llu: region index %u out of range (%u regions)",
			    (unsigned long long)k, ri, L->img.nregions);
	if (b[5] | b[6] | b[7])
		return fail(rd, -EINVAL, "record %llu: reserved bytes set", (unsigned long long)k);
	r = &L->img.regions[ri];
	if (off >= r->size)
		return fail(rd, -ERANGE, "record %llu: chunk at offset %llu outside region %u (%llu bytes)",
			    (unsigned long long)k, (unsigned long long)off, ri,
			    (unsigned long long)r->size);
	if (off % r->chunk)
		return fail(rd, -EINVAL, "record %llu: offset %llu of region %u is not on a chunk boundary",
			    (unsigned long long)k, (unsigned long long)off, ri);
	ci = off / r->chunk;
	want = (uint32_t)(r->size - off < r->chunk ? r->size - off : r->chunk);
	if (len != want)
		return fail(rd, -EINVAL, "chunk %llu of region %u: length %u, the chunk has %u",
			    (unsigned long long)ci, ri, len, want);
	if (!(b[4] == GMIG_ENC_RAW && stored == len) && !(b[4] == GMIG_ENC_ZERO && !stored) &&
	    !(b[4] == GMIG_ENC_LZ4 && stored && stored < len))
		return fail(rd, -EINVAL, "chunk %llu of region %u: encoding %u with %u stored bytes",
			    (unsigned long long)ci, ri, b[4], stored);
	if (r->epochs[ci])
		return fail(rd, -EINVAL, "region %u: chunk %llu appears twice", ri, (unsigned long long)ci);

	/* A fresh region is zero, so a ZERO chunk needs no write, and hashes as zeros. */
	dst = r->data + off;
	if (b[4] == GMIG_ENC_RAW) {
		err = r_get(rd, dst, len);
	} else if (b[4] == GMIG_ENC_LZ4) {
		if (!L->scratch && !(L->scratch = fault_malloc(L->chunk_max)))
			return fail(rd, -ENOMEM, "out of memory for LZ4 data");
		err = r_get(rd, L->scratch, stored);
		if (!err && LZ4_decompress_safe((const char *)L->scratch, (char *)dst, (int)stored,
						(int)len) != (int)len)
			return fail(rd, -EBADMSG, "chunk %llu of region %u: corrupt LZ4 data",
				    (unsigned long long)ci, ri);
	}
	if (err)
		return err;
	if (b[4] != GMIG_ENC_ZERO) {
		hash = XXH3_64bits(dst, len);
	} else {
		if (L->zero_len != len) {
			L->zero_hash = XXH3_64bits(dst, len);
			L->zero_len = len;
		}
		hash = L->zero_hash;
	}
	if (hash != get64(b + 24))
		return fail(rd, -EBADMSG, "chunk %llu of region %u: checksum mismatch",
			    (unsigned long long)ci, ri);
	r->epochs[ci] = 1;
	return 0;
}

static int read_chunks(struct load *L)
{
	int err;

	if (L->h.chunks > L->chunks)
		return fail(&L->rd, -EINVAL, "header counts %llu chunk records, the regions hold %llu chunks",
			    (unsigned long long)L->h.chunks, (unsigned long long)L->chunks);
	err = r_room(&L->rd, L->h.chunks * CKPT_REC_SIZE + CKPT_TRAILER_SIZE);
	for (uint64_t k = 0; k < L->h.chunks && !err; k++)
		err = read_chunk(L, k);
	return err;
}

static int read_trailer(struct load *L)
{
	struct reader *rd = &L->rd;
	uint64_t hash = XXH3_64bits_digest(&rd->hash);
	uint8_t b[CKPT_TRAILER_SIZE];
	int err;

	err = r_get(rd, b, sizeof(b));
	if (err)
		return err;
	if (memcmp(b, trailer_magic, sizeof(trailer_magic)))
		return fail(rd, -EINVAL, "bad trailer magic at byte %llu",
			    (unsigned long long)(rd->pos - sizeof(b)));
	if (get64(b + 8) != L->h.chunks)
		return fail(rd, -EINVAL, "trailer counts %llu chunk records, the header %llu",
			    (unsigned long long)get64(b + 8), (unsigned long long)L->h.chunks);
	if (get64(b + 16) != hash)
		return fail(rd, -EBADMSG, "file checksum mismatch");
	if (fgetc(rd->f) != EOF)
		return fail(rd, -EINVAL, "data after the trailer at byte %llu", (unsigned long long)rd->pos);
	if (ferror(rd->f))
		return fail(rd, -EIO, "read error at byte %llu", (unsigned long long)rd->pos);
	return 0;
}

static int check_complete(struct load *L)
{
	for (uint32_t ri = 0; ri < L->img.nregions; ri++) {
		const struct gmig_image_region *r = &L->img.regions[ri];
		uint64_t n = gmig_image_nchunks(r), missing = 0;

		for (uint64_t ci = 0; ci < n; ci++)
			missing += !r->epochs[ci];
		if (missing)
			return fail(&L->rd, -EINVAL, "region %u (pid %u, id %u): %llu chunks missing",
				    ri, r->pid, r->id, (unsigned long long)missing);
	}
	return 0;
}

int gmig_checkpoint_read_file(FILE *f, uint64_t size, struct gmig_image *img,
			      char *detail, size_t detail_len)
{
	struct load L = { .rd = { .f = f, .size = size, .detail = detail, .detail_len = detail_len } };
	int err;

	if (detail && detail_len)
		detail[0] = 0;
	gmig_image_clear(img);
	gmig_image_init(&L.img, img->cap);
	XXH3_64bits_reset(&L.rd.hash);

	err = read_header(&L);
	if (!err)
		err = read_manifest(&L);
	if (!err)
		err = read_manifest_parts(&L);
	if (!err)
		err = read_chunks(&L);
	if (!err)
		err = read_trailer(&L);
	if (!err)
		err = check_complete(&L);

	free(L.scratch);
	free(L.region_recs);
	free(L.manifest);
	if (err) {
		gmig_image_clear(&L.img);
		return err;
	}
	*img = L.img;
	return 0;
}

int gmig_checkpoint_read(const char *path, struct gmig_image *img, char *detail, size_t detail_len)
{
	struct reader rd = { .detail = detail, .detail_len = detail_len };
	struct stat st;
	void *buf;
	FILE *f;
	int fd, err;

	gmig_image_clear(img);
	fd = gmig_fault() ? (errno = EIO, -1) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(&rd, -errno, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st)) {
		err = fail(&rd, -errno, "cannot stat: %s", strerror(errno));
		goto out_close_fd;
	}
	if (S_ISDIR(st.st_mode)) {
		err = fail(&rd, -EISDIR, "is a directory");
		goto out_close_fd;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	buf = fault_malloc(CKPT_IO_BUF);
	if (!buf) {
		err = fail(&rd, -ENOMEM, "out of memory for the read buffer");
		goto out_close_fd;
	}
	f = gmig_fault() ? (errno = EIO, NULL) : fdopen(fd, "rb");
	if (!f) {
		err = fail(&rd, -errno, "cannot open a stream: %s", strerror(errno));
		goto out_free_buf;
	}
	setvbuf(f, buf, _IOFBF, CKPT_IO_BUF);
	err = gmig_checkpoint_read_file(f, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX,
					img, detail, detail_len);
	fclose(f);
	free(buf);
	return err;

out_free_buf:
	free(buf);
out_close_fd:
	close(fd);
	return err;
}
