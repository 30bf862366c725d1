/* log_libs.c - route libevent's and gRPC core's logs into log.c. */
#include "config.h"
#include "log.h"

#include <event2/event.h>
#include <grpc/support/log.h>

/* libevent severity to ours. */
static void libevent_log(int severity, const char *msg)
{
	enum log_level l = severity == EVENT_LOG_ERR ? LOG_LVL_ERR
			   : severity == EVENT_LOG_WARN ? LOG_LVL_WARN
			   : severity == EVENT_LOG_MSG	? LOG_LVL_INFO
							: LOG_LVL_DEBUG;
	log_msg(l, "libevent: %s", msg);
}

/* gRPC severity to ours. */
static void grpc_log(gpr_log_func_args *a)
{
	enum log_level l = a->severity == GPR_LOG_SEVERITY_ERROR ? LOG_LVL_ERR
			   : a->severity == GPR_LOG_SEVERITY_INFO ? LOG_LVL_DEBUG
								   : LOG_LVL_DEBUG;
	log_msg(l, "grpc: %s", a->message);
}

/* Install both callbacks. */
void log_route_libraries(void)
{
	event_set_log_callback(libevent_log);
	gpr_set_log_function(grpc_log);
	gpr_set_log_verbosity(log_get_level() >= LOG_LVL_DEBUG ? GPR_LOG_SEVERITY_DEBUG
							      : GPR_LOG_SEVERITY_ERROR);
}
