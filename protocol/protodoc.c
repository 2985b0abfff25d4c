/*
 * gmig-protodoc: writes the message tables of docs/protocol.md from the
 * catalogue, and checks that the document has not drifted from the code.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmig/message.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MARK_BEGIN "<!-- gmig-protodoc:begin "
#define MARK_END "<!-- gmig-protodoc:end "

struct text {
	char *s;
	size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->s ? t->s + t->len : NULL, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if (t->len + (size_t)n < t->cap)
			break;
		t->cap = (t->cap + (size_t)n) * 2 + 256;
		t->s = realloc(t->s, t->cap);
		if (!t->s) {
			perror("gmig-protodoc");
			exit(2);
		}
	}
	t->len += (size_t)n;
}

static const char *kind_name(enum gmig_kind k)
{
	static const char *const names[] = {
		"u8", "u16", "u32", "u64", "i32", "uuid", "token", "mac", "str16", "str32", "str64",
	};
	return names[k];
}

static void length_rule(struct text *t, const struct gmig_schema_info *s)
{
	switch (s->tail) {
	case GMIG_TAIL_NONE:
		put(t, "= %u", s->fixed);
		break;
	case GMIG_TAIL_BYTES:
		put(t, "%u + n, n ≤ %u", s->fixed, s->tail_max);
		break;
	case GMIG_TAIL_RECORDS:
		put(t, "%u + %u·k, k ≤ %u", s->fixed, s->record->fixed, s->tail_max);
		break;
	}
}

static void gen_messages(struct text *t)
{
	size_t n;
	const struct gmig_msg_info *m = gmig_msg_table(&n);

	put(t, "| type | message | family | payload length | meaning |\n");
	put(t, "| --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < n; i++) {
		put(t, "| 0x%04x | [%s](#%s) | %s | ", m[i].type, m[i].name, m[i].name, m[i].family);
		length_rule(t, m[i].schema);
		put(t, " | %s |\n", m[i].doc);
	}
}

static void field_rows(struct text *t, const struct gmig_schema_info *s)
{
	unsigned off = 0;

	for (unsigned i = 0; i < s->nfields; i++) {
		const struct gmig_field_info *f = &s->fields[i];

		put(t, "| %u | %s | %s | %s |\n", off, f->name, kind_name(f->kind), f->doc);
		off += f->wire;
	}
}

static void gen_fields(struct text *t)
{
	size_t n;
	const struct gmig_msg_info *m = gmig_msg_table(&n);

	for (size_t i = 0; i < n; i++) {
		const struct gmig_schema_info *s = m[i].schema;

		put(t, "%s<a id=\"%s\"></a>\n#### %s (0x%04x)\n\n%c%s. Payload length ",
		    i ? "\n" : "", m[i].name, m[i].name, m[i].type, toupper((unsigned char)m[i].doc[0]),
		    m[i].doc + 1);
		length_rule(t, s);
		put(t, ".\n\n");
		if (!s->nfields && s->tail == GMIG_TAIL_NONE) {
			put(t, "No fields.\n");
			continue;
		}
		put(t, "| offset | field | kind | meaning |\n| --- | --- | --- | --- |\n");
		field_rows(t, s);
		if (s->tail == GMIG_TAIL_BYTES)
			put(t, "| %u | %s | bytes | tail, at most %u bytes |\n", s->fixed, s->tail_name,
			    s->tail_max);
		else if (s->tail == GMIG_TAIL_RECORDS)
			put(t, "| %u | %s | %s[k] | tail, at most %u records |\n", s->fixed,
			    s->tail_name, s->record->name, s->tail_max);
	}
}

static void gen_records(struct text *t)
{
	size_t n;
	const struct gmig_schema_info *r = gmig_record_table(&n);

	for (size_t i = 0; i < n; i++) {
		put(t, "%s#### record %s (%u bytes)\n\n", i ? "\n" : "", r[i].name, r[i].fixed);
		put(t, "| offset | field | kind | meaning |\n| --- | --- | --- | --- |\n");
		field_rows(t, &r[i]);
	}
}

struct enum_row {
	const char *name;
	unsigned long value;
	const char *doc;
};

#define ROW(name, value, doc) { #name, value, doc },
static const struct enum_row roles[] = { GMIG_ROLES(ROW) };
static const struct enum_row phases[] = { GMIG_PHASES(ROW) };
static const struct enum_row encodings[] = { GMIG_ENCODINGS(ROW) };
static const struct enum_row backends[] = { GMIG_BACKENDS(ROW) };
static const struct enum_row caps[] = { GMIG_CAPS(ROW) };
#undef ROW

static void enum_table(struct text *t, const char *title, const struct enum_row *rows,
		       size_t n, int hex)
{
	put(t, "%s| %s | value | meaning |\n| --- | --- | --- |\n", t->len ? "\n" : "", title);
	for (size_t i = 0; i < n; i++)
		put(t, hex ? "| %s | 0x%lx | %s |\n" : "| %s | %lu | %s |\n", rows[i].name,
		    rows[i].value, rows[i].doc);
}

static void gen_enums(struct text *t)
{
	enum_table(t, "role", roles, ARRAY_SIZE(roles), 0);
	enum_table(t, "phase", phases, ARRAY_SIZE(phases), 0);
	enum_table(t, "encoding", encodings, ARRAY_SIZE(encodings), 0);
	enum_table(t, "backend", backends, ARRAY_SIZE(backends), 0);
	enum_table(t, "capability bit", caps, ARRAY_SIZE(caps), 1);
}

static void gen_limits(struct text *t)
{
	static const struct {
		const char *name;
		unsigned long value;
	} limits[] = {
		{ "GMIG_HDR_SIZE", GMIG_HDR_SIZE },
		{ "GMIG_PAYLOAD_MAX", GMIG_PAYLOAD_MAX },
		{ "GMIG_DATA_MAX", GMIG_DATA_MAX },
		{ "GMIG_TEXT_MAX", GMIG_TEXT_MAX },
		{ "GMIG_BLOB_MAX", GMIG_BLOB_MAX },
		{ "GMIG_ADDR_MAX", GMIG_ADDR_MAX },
		{ "GMIG_GPUS_MAX", GMIG_GPUS_MAX },
		{ "GMIG_REGIONS_MAX", GMIG_REGIONS_MAX },
		{ "GMIG_MANIFEST_MAX", GMIG_MANIFEST_MAX },
		{ "GMIG_SLOTS_MAX", GMIG_SLOTS_MAX },
		{ "GMIG_QGA_LINE_MAX", GMIG_QGA_LINE_MAX },
		{ "GMIG_CHUNK_MIN", GMIG_CHUNK_MIN },
		{ "GMIG_CHUNK_DEFAULT", GMIG_CHUNK_DEFAULT },
		{ "GMIG_CHUNK_MAX", GMIG_CHUNK_MAX },
		{ "GMIG_VERSION_MIN", GMIG_VERSION_MIN },
		{ "GMIG_VERSION_MAX", GMIG_VERSION_MAX },
	};

	put(t, "| limit | value |\n| --- | --- |\n");
	for (size_t i = 0; i < ARRAY_SIZE(limits); i++)
		put(t, "| %s | %lu |\n", limits[i].name, limits[i].value);
}

static void gen_errors(struct text *t)
{
	static const struct {
		int err;
		const char *name;
	} errs[] = {
		{ -EILSEQ, "-EILSEQ" },
		{ -EPROTONOSUPPORT, "-EPROTONOSUPPORT" },
		{ -EPROTO, "-EPROTO" },
		{ -ENOMSG, "-ENOMSG" },
		{ -EMSGSIZE, "-EMSGSIZE" },
		{ -ERANGE, "-ERANGE" },
		{ -EBADMSG, "-EBADMSG" },
	};

	put(t, "| error | meaning |\n| --- | --- |\n");
	for (size_t i = 0; i < ARRAY_SIZE(errs); i++)
		put(t, "| %s | %s |\n", errs[i].name, gmig_proto_strerror(errs[i].err));
}

static const struct {
	const char *name;
	void (*gen)(struct text *t);
} sections[] = {
	{ "messages", gen_messages },
	{ "fields", gen_fields },
	{ "records", gen_records },
	{ "enums", gen_enums },
	{ "limits", gen_limits },
	{ "errors", gen_errors },
};

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = 0;
		*len = (size_t)n;
	}
	return buf;
}

/* Rebuilds doc with every generated section replaced; counts sections that differ. */
static int regenerate(const char *doc, struct text *out, int *drifted)
{
	bool seen[ARRAY_SIZE(sections)] = { false };
	const char *p = doc, *b;
	int rc = 0;

	*drifted = 0;
	while ((b = strstr(p, MARK_BEGIN))) {
		const char *name = b + strlen(MARK_BEGIN), *body, *e;
		size_t nlen = strcspn(name, " \n");
		char end[128];
		struct text gen = { 0 };
		size_t i;

		for (i = 0; i < ARRAY_SIZE(sections); i++)
			if (strlen(sections[i].name) == nlen && !memcmp(sections[i].name, name, nlen))
				break;
		if (i == ARRAY_SIZE(sections)) {
			fprintf(stderr, "gmig-protodoc: unknown section '%.*s'\n", (int)nlen, name);
			return -1;
		}
		body = strchr(b, '\n');
		snprintf(end, sizeof(end), MARK_END "%s -->", sections[i].name);
		e = body ? strstr(body, end) : NULL;
		if (!e || seen[i]) {
			fprintf(stderr, "gmig-protodoc: section '%s' is unterminated or repeated\n",
				sections[i].name);
			return -1;
		}
		seen[i] = true;
		body++;
		sections[i].gen(&gen);
		if ((size_t)(e - body) != gen.len || memcmp(body, gen.s, gen.len)) {
			fprintf(stderr, "gmig-protodoc: section '%s' differs from the catalogue\n",
				sections[i].name);
			(*drifted)++;
		}
		put(out, "%.*s%s", (int)(body - p), p, gen.s);
		free(gen.s);
		p = e;
	}
	put(out, "%s", p);
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
		if (!seen[i]) {
			fprintf(stderr, "gmig-protodoc: section '%s' is missing its markers\n",
				sections[i].name);
			rc = -1;
		}
	}
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmig-protodoc [--check FILE | --update FILE | --print]\n"
		"Writes the tables of docs/protocol.md from the gmig message catalogue.\n"
		"  --check FILE   exit 1 if FILE's generated sections differ from the code\n"
		"  --update FILE  rewrite FILE's generated sections in place\n"
		"  --print        print every generated section\n"
		"  --help         show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check", required_argument, NULL, 'c' },
		{ "update", required_argument, NULL, 'u' },
		{ "print", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	int mode = 0, c, drifted, rc;
	struct text out = { 0 };
	size_t len;
	char *doc;
	FILE *f;

	while ((c = getopt_long(argc, argv, "c:u:ph", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
		case 'u':
			path = optarg;
			mode = c;
			break;
		case 'p':
			mode = c;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!mode || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (mode == 'p') {
		for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
			struct text gen = { 0 };

			sections[i].gen(&gen);
			printf("%s%s", i ? "\n" : "", gen.s);
			free(gen.s);
		}
		return 0;
	}

	doc = read_file(path, &len);
	if (!doc) {
		fprintf(stderr, "gmig-protodoc: cannot read %s: %s\n", path, strerror(errno));
		return 2;
	}
	rc = regenerate(doc, &out, &drifted) ? 1 : 0;
	free(doc);
	if (rc)
		goto out;
	if (mode == 'c') {
		if (drifted)
			fprintf(stderr, "gmig-protodoc: %s is stale; run gmig-protodoc --update %s\n",
				path, path);
		rc = drifted ? 1 : 0;
		goto out;
	}
	if (drifted) {
		f = fopen(path, "wb");
		if (!f || fwrite(out.s, 1, out.len, f) != out.len || fclose(f)) {
			fprintf(stderr, "gmig-protodoc: cannot write %s: %s\n", path, strerror(errno));
			rc = 2;
		}
	}
out:
	free(out.s);
	return rc;
}
