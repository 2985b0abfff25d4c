/*
 * A blocking QMP client with deadlines, for gmigd's worker thread: it connects to QEMU's
 * monitor socket, does the capabilities handshake, executes commands with ids and keeps the
 * events that arrive meanwhile (DEVICE_DELETED, MIGRATION, STOP, RESUME, ...) for
 * qmp_wait_event(). QEMU's errors come back as a negative errno, with its class and desc kept
 * for the report.
 */
#ifndef GMIG_HOST_QMP_H
#define GMIG_HOST_QMP_H

#include <stddef.h>
#include <stdint.h>

struct json_object;
struct qmp;

#define QMP_WHY_MAX	256

/*
 * Connects to the unix socket at @path, reads the greeting and enters command mode, all within
 * @timeout_ms. 0 and the client in *@out, or -errno with a sentence in @why: -ETIMEDOUT, the
 * socket's error, -EPROTO for a server that does not speak QMP.
 */
int qmp_open(const char *path, uint32_t timeout_ms, struct qmp **out, char *why, size_t whylen);
/* Closes the connection; NULL is fine. */
void qmp_close(struct qmp *q);

/*
 * Executes @cmd with @args (taken; NULL: none) and waits up to @timeout_ms for its reply.
 * 0 with the "return" value in *@ret (the caller puts it; @ret may be NULL), or -errno:
 * QEMU's error class mapped (CommandNotFound -ENOSYS, DeviceNotFound/DeviceNotActive -ENODEV,
 * KVMMissingCap -EOPNOTSUPP, GenericError and others -EREMOTEIO) with its desc in qmp_why();
 * -ETIMEDOUT; -EPIPE when QEMU closed the socket; -EPROTO for a reply that is not QMP.
 */
int qmp_execute(struct qmp *q, const char *cmd, struct json_object *args,
		struct json_object **ret, uint32_t timeout_ms);

/*
 * Waits up to @timeout_ms for the event @name, taking it from those kept first; when @key is
 * set, only an event whose data has @key equal to the string @value counts (DEVICE_DELETED's
 * "device"). 0 with its data in *@data (may be NULL; the caller puts it), or -ETIMEDOUT,
 * -EPIPE, -EPROTO. Events that do not match stay kept (the oldest go past GMIG_QMP_EVENTS_MAX).
 */
int qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *value,
		   uint32_t timeout_ms, struct json_object **data);

/* The sentence of the last failure: QEMU's "Class: desc", or what went wrong on the socket. */
const char *qmp_why(const struct qmp *q);

/* The errno a QMP error class stands for. */
int qmp_class_errno(const char *cls);

#endif
