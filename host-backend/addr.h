/*
 * Addresses: a guest's channel (vsock:CID:PORT, hvsock:/path:PORT, serial:/path, unix:/path,
 * tcp:HOST:PORT) and a peer's HOST:PORT, parsed, printed and turned into socket addresses.
 */
#ifndef GMIG_HOST_ADDR_H
#define GMIG_HOST_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gmig/limits.h"

#define ADDR_HOST_MAX		128	/* bytes of a host name or literal, NUL included */
#define ADDR_UNIX_MAX		108	/* sizeof(sun_path) */
#define ADDR_ERR_MAX		160
#define AGENT_VSOCK_PORT	9190	/* the agent's default vsock port */
#define PEER_PORT_DEFAULT	9191	/* gmigd's default peer port */

enum addr_kind {
	ADDR_VSOCK,	/* AF_VSOCK CID and port */
	ADDR_HVSOCK,	/* Firecracker / Cloud Hypervisor hybrid vsock: unix socket, CONNECT <port> */
	ADDR_SERIAL,	/* the host end of a virtio-serial port: a chardev unix socket */
	ADDR_UNIX,	/* a unix stream socket */
	ADDR_TCP,	/* TCP */
	ADDR_KIND_COUNT
};

extern const char *const addr_kind_names[];

struct gaddr {
	enum addr_kind kind;
	char path[ADDR_UNIX_MAX];	/* HVSOCK, SERIAL, UNIX */
	char host[ADDR_HOST_MAX];	/* TCP */
	uint32_t cid;			/* VSOCK */
	uint32_t port;			/* VSOCK, HVSOCK, TCP */
};

/*
 * Parses a guest address. 0, or -EINVAL with a sentence in @err. Text must be at most
 * GMIG_ADDR_MAX bytes and hold no control characters.
 */
int addr_parse(const char *text, struct gaddr *a, char *err, size_t errlen);

/* Writes the canonical text of @a; the length written, like snprintf. */
int addr_format(const struct gaddr *a, char *buf, size_t len);

/*
 * Parses "HOST:PORT", "[V6]:PORT" or, when @defport is not 0, a bare "HOST" or "[V6]".
 * 0, or -EINVAL with a sentence in @err.
 */
int hostport_parse(const char *text, char *host, size_t hostlen, uint16_t *port,
		   uint16_t defport, char *err, size_t errlen);
/* The same for an address to listen on, where port 0 asks the kernel for one. */
int hostport_parse_listen(const char *text, char *host, size_t hostlen, uint16_t *port,
			  char *err, size_t errlen);

/*
 * The socket address to connect to for @a (for HVSOCK and SERIAL, the unix socket). TCP names
 * are resolved with getaddrinfo(), numeric ones without a look-up. 0 or a negative errno
 * (-EHOSTUNREACH for a name that does not resolve).
 */
int addr_sockaddr(const struct gaddr *a, struct sockaddr_storage *ss, socklen_t *len);

/* Resolves HOST and PORT for connect (@passive false) or bind (@passive true). */
int hostport_sockaddr(const char *host, uint16_t port, int passive, struct sockaddr_storage *ss,
		      socklen_t *len);

/* "1.2.3.4:5", "[::1]:5", "unix", "vsock:3:5" for logs. */
void sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen);

#endif
