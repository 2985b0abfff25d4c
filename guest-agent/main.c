/* gmig-agent's command line: options over the config file over the defaults, then the daemon runs. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "log.h"

#define EXIT_USAGE	2	/* bad option, bad config */
#define MAX_OVERRIDES	32

enum { OPT_VSOCK = 256, OPT_SERIAL, OPT_UNIX, OPT_CLIENT, OPT_SIM, OPT_LEVEL };

/* Each option that overrides a config key, by the key's name. */
static const struct {
	int opt;
	const char *key;
} opt_keys[] = {
	{ OPT_VSOCK, "vsock_port" },
	{ OPT_SERIAL, "serial" },
	{ OPT_UNIX, "unix" },
	{ OPT_CLIENT, "client_socket" },
	{ OPT_SIM, "sim_dir" },
	{ OPT_LEVEL, "log_level" },
};

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "vsock-port", required_argument, NULL, OPT_VSOCK },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "unix", required_argument, NULL, OPT_UNIX },
	{ "client-socket", required_argument, NULL, OPT_CLIENT },
	{ "sim-dir", required_argument, NULL, OPT_SIM },
	{ "log-level", required_argument, NULL, OPT_LEVEL },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	const struct config_key_info *keys;
	size_t n;

	fprintf(f,
		"Usage: gmig-agent [OPTION]...\n"
		"The gmig guest agent: serves GPU programs (libgmig) on a unix socket and the host\n"
		"(gmigd) on vsock, virtio-serial or a unix socket, with gmig frames and QGA-style\n"
		"JSON commands (gmig-inventory, gmig-status, gmig-freeze, gmig-thaw, guest-*).\n"
		"\n"
		"  -c, --config FILE        config file (default " CONFIG_DEFAULT_PATH ";\n"
		"                           a missing default file is fine)\n"
		"      --vsock-port N       vsock port of the host channel; 0: off\n"
		"      --serial PATH        virtio-serial port of the host channel\n"
		"      --unix PATH          unix socket of the host channel\n"
		"      --client-socket PATH where GPU programs connect\n"
		"      --sim-dir DIR        where simulated GPUs are found\n"
		"      --log-level LEVEL    error, warn, info or debug\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n"
		"\n"
		"Options override the config file. Config keys and defaults:\n");
	keys = config_keys(&n);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %-20s %-22s %s\n", keys[i].name,
			keys[i].def[0] ? keys[i].def : "(empty)", keys[i].doc);
	fprintf(f, "\nLogs go to stderr. See gmig-agent(8).\n");
}

int main(int argc, char **argv)
{
	struct { const char *key, *value; } over[MAX_OVERRIDES];
	const char *config = CONFIG_DEFAULT_PATH;
	char err[CONFIG_ERR_MAX];
	struct agent_config cfg;
	struct agent *a;
	bool explicit = false;
	int nover = 0, opt, rc;

	/*
	 * Frames of up to 4 MiB pass through the host buffer all the time. Keep the
	 * memory they free instead of handing it back to the kernel: faulting it in
	 * again costs more than copying the bytes (3 to 8 times the pre-copy rate on
	 * a virtual machine, see docs/performance.md). The buffer's cap bounds it.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_TOP_PAD, 16 << 20);

	while ((opt = getopt_long(argc, argv, "c:hV", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			explicit = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("gmig-agent %s\n", GMIG_AGENT_VERSION);
			return 0;
		case '?':
			usage(stderr);
			return EXIT_USAGE;
		default:
			if (nover == MAX_OVERRIDES) {
				fprintf(stderr, "gmig-agent: too many options\n");
				return EXIT_USAGE;
			}
			for (size_t i = 0; i < sizeof(opt_keys) / sizeof(opt_keys[0]); i++) {
				if (opt_keys[i].opt == opt) {
					over[nover].key = opt_keys[i].key;
					over[nover].value = optarg;
					nover++;
				}
			}
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gmig-agent: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}

	config_defaults(&cfg);
	rc = config_load(&cfg, config, explicit, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "gmig-agent: %s\n", err);
		return EXIT_USAGE;
	}
	for (int i = 0; i < nover; i++) {
		if (config_set(&cfg, over[i].key, over[i].value, err, sizeof(err))) {
			fprintf(stderr, "gmig-agent: option: %s\n", err);
			return EXIT_USAGE;
		}
	}
	if (config_check(&cfg, err, sizeof(err))) {
		fprintf(stderr, "gmig-agent: %s\n", err);
		return EXIT_USAGE;
	}

	a = agent_new(&cfg);
	if (!a)
		return 1;
	rc = agent_run(a);
	agent_free(a);
	return rc;
}
