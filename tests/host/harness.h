/*
 * The rig of the host integration tests: a scratch directory with two simulated GPUs, a real
 * gmig-agent, gmigd processes, the checkable sim program, and a small client for gmigd's
 * control socket. Every wait has a timeout; every process dies with the test.
 */
#ifndef GMIG_TEST_HARNESS_H
#define GMIG_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

#define RIG_WAIT_MS	60000	/* the longest any test waits for a job */

struct daemon {
	pid_t pid;
	char name[16];
	char sock[128];		/* its control socket */
	char log[160];		/* its stderr */
	uint16_t port;		/* its peer port, 0 when it takes no migrations */
};

struct rig {
	char dir[64];
	char dev[2][128];
	char agent_sock[128], client_sock[128];
	char secret[128];
	pid_t agent;
	char agent_log[160];
	struct daemon src, dst;
	pid_t prog;
	char prog_out[160];
	char ref_out[160];
};

/*
 * Unchecked fixtures, run in the test runner's process: a base directory that each test's
 * scratch directory lives in, removed whole afterwards, however the tests ended.
 */
void rig_base_setup(void);
void rig_base_teardown(void);

/* Makes the scratch directory (devices of @dev_mb MiB), the secret, and starts the agent. */
void rig_setup(struct rig *r, unsigned int dev_mb);
/* Stops everything it started and removes the directory. */
void rig_teardown(struct rig *r);

/*
 * Starts a gmigd named @name; @listen gives it a peer port. @secret is the peer secret file
 * (NULL: the rig's). @sets are extra "key=value" settings, NULL-terminated (may be NULL).
 */
void rig_daemon(struct rig *r, struct daemon *dm, const char *name, bool listen,
		const char *secret, const char *const *sets);
/* SIGTERM; returns its exit status (128 + signal if it died of one). */
int rig_daemon_stop(struct daemon *dm);
/* SIGKILL, now (from any thread). */
void rig_daemon_kill(struct daemon *dm);
/* Prints a daemon's log to stderr (for a failing test). */
void rig_dump(const char *path);

/*
 * Starts gmig-simprog on GPU 0 with --steps @steps --step-ms @step_ms --memory @mem_mb, and
 * --kernel-ms @kernel_ms; its output goes to r->prog_out. GMIG_DISABLE=1 when @disabled.
 */
pid_t rig_program(struct rig *r, const char *out, bool disabled, unsigned int steps,
		  unsigned int step_ms, unsigned int mem_mb, unsigned int kernel_ms);
/* The unmigrated run's output for the same arguments (timing does not change it). */
char *rig_reference(struct rig *r, unsigned int steps, unsigned int mem_mb);
/* Waits for a process; its exit status, or 128 + signal. */
int rig_reap(pid_t pid, int timeout_ms);

/* One control command; the "return" value, or NULL with the error's text in @err. */
struct json_object *ctl_call(const char *sock, const char *cmd, struct json_object *args,
			     char *err, size_t errlen);
/* A command that must succeed. */
struct json_object *ctl_ok(const char *sock, const char *cmd, struct json_object *args);
/* Starts a job; its id. */
uint32_t ctl_job(const char *sock, const char *cmd, struct json_object *args);
/* Waits until the job ends; its status with the report. */
struct json_object *ctl_wait(const char *sock, uint32_t id);
/* Waits until the job reaches a state named @state (or ends); true when it got there. */
bool ctl_wait_state(const char *sock, uint32_t id, const char *state, int timeout_ms);
/* Waits until @guest has @n programs, as the agent reports them. */
void ctl_wait_clients(const char *sock, const char *guest, unsigned int n);

/* json helpers */
const char *js(struct json_object *o, const char *path);	/* "report.result" */
int64_t ji(struct json_object *o, const char *path);
double jd(struct json_object *o, const char *path);

/* Output minus the "pointers" lines, checking both are equal; modifies @out. */
char *results_of(char *out);
/* Fails unless @got's results equal @ref's. */
void assert_same_results(char *got, char *ref);
/* Reads a file into a NUL-terminated malloc'd string. */
char *slurp_file(const char *path);

/* Granules of simulated GPU @dev (0 or 1) that process @pid owns (simdev.h's owner table). */
unsigned int rig_granules(struct rig *r, int dev, pid_t pid);

/* Fails unless the running program holds granules on GPU @on only (skipped once it ended). */
void rig_check_gpu(struct rig *r, int on);

/* Runs gmigctl with @argv (NULL-terminated, argv[0] ignored); its exit status; output in @out. */
int run_gmigctl(const char *const *argv, char *out, size_t outlen);

#endif
