/*
 * Checkpoint files of a guest's image: written atomically, read and verified
 * whole into a fresh image, with a precise error for any damaged file.
 *
 * Format version 1, every integer little-endian:
 *
 *   header (64 bytes)
 *     off size field
 *       0    8 magic          "GMIGCKPT"
 *       8    2 version        1
 *      10    2 flags          0 (none defined)
 *      12    4 header size    64
 *      16    4 gpus           at most GMIG_GPUS_MAX
 *      20    4 clients        at most GMIG_MANIFEST_MAX
 *      24    4 regions        at most GMIG_MANIFEST_MAX
 *      28    4 reserved       0
 *      32    8 image bytes    sum of the region sizes
 *      40    8 chunk records  that follow the blobs
 *      48    8 manifest hash  XXH3-64 of the manifest
 *      56    8 header hash    XXH3-64 of bytes 0..55
 *   manifest
 *     gpus x gmig_rec_gpu wire records (113 bytes), GPU indices distinct
 *     clients x 56 bytes, pids strictly increasing:
 *       pid u32, gpu u32, flags u32 (bit 0: has a blob), blob length u32,
 *       blob XXH3-64 u64, name 32 bytes NUL-padded
 *     regions x gmig_rec_manifest wire records (28 bytes: pid, region id, va,
 *       size, chunk), (pid, id) strictly increasing, each pid a client's
 *   blobs: the blob of each client that has one, in client order
 *   chunk records, in any order, one for every chunk of every region:
 *     off size field
 *       0    4 region         index in the manifest
 *       4    1 encoding       GMIG_ENC_RAW, GMIG_ENC_ZERO or GMIG_ENC_LZ4
 *       5    3 reserved       0
 *       8    8 offset         in the region, on a chunk boundary
 *      16    4 length         decoded bytes: the chunk's (the last may be short)
 *      20    4 stored         bytes that follow: RAW length, ZERO 0, LZ4 1..length-1
 *      24    8 hash           XXH3-64 of the decoded bytes
 *   trailer (24 bytes): magic "GMIGTAIL", record count u64, XXH3-64 of every
 *     byte before the trailer
 *
 * Chunks read from a file get epoch 1: the lowest written epoch, so that a
 * new session's data (from round 1) always replaces them.
 */
#ifndef GMIG_CHECKPOINT_H
#define GMIG_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "image.h"

#define GMIG_CKPT_VERSION	1
#define GMIG_CKPT_DETAIL_MAX	160	/* a detail buffer this long holds any message */

/*
 * Called while writing, after each 64 MiB of region bytes and at the end,
 * with the bytes done and the image's total; a negative errno stops the write.
 */
typedef int (*gmig_ckpt_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Writes img to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory. On failure no temporary
 * file remains and path is left as it was, unless only the directory's sync
 * failed: then path holds the new file, which may not survive a crash. The
 * image must be complete.
 * progress may be NULL. Returns 0 or a negative errno: -EINVAL for an
 * incomplete or invalid image, or the error of the failing call.
 */
int gmig_checkpoint_write(const struct gmig_image *img, const char *path,
			  gmig_ckpt_progress_fn progress, void *arg);
/* The same format to a stream, buffered by the caller; no sync, no rename. */
int gmig_checkpoint_write_file(const struct gmig_image *img, FILE *f,
			       gmig_ckpt_progress_fn progress, void *arg);

/*
 * Reads and verifies the whole file at path into img, which must have been
 * initialised; its cap applies and whatever it held is dropped first. On any
 * error img is left empty and, when detail is not NULL, a sentence for humans
 * is written there ("chunk 3 of region 1: checksum mismatch"). Errors:
 *   -EINVAL           not a checkpoint ("bad magic"), a field out of range,
 *                     an inconsistent manifest, a chunk twice or missing
 *   -EPROTONOSUPPORT  a format version this reader does not know
 *   -ENODATA          truncated ("truncated at byte N")
 *   -EBADMSG          a checksum mismatch, or LZ4 data that does not decode
 *   -ENOSPC           the image would pass img's cap
 *   -ERANGE           a chunk outside its region
 *   -EISDIR, -ENOENT, -EACCES, -EIO, -ENOMEM ... from the system
 */
int gmig_checkpoint_read(const char *path, struct gmig_image *img, char *detail, size_t detail_len);
/*
 * The same from a stream (fmemopen, a pipe). size is the stream's length when
 * known, which lets hostile counts be refused before anything is allocated;
 * UINT64_MAX when unknown.
 */
int gmig_checkpoint_read_file(FILE *f, uint64_t size, struct gmig_image *img,
			      char *detail, size_t detail_len);

#endif
