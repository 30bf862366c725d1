/* log.c - one line per message to stderr; journal priority prefixes under systemd. */
#include "config.h"
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level threshold = LOG_LVL_INFO;
static int use_prefix;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* True when stderr is the journal stream systemd gave us (JOURNAL_STREAM=dev:ino). */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Configure logging. */
void log_init(enum log_level level, int force_prefix)
{
	threshold = level;
	use_prefix = force_prefix || stderr_is_journal();
}

/* Parse a level name. */
int log_level_parse(const char *s, enum log_level *out)
{
	static const struct { const char *n; enum log_level l; } names[] = {
		{ "error", LOG_LVL_ERR }, { "err", LOG_LVL_ERR }, { "warning", LOG_LVL_WARN },
		{ "warn", LOG_LVL_WARN }, { "notice", LOG_LVL_NOTICE }, { "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};
	for (size_t i = 0; s && i < ACC_ARRAY_LEN(names); i++)
		if (strcmp(s, names[i].n) == 0) {
			*out = names[i].l;
			return 0;
		}
	return -22;
}

/* Current threshold. */
enum log_level log_get_level(void)
{
	return threshold;
}

/* Emit one formatted line. */
static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const char *tags[] = { "", "", "", "error", "warning", "notice", "info", "debug" };
	if (lvl > threshold)
		return;
	char *msg = xvasprintf(fmt, ap);
	pthread_mutex_lock(&log_lock);
	if (use_prefix) {
		fprintf(stderr, "<%d>%s\n", (int)lvl, msg);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		fprintf(stderr, "%02d:%02d:%02d.%03ld acceld %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
			ts.tv_nsec / 1000000, tags[lvl], msg);
	}
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
	free(msg);
}

/* Log one line. */
void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

/* Log and exit. */
void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
