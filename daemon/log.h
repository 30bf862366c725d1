/* log.h - the one logging module: stderr, with journal priority prefixes under systemd. */
#ifndef ACC_LOG_H
#define ACC_LOG_H

#include "util.h"

enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARN = 4, LOG_LVL_NOTICE = 5, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/* Configure logging: level threshold; journal prefixes ("<3>") are used when stderr is the
 * journal (JOURNAL_STREAM matches) or when force_prefix is set. Safe to call again. */
void log_init(enum log_level level, int force_prefix);
/* Parse "error", "warning", "notice", "info", "debug"; -EINVAL for anything else. */
int log_level_parse(const char *s, enum log_level *out);
/* Current threshold. */
enum log_level log_get_level(void);
/* Write one line at the given level (thread-safe; messages above the threshold are dropped). */
void log_msg(enum log_level lvl, const char *fmt, ...) ACC_PRINTF(2, 3);
/* Route libevent's and gRPC core's own logs into this module (call once at start-up). */
void log_route_libraries(void);

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Log at error level and exit(1): only at start-up or for broken invariants. */
void fatal(const char *fmt, ...) ACC_PRINTF(1, 2) __attribute__((noreturn));

#endif
