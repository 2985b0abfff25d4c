/* gmigd: the host daemon of gmig; options, the config file, and the daemon's life. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"

static void usage(FILE *f)
{
	size_t n;
	const struct config_key_info *k = config_keys(&n);

	fprintf(f,
		"usage: gmigd [OPTION]...\n"
		"The gmig host daemon: live migration of the GPU state of KVM/QEMU guests.\n"
		"It talks to each guest's gmig-agent, migrates to and from other gmigds over\n"
		"TCP, writes and reads checkpoint files, and answers gmigctl on its control\n"
		"socket.\n"
		"\n"
		"  -c, --config FILE        config file (default " CONFIG_DEFAULT_PATH "; a missing\n"
		"                           default file is fine)\n"
		"  -s, --set KEY=VALUE      set a config key, after the file (may repeat)\n"
		"  -C, --control-socket P   the control socket (control_socket)\n"
		"  -p, --peer-listen ADDR   HOST:PORT to take migrations in on, '' for off (peer_listen)\n"
		"  -S, --secret-file FILE   the peer secret (peer_secret_file)\n"
		"  -l, --log-level LEVEL    error, warn, info or debug (log_level)\n"
		"  -t, --check-config       check the configuration and exit\n"
		"  -h, --help               show this help\n"
		"  -V, --version            show the version\n"
		"\n"
		"Config keys (KEY = VALUE lines; guest.NAME = ADDRESS names a guest):\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %-20s %-22s %s\n", k[i].name, k[i].def[0] ? k[i].def : "''", k[i].doc);
	fprintf(f, "\nGuest addresses: vsock:CID:PORT, hvsock:/PATH:PORT, serial:/PATH, unix:/PATH,\n"
		"tcp:HOST:PORT. See gmigd(8) and gmigctl(1).\n");
}

struct override {
	char *key, *value;
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "control-socket", required_argument, NULL, 'C' },
		{ "peer-listen", required_argument, NULL, 'p' },
		{ "secret-file", required_argument, NULL, 'S' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static struct gmigd_config cfg;
	struct override *ov;
	const char *config = CONFIG_DEFAULT_PATH;
	char err[CONFIG_ERR_MAX];
	bool explicit_config = false, check = false;
	struct gmigd *d;
	int c, nov = 0, rc;

	ov = calloc((size_t)argc, sizeof(*ov));
	if (!ov)
		return 1;
	/*
	 * Frames of up to 4 MiB stream through the guest and peer buffers: keep the
	 * memory they free rather than fault it in again for the next one (on a
	 * virtual machine that costs more than the copy; see docs/performance.md).
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_TOP_PAD, 16 << 20);

	while ((c = getopt_long(argc, argv, "c:s:C:p:S:l:thV", opts, NULL)) != -1) {
		char *eq;

		switch (c) {
		case 'c':
			config = optarg;
			explicit_config = true;
			break;
		case 's':
			eq = strchr(optarg, '=');
			if (!eq) {
				fprintf(stderr, "gmigd: --set wants KEY=VALUE, not '%s'\n", optarg);
				free(ov);
				return 2;
			}
			*eq = '\0';
			ov[nov++] = (struct override){ optarg, eq + 1 };
			break;
		case 'C':
			ov[nov++] = (struct override){ "control_socket", optarg };
			break;
		case 'p':
			ov[nov++] = (struct override){ "peer_listen", optarg };
			break;
		case 'S':
			ov[nov++] = (struct override){ "peer_secret_file", optarg };
			break;
		case 'l':
			ov[nov++] = (struct override){ "log_level", optarg };
			break;
		case 't':
			check = true;
			break;
		case 'h':
			usage(stdout);
			free(ov);
			return 0;
		case 'V':
			printf("gmigd %s\n", GMIGD_VERSION);
			free(ov);
			return 0;
		default:
			usage(stderr);
			free(ov);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "gmigd: unexpected argument '%s'\n", argv[optind]);
		free(ov);
		return 2;
	}

	config_defaults(&cfg);
	rc = config_load(&cfg, config, explicit_config, err, sizeof(err));
	for (int i = 0; !rc && i < nov; i++) {
		rc = config_set(&cfg, ov[i].key, ov[i].value, err, sizeof(err));
	}
	free(ov);
	if (!rc)
		rc = config_check(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "gmigd: %s\n", err);
		return 2;
	}
	if (check) {
		printf("gmigd: the configuration is valid\n");
		return 0;
	}
	log_set_level((enum log_level)cfg.log_level);
	/* A peer that goes away must not kill the daemon on its next write. */
	signal(SIGPIPE, SIG_IGN);

	d = gmigd_new(&cfg);
	if (!d)
		return 1;
	rc = gmigd_run(d);
	gmigd_free(d);
	return rc;
}
