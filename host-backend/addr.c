/* Addresses of guests and peers: parsing, canonical text and socket addresses. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>

#include "addr.h"

const char *const addr_kind_names[] = {
	[ADDR_VSOCK] = "vsock",
	[ADDR_HVSOCK] = "hvsock",
	[ADDR_SERIAL] = "serial",
	[ADDR_UNIX] = "unix",
	[ADDR_TCP] = "tcp",
};

static bool text_clean(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/* A decimal number in [min, max] that is the whole of @s. */
static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_path(const char *s, char *path, const char *what, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (!n || s[0] != '/') {
		snprintf(err, errlen, "%s: '%s' is not an absolute path", what, s);
		return -EINVAL;
	}
	if (n >= ADDR_UNIX_MAX) {
		snprintf(err, errlen, "%s: the path is longer than %d bytes", what, ADDR_UNIX_MAX - 1);
		return -EINVAL;
	}
	memcpy(path, s, n + 1);
	return 0;
}

static int parse_hostport(const char *text, char *host, size_t hostlen, uint16_t *port,
			  uint16_t defport, uint32_t minport, char *err, size_t errlen)
{
	const char *h = text, *colon, *p = NULL;
	size_t hl;
	uint32_t v;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close) {
			snprintf(err, errlen, "'%s': ']' is missing", text);
			return -EINVAL;
		}
		h = text + 1;
		hl = (size_t)(close - h);
		if (close[1] == ':')
			p = close + 2;
		else if (close[1]) {
			snprintf(err, errlen, "'%s': expected ':' after ']'", text);
			return -EINVAL;
		}
	} else {
		colon = strrchr(text, ':');
		if (colon && strchr(text, ':') != colon) {
			snprintf(err, errlen, "'%s': write an IPv6 address as [ADDR]:PORT", text);
			return -EINVAL;
		}
		hl = colon ? (size_t)(colon - text) : strlen(text);
		p = colon ? colon + 1 : NULL;
	}
	if (!hl || hl >= hostlen || hl >= ADDR_HOST_MAX) {
		snprintf(err, errlen, "'%s': the host is empty or too long", text);
		return -EINVAL;
	}
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c <= ' ' || c == 0x7f || c == '/' || c == '[' || c == ']') {
			snprintf(err, errlen, "'%s': the host holds a character a host cannot", text);
			return -EINVAL;
		}
	}
	if (!p) {
		if (!defport) {
			snprintf(err, errlen, "'%s': the port is missing (HOST:PORT)", text);
			return -EINVAL;
		}
		v = defport;
	} else if (parse_u32(p, minport, 65535, &v)) {
		snprintf(err, errlen, "'%s': the port must be a number from %u to 65535", text,
			 minport);
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)v;
	return 0;
}

int hostport_parse(const char *text, char *host, size_t hostlen, uint16_t *port,
		   uint16_t defport, char *err, size_t errlen)
{
	return parse_hostport(text, host, hostlen, port, defport, 1, err, errlen);
}

int hostport_parse_listen(const char *text, char *host, size_t hostlen, uint16_t *port,
			  char *err, size_t errlen)
{
	return parse_hostport(text, host, hostlen, port, PEER_PORT_DEFAULT, 0, err, errlen);
}

