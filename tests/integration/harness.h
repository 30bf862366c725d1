/* harness.h - run the real acceld for a black-box test: temporary repository, free TCP port,
 * Unix socket, readiness wait, shutdown.
 *
 * The daemon is started with PR_SET_PDEATHSIG, so it dies with the test process even when
 * the test crashes; harness_cleanup kills it if it still runs and removes the directory.
 */
#ifndef ACC_TEST_HARNESS_H
#define ACC_TEST_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#define HARNESS_SKIP 77

struct harness {
	char *srcdir, *builddir;
	char *dir;      /* temporary directory, removed by harness_cleanup */
	char *repo;     /* dir/models: the model repository */
	char *expected; /* dir/expected.json: reference values written by the generator */
	char *log;      /* dir/acceld.log: the daemon's stderr */
	char tcp_addr[64];
	char unix_addr[4200];
	pid_t pid; /* 0 when not running */
};

/* Make the repository (make_test_models.py) and start the daemon until it is ready on both
 * addresses. 0, HARNESS_SKIP if python3-onnx is missing, or -1 with a message on stderr. */
int harness_start(struct harness *h);
/* Send sig to the daemon and wait up to timeout_ms for it to exit; 0 and *status (as
 * waitpid gives it) if it did, -1 if it is still running. */
int harness_stop(struct harness *h, int sig, int timeout_ms, int *status);
/* True if the daemon process is still running. */
bool harness_running(struct harness *h);
/* Print the last lines of the daemon's log to f. */
void harness_dump_log(const struct harness *h, FILE *f, int lines);
/* Kill the daemon if running (SIGKILL), remove the directory, free the strings. */
void harness_cleanup(struct harness *h);
/* Run argv (argv[0] a path) with stdout and stderr appended to log (NULL: inherited); wait
 * for it and return its exit status, or -1 if it could not be run or was killed. */
int harness_run(char *const argv[], const char *log);

#endif
