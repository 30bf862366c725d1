/* harness.c - start, watch and stop the real acceld for the integration tests. */
#include "config.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acceld/client.h"

#define READY_TIMEOUT_MS 60000

/* printf into a fresh string (aborts on exhaustion: this is a test). */
__attribute__((format(printf, 1, 2)))
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

/* Milliseconds of a monotonic clock. */
static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms milliseconds. */
static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Fork and exec argv with output to log; the child dies with its parent. */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0) {
			dup2(null, 0);
			close(null);
		}
		execv(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Run argv to completion. */
int harness_run(char *const argv[], const char *log)
{
	pid_t pid = spawn(argv, log);
	if (pid < 0)
		return -1;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A TCP port on 127.0.0.1 that was free a moment ago (0 if none). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* True if the daemon still runs (reaps it if it exited, keeping its status in *status). */
static bool alive(struct harness *h, int *status)
{
	if (!h->pid)
		return false;
	int st;
	pid_t r = waitpid(h->pid, &st, WNOHANG);
	if (r == h->pid) {
		if (status)
			*status = st;
		h->pid = 0;
		return false;
	}
	return true;
}

/* True if the daemon is still running. */
bool harness_running(struct harness *h)
{
	return alive(h, NULL);
}

/* Poll ServerReady on addr until true, the deadline passes or the daemon dies. */
static int wait_ready(struct harness *h, const char *addr, long long deadline)
{
	struct acc_client *c;
	struct acc_status st = { 0 };
	if (acc_client_connect(addr, &c, &st) < 0) {
		fprintf(stderr, "harness: %s: %s\n", addr, st.message);
		acc_status_clear(&st);
		return -1;
	}
	acc_client_set_timeout(c, 2000);
	int rc = -1;
	while (now_ms() < deadline && alive(h, NULL)) {
		bool ready = false;
		if (acc_client_server_ready(c, &ready, &st) == 0 && ready) {
			rc = 0;
			break;
		}
		sleep_ms(50);
	}
	if (rc < 0)
		fprintf(stderr, "harness: %s not ready: %s\n", addr,
			st.message ? st.message : "the daemon exited or reported not ready");
	acc_status_clear(&st);
	acc_client_close(c);
	return rc;
}

/* Start the daemon on a fresh port; 0, or -1 if it exited or did not become ready. */
static int start_daemon(struct harness *h)
{
	int port = free_port();
	if (!port) {
		fprintf(stderr, "harness: no free TCP port\n");
		return -1;
	}
	snprintf(h->tcp_addr, sizeof(h->tcp_addr), "127.0.0.1:%d", port);
	char *daemon = fmt("%s/daemon/acceld", h->builddir);
	char *argv[] = { daemon, "--listen", h->tcp_addr, "--listen", h->unix_addr,
			 "--model-repository", h->repo, "--log-level", "info", NULL };
	h->pid = spawn(argv, h->log);
	free(daemon);
	if (h->pid < 0) {
		h->pid = 0;
		return -1;
	}
	long long deadline = now_ms() + READY_TIMEOUT_MS;
	if (wait_ready(h, h->tcp_addr, deadline) < 0 || wait_ready(h, h->unix_addr, deadline) < 0)
		return -1;
	return 0;
}

/* Make the repository and start the daemon. */
int harness_start(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	const char *s = getenv("top_srcdir"), *b = getenv("top_builddir");
	h->srcdir = strdup(s ? s : ".");
	h->builddir = strdup(b ? b : ".");
	char *daemon = fmt("%s/daemon/acceld", h->builddir);
	int ok = access(daemon, X_OK);
	free(daemon);
	if (ok < 0) {
		fprintf(stderr, "harness: %s/daemon/acceld is not built\n", h->builddir);
		return -1;
	}
	const char *tmp = getenv("TMPDIR");
	h->dir = fmt("%s/acceld-it-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(h->dir)) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", h->dir, strerror(errno));
		free(h->dir);
		h->dir = NULL;
		return -1;
	}
	h->repo = fmt("%s/models", h->dir);
	h->expected = fmt("%s/expected.json", h->dir);
	h->log = fmt("%s/acceld.log", h->dir);
	snprintf(h->unix_addr, sizeof(h->unix_addr), "unix:%s/acceld.sock", h->dir);

	const char *py = getenv("PYTHON3");
	char *python = strdup(py && *py ? py : "/usr/bin/python3");
	if (access(python, X_OK) < 0) {
		fprintf(stderr, "harness: %s not found: skipping\n", python);
		free(python);
		return HARNESS_SKIP;
	}
	char *gen = fmt("%s/tests/integration/make_test_models.py", h->srcdir);
	char *examples = fmt("%s/conf/models", h->srcdir);
	char *gargv[] = { python, gen, "--out", h->repo, "--expected", h->expected,
			  "--examples", examples, NULL };
	int rc = harness_run(gargv, NULL);
	free(python);
	free(gen);
	free(examples);
	if (rc == HARNESS_SKIP)
		return HARNESS_SKIP;
	if (rc != 0) {
		fprintf(stderr, "harness: make_test_models.py failed (%d)\n", rc);
		return -1;
	}

	/* The port may be taken between probing and binding: try a few. */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (start_daemon(h) == 0)
			return 0;
		if (harness_running(h))
			break; /* running but not ready: a real failure, not a port race */
	}
	fprintf(stderr, "harness: the daemon did not start; its log:\n");
	harness_dump_log(h, stderr, 60);
	return -1;
}

/* Signal the daemon and wait for it. */
int harness_stop(struct harness *h, int sig, int timeout_ms, int *status)
{
	if (!h->pid)
		return -1;
	kill(h->pid, sig);
	long long deadline = now_ms() + timeout_ms;
	while (now_ms() < deadline) {
		if (!alive(h, status))
			return 0;
		sleep_ms(10);
	}
	return -1;
}

/* Print the tail of the daemon's log. */
void harness_dump_log(const struct harness *h, FILE *f, int lines)
{
	if (!h->log)
		return;
	FILE *in = fopen(h->log, "r");
	if (!in)
		return;
	char **ring = calloc((size_t)lines, sizeof(char *));
	char buf[4096];
	long n = 0;
	while (fgets(buf, sizeof(buf), in)) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(buf);
		n++;
	}
	fclose(in);
	fprintf(f, "---- acceld log (%s, last %d lines) ----\n", h->log, lines);
	for (long i = n > lines ? n - lines : 0; i < n; i++)
		fputs(ring[i % lines], f);
	fprintf(f, "---- end of acceld log ----\n");
	for (int i = 0; i < lines; i++)
		free(ring[i]);
	free(ring);
}

/* nftw callback: remove one entry. */
static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	(type == FTW_DP ? rmdir : unlink)(path);
	return 0;
}

/* Kill, remove, free. */
void harness_cleanup(struct harness *h)
{
	if (h->pid) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		h->pid = 0;
	}
	if (h->dir && !getenv("ACCELD_TEST_KEEP"))
		nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(h->dir);
	free(h->repo);
	free(h->expected);
	free(h->log);
	free(h->srcdir);
	free(h->builddir);
	memset(h, 0, sizeof(*h));
}