int addr_parse(const char *text, struct gaddr *a, char *err, size_t errlen)
{
	const char *colon = strchr(text, ':'), *rest, *last;
	char buf[GMIG_ADDR_MAX + 1];
	size_t n = strlen(text);
	uint16_t port16;

	memset(a, 0, sizeof(*a));
	if (n > GMIG_ADDR_MAX || !text_clean(text)) {
		snprintf(err, errlen, "an address is at most %d bytes of printable text",
			 GMIG_ADDR_MAX);
		return -EINVAL;
	}
	if (!colon) {
		snprintf(err, errlen, "'%s': expected vsock:CID:PORT, hvsock:/PATH:PORT, "
			 "serial:/PATH, unix:/PATH or tcp:HOST:PORT", text);
		return -EINVAL;
	}
	rest = colon + 1;
	for (int k = 0; k < ADDR_KIND_COUNT; k++) {
		if (strlen(addr_kind_names[k]) == (size_t)(colon - text) &&
		    !strncmp(text, addr_kind_names[k], (size_t)(colon - text)))
			a->kind = (enum addr_kind)k;
		else
			continue;
		goto known;
	}
	snprintf(err, errlen, "'%.*s' is not an address kind: use vsock, hvsock, serial, unix or tcp",
		 (int)(colon - text), text);
	return -EINVAL;

known:
	switch (a->kind) {
	case ADDR_VSOCK:
		last = strchr(rest, ':');
		if (!last || (size_t)(last - rest) >= sizeof(buf)) {
			snprintf(err, errlen, "'%s': expected vsock:CID:PORT", text);
			return -EINVAL;
		}
		memcpy(buf, rest, (size_t)(last - rest));
		buf[last - rest] = '\0';
		/* CIDs 0 and 1 are the hypervisor and loopback, 2 the host itself; -1 means any. */
		if (parse_u32(buf, 2, UINT32_MAX - 1, &a->cid)) {
			snprintf(err, errlen, "'%s': the CID must be a number from 2 to %u", text,
				 UINT32_MAX - 1);
			return -EINVAL;
		}
		if (parse_u32(last + 1, 1, UINT32_MAX - 1, &a->port)) {
			snprintf(err, errlen, "'%s': the port must be a number from 1 to %u", text,
				 UINT32_MAX - 1);
			return -EINVAL;
		}
		return 0;
	case ADDR_HVSOCK:
		last = strrchr(rest, ':');
		if (!last || (size_t)(last - rest) >= sizeof(buf)) {
			snprintf(err, errlen, "'%s': expected hvsock:/PATH:PORT", text);
			return -EINVAL;
		}
		memcpy(buf, rest, (size_t)(last - rest));
		buf[last - rest] = '\0';
		if (parse_path(buf, a->path, "hvsock", err, errlen))
			return -EINVAL;
		if (parse_u32(last + 1, 1, UINT32_MAX - 1, &a->port)) {
			snprintf(err, errlen, "'%s': the port must be a number from 1 to %u", text,
				 UINT32_MAX - 1);
			return -EINVAL;
		}
		return 0;
	case ADDR_SERIAL:
	case ADDR_UNIX:
		return parse_path(rest, a->path, addr_kind_names[a->kind], err, errlen);
	case ADDR_TCP:
		if (hostport_parse(rest, a->host, sizeof(a->host), &port16, 0, err, errlen))
			return -EINVAL;
		a->port = port16;
		return 0;
	case ADDR_KIND_COUNT:
		break;
	}
	snprintf(err, errlen, "'%s': unknown address kind", text);
	return -EINVAL;
}

int addr_format(const struct gaddr *a, char *buf, size_t len)
{
	switch (a->kind) {
	case ADDR_VSOCK:
		return snprintf(buf, len, "vsock:%u:%u", a->cid, a->port);
	case ADDR_HVSOCK:
		return snprintf(buf, len, "hvsock:%s:%u", a->path, a->port);
	case ADDR_SERIAL:
	case ADDR_UNIX:
		return snprintf(buf, len, "%s:%s", addr_kind_names[a->kind], a->path);
	case ADDR_TCP:
		return snprintf(buf, len, strchr(a->host, ':') ? "tcp:[%s]:%u" : "tcp:%s:%u",
				a->host, a->port);
	case ADDR_KIND_COUNT:
		break;
	}
	return snprintf(buf, len, "?");
}

int hostport_sockaddr(const char *host, uint16_t port, int passive, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char service[8];
	int rc;

	snprintf(service, sizeof(service), "%u", port);
	if (passive)
		hints.ai_flags |= AI_PASSIVE;
	/* A literal needs no look-up; a name does, and it blocks (names in /etc/hosts are quick). */
	hints.ai_flags |= AI_NUMERICHOST;
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc == EAI_NONAME) {
		hints.ai_flags &= ~AI_NUMERICHOST;
		hints.ai_flags |= AI_ADDRCONFIG;
		rc = getaddrinfo(host, service, &hints, &res);
	}
	if (rc)
		return rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -EAFNOSUPPORT;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int addr_sockaddr(const struct gaddr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	switch (a->kind) {
	case ADDR_VSOCK: {
		struct sockaddr_vm *vm = (struct sockaddr_vm *)ss;

		vm->svm_family = AF_VSOCK;
		vm->svm_cid = a->cid;
		vm->svm_port = a->port;
		*len = sizeof(*vm);
		return 0;
	}
	case ADDR_HVSOCK:
	case ADDR_SERIAL:
	case ADDR_UNIX: {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, a->path, strlen(a->path) + 1);
		*len = (socklen_t)sizeof(*un);
		return 0;
	}
	case ADDR_TCP:
		return hostport_sockaddr(a->host, (uint16_t)a->port, 0, ss, len);
	case ADDR_KIND_COUNT:
		break;
	}
	return -EINVAL;
}

void sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, buflen, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, buflen, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_VSOCK && len >= (socklen_t)sizeof(struct sockaddr_vm)) {
		const struct sockaddr_vm *vm = (const struct sockaddr_vm *)sa;

		snprintf(buf, buflen, "vsock:%u:%u", vm->svm_cid, vm->svm_port);
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(buf, buflen, "unix");
	} else {
		snprintf(buf, buflen, "?");
	}
}
