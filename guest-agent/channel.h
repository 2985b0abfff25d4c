/*
 * The listening ends of the agent: the host channels (vsock, a unix socket, a virtio-serial
 * port) and the unix socket helper shared with the client socket.
 */
#ifndef GMIG_AGENT_CHANNEL_H
#define GMIG_AGENT_CHANNEL_H

#include <sys/types.h>

struct agent;
struct serial_port;

#define CHANNEL_BACKLOG		16
#define SERIAL_RETRY_MS		1000	/* a closed or missing port is tried again this often */

/*
 * Binds a listening unix socket at @path with permissions @mode, creating its directory
 * (0755) when missing and replacing a stale socket file. The descriptor, or -errno.
 */
int unix_listen_fd(const char *path, mode_t mode);

/*
 * Opens every configured host channel. vsock and virtio-serial failures are logged and the
 * agent goes on (a host without vsock, a port not plugged yet); a unix socket that cannot be
 * bound is an error. 0 or -errno.
 */
int channel_open_all(struct agent *a);
void channel_close_all(struct agent *a);

/* The serial port's connection ended: the port is watched again after SERIAL_RETRY_MS. */
void serial_conn_closed(struct serial_port *p, int err);

#endif
