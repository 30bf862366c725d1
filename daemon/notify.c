/* notify.c - sd_notify wrappers. */
#include "config.h"
#include "notify.h"

#include <systemd/sd-daemon.h>

#include <unistd.h>

#include "util.h"

/* Ready with a status line. */
void notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", status, (unsigned long)getpid());
}

/* Reloading, then ready. */
void notify_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

/* Stopping. */
void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

/* Half the watchdog period. */
uint64_t notify_watchdog_interval_us(void)
{
	uint64_t us = 0;
	if (sd_watchdog_enabled(0, &us) > 0)
		return us / 2;
	return 0;
}

/* Ping. */
void notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
