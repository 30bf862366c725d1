/* notify.h - systemd integration: readiness, status text and the watchdog (sd_notify).
 * Every function is a no-op when not started by systemd (NOTIFY_SOCKET unset). */
#ifndef ACC_NOTIFY_H
#define ACC_NOTIFY_H

#include <stdint.h>

/* Tell systemd the daemon is serving, with a status line. */
void notify_ready(const char *status);
/* Tell systemd the daemon is reloading (SIGHUP) and then ready again. */
void notify_reloading(void);
/* Tell systemd the daemon is stopping. */
void notify_stopping(void);
/* The watchdog period systemd asks for, halved (microseconds), or 0 if none. */
uint64_t notify_watchdog_interval_us(void);
/* Ping the watchdog. */
void notify_watchdog(void);

#endif
