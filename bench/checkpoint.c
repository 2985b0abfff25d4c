/*
 * Checkpoint file throughput: a 1 GiB image of mixed content (a third random,
 * a third compressible, a third zero, in 64 KiB chunks) written and read as a
 * checkpoint file, beside plain write() and read() of the same bytes to the
 * same filesystem, measured side by side in one run. Writes end with fsync;
 * before each read the file's pages are dropped from the page cache (no effect
 * on tmpfs), and reads land in freshly allocated memory, as a restore's do.
 *
 *   bench-checkpoint [MiB [repeats [dir ...]]]    default: 1024 3 /dev/shm /tmp
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"

#define CHUNK		(64u << 10)
#define REGION_MAX	(256ull << 20)
#define IO_BLOCK	(4u << 20)
#define PID		4242

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One chunk of the given kind: 0 random, 1 compressible (words and numbers), 2 zero. */
static void fill_chunk(uint8_t *p, size_t n, int kind, uint64_t *s)
{
	static const char *const words[] = { "tensor ", "weight ", "bias ", "grad ", "0.000 ",
					     "1.5e-3 ", "layer ", "\0\0\0\0\0\0\0\0" };
	size_t i = 0;

	if (kind == 2) {
		memset(p, 0, n);
		return;
	}
	if (kind == 0) {
		for (; i + 8 <= n; i += 8) {
			uint64_t v = next_rand(s);

			memcpy(p + i, &v, 8);
		}
		return;
	}
	while (i < n) {
		const char *w = words[next_rand(s) % 8];
		size_t len = w[0] ? strlen(w) : 8;

		for (size_t k = 0; k < len && i < n; k++)
			p[i++] = (uint8_t)w[k];
	}
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-checkpoint: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* A complete image of mib MiB in regions of at most 256 MiB, filled through apply. */
static void build_image(struct gmig_image *img, uint64_t mib)
{
	uint64_t bytes = mib << 20, seed = 0x9e3779b97f4a7c15ull;
	uint32_t nregions = (uint32_t)((bytes + REGION_MAX - 1) / REGION_MAX);
	uint8_t gpu_rec[GMIG_REC_gpu_SIZE], *recs = calloc(nregions, GMIG_REC_region_SIZE);
	struct gmig_rec_gpu gpu = { .index = 0, .vendor = 0x10de, .device = 0x2335,
				    .mem_bytes = 141ull << 30, .backend = GMIG_BACKEND_SIM,
				    .model = "bench" };
	struct gmig_inv_gpus gm = { .tail = { gpu_rec, sizeof(gpu_rec) } };
	struct gmig_inv_client cm = { .count = 1, .pid = PID, .gpu = 0, .name = "bench",
				      .tail = { recs, nregions * GMIG_REC_region_SIZE } };
	uint8_t *buf = malloc(CHUNK);
	int err;

	if (!recs || !buf)
		die("allocating", ENOMEM);
	gmig_image_init(img, 0);
	gmig_rec_put_gpu(gpu_rec, &gpu);
	for (uint32_t i = 0; i < nregions; i++) {
		uint64_t size = bytes - i * REGION_MAX < REGION_MAX ? bytes - i * REGION_MAX : REGION_MAX;
		struct gmig_rec_region r = { .id = i + 1, .va = 0x7f0000000000ull + i * (1ull << 32),
					     .size = size, .chunk = CHUNK };

		gmig_rec_put_region(recs + i * GMIG_REC_region_SIZE, &r);
	}
	if ((err = gmig_image_set_gpus(img, &gm)) || (err = gmig_image_set_client(img, &cm)))
		die("building the image", err);
	for (uint32_t i = 0; i < img->nregions; i++) {
		struct gmig_image_region *r = &img->regions[i];

		for (uint64_t off = 0; off < r->size; off += CHUNK) {
			int kind = (int)(next_rand(&seed) % 3);
			struct gmig_region_data d = { .pid = PID, .region = r->id, .offset = off,
						      .length = CHUNK, .encoding = GMIG_ENC_RAW,
						      .epoch = 1, .tail = { buf, CHUNK } };

			fill_chunk(buf, CHUNK, kind, &seed);
			if (kind == 2)
				d = (struct gmig_region_data){ .pid = PID, .region = r->id, .offset = off,
							       .length = CHUNK, .encoding = GMIG_ENC_ZERO,
							       .epoch = 1 };
			if ((err = gmig_image_apply(img, &d, false)))
				die("filling the image", err);
		}
	}
	free(buf);
	free(recs);
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

/* The regions' bytes one after another, fsync'd. */
static double plain_write(const struct gmig_image *img, const char *path)
{
	double t = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		die(path, errno);
	for (uint32_t i = 0; i < img->nregions; i++) {
		const struct gmig_image_region *r = &img->regions[i];

		for (uint64_t off = 0; off < r->size;) {
			size_t n = r->size - off < IO_BLOCK ? (size_t)(r->size - off) : IO_BLOCK;
			ssize_t w = write(fd, r->data + off, n);

			if (w <= 0)
				die("write", errno);
			off += (uint64_t)w;
		}
	}
	if (fsync(fd) || close(fd))
		die("fsync", errno);
	return now() - t;
}

/* Reads the file into fresh memory; checks the bytes afterwards, untimed. */
static double plain_read(const struct gmig_image *img, const char *path)
{
	uint8_t *mem = malloc(img->bytes);
	uint64_t at = 0;
	double t;
	int fd;

	if (!mem)
		die("allocating", ENOMEM);
	t = now();
	fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path, errno);
	while (at < img->bytes) {
		size_t n = img->bytes - at < IO_BLOCK ? (size_t)(img->bytes - at) : IO_BLOCK;
		ssize_t got = read(fd, mem + at, n);

		if (got <= 0)
			die("read", got ? errno : ENODATA);
		at += (uint64_t)got;
	}
	close(fd);
	t = now() - t;
	at = 0;
	for (uint32_t i = 0; i < img->nregions; i++) {
		if (memcmp(mem + at, img->regions[i].data, img->regions[i].size))
			die("plain read: bytes differ", EIO);
		at += img->regions[i].size;
	}
	free(mem);
	return t;
}

static double ckpt_write(const struct gmig_image *img, const char *path)
{
	double t = now();
	int err = gmig_checkpoint_write(img, path, NULL, NULL);

	if (err)
		die("gmig_checkpoint_write", err);
	return now() - t;
}

static double ckpt_read(const struct gmig_image *img, const char *path)
{
	char detail[GMIG_CKPT_DETAIL_MAX];
	struct gmig_image out;
	double t;
	int err;

	gmig_image_init(&out, 0);
	t = now();
	err = gmig_checkpoint_read(path, &out, detail, sizeof(detail));
	t = now() - t;
	if (err) {
		fprintf(stderr, "bench-checkpoint: %s: %s\n", path, detail);
		exit(1);
	}
	for (uint32_t i = 0; i < img->nregions; i++)
		if (out.regions[i].size != img->regions[i].size ||
		    memcmp(out.regions[i].data, img->regions[i].data, img->regions[i].size))
			die("checkpoint read: bytes differ", EIO);
	gmig_image_clear(&out);
	return t;
}

/* How fast fresh memory takes its first write: every read below pays it. */
static double first_touch_gbps(uint64_t bytes)
{
	uint8_t *p = malloc(bytes);
	double t;

	if (!p)
		die("allocating", ENOMEM);
	t = now();
	memset(p, 1, bytes);
	t = now() - t;
	if (p[bytes - 1] != 1)
		die("memset", EIO);
	free(p);
	return (double)bytes / t / 1e9;
}

static void row(const char *dir, const char *what, double plain, double ckpt, uint64_t bytes,
		uint64_t plain_file, uint64_t ckpt_file)
{
	printf("%-10s %-6s %9.3f %9.2f %9.3f %9.2f %7.2fx %10.1f %10.1f\n", dir, what, plain,
	       (double)bytes / plain / 1e9, ckpt, (double)bytes / ckpt / 1e9, plain / ckpt,
	       (double)plain_file / (1 << 20), (double)ckpt_file / (1 << 20));
}

int main(int argc, char **argv)
{
	static const char *const default_dirs[] = { "/dev/shm", "/tmp" };
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	const char *const *dirs = argc > 3 ? (const char *const *)argv + 3 : default_dirs;
	int ndirs = argc > 3 ? argc - 3 : 2;
	struct gmig_image img;
	double t;

	if (!mib || repeats < 1)
		die("usage: bench-checkpoint [MiB [repeats [dir ...]]]", EINVAL);
	t = now();
	build_image(&img, mib);
	printf("\ncheckpoint files: %llu MiB image, 1/3 random, 1/3 compressible, 1/3 zero, "
	       "64 KiB chunks (built in %.1f s); best of %d\n",
	       (unsigned long long)mib, now() - t, repeats);
	printf("GB/s are image bytes per second; writes include fsync, reads start from a cold "
	       "page cache (tmpfs excepted)\n");
	printf("first touch of fresh memory on this machine: %.2f GB/s\n", first_touch_gbps(img.bytes));
	printf("%-10s %-6s %9s %9s %9s %9s %8s %10s %10s\n", "dir", "op", "plain s", "GB/s",
	       "ckpt s", "GB/s", "speedup", "plain MiB", "ckpt MiB");
	for (int d = 0; d < ndirs; d++) {
		char plain_path[4096], ckpt_path[4096];
		double pw = 1e9, cw = 1e9, pr = 1e9, cr = 1e9;

		snprintf(plain_path, sizeof(plain_path), "%s/gmig-bench-%d.raw", dirs[d], (int)getpid());
		snprintf(ckpt_path, sizeof(ckpt_path), "%s/gmig-bench-%d.ckpt", dirs[d], (int)getpid());
		for (int r = 0; r < repeats; r++) {
			t = plain_write(&img, plain_path);
			pw = t < pw ? t : pw;
			t = ckpt_write(&img, ckpt_path);
			cw = t < cw ? t : cw;
			drop_cache(plain_path);
			t = plain_read(&img, plain_path);
			pr = t < pr ? t : pr;
			drop_cache(ckpt_path);
			t = ckpt_read(&img, ckpt_path);
			cr = t < cr ? t : cr;
		}
		row(dirs[d], "write", pw, cw, img.bytes, file_size(plain_path), file_size(ckpt_path));
		row(dirs[d], "read", pr, cr, img.bytes, file_size(plain_path), file_size(ckpt_path));
		unlink(plain_path);
		unlink(ckpt_path);
	}
	gmig_image_clear(&img);
	return 0;
}
