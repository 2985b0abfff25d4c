/* Process and scratch-directory helpers for the integration tests. */
#ifndef GMIG_TEST_PROCS_H
#define GMIG_TEST_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

/* A scratch directory under /dev/shm with two simulated GPUs, gmig-sim-0 and gmig-sim-1. */
struct scratch {
	char dir[64];
	char dev[2][128];
	char host_sock[128], client_sock[128];
};

void scratch_make(struct scratch *s, unsigned dev_mb);
void scratch_remove(struct scratch *s);

/*
 * Starts argv[0] with extra environment entries ("K=V", NULL-terminated) and
 * stdout sent to out_path (or inherited when NULL).
 */
pid_t spawn(char *const argv[], char *const env[], const char *out_path);
/* Waits for pid; returns its exit status, or 128 + signal. */
int reap(pid_t pid);
/* Waits until path exists, at most ms milliseconds. */
bool wait_for_path(const char *path, int ms);
/* Starts gmig-agent ($GMIG_AGENT_BIN) on the scratch directory's sockets and devices. */
pid_t start_agent(const struct scratch *s);
/* Reads a file into a NUL-terminated malloc'd string. */
char *slurp(const char *path);

#endif
