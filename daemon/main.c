/* main.c - acceld: start-up order, signals, the main loop, shutdown. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "device.h"
#include "log.h"
#include "notify.h"
#include "repo.h"
#include "rpc.h"
#include "settings.h"
#include "util.h"

struct daemon_state {
	struct event_base *base;
	struct settings *cfg;
	const char *config_path;
	char **cli_args; /* name, value pairs given on the command line (re-applied on reload) */
	size_t n_cli;
	struct repo *repo;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: acceld [OPTIONS]\n"
		"Serve ONNX networks over the Open Inference Protocol v2 (gRPC).\n\n"
		"  -c, --config FILE            JSON configuration file\n"
		"  -l, --listen ADDR            host:port or unix:/path (repeatable; replaces the file's list)\n"
		"  -m, --model-repository DIR   model repository\n"
		"  -t, --threads N              intra-op threads per model instance (0 = one per CPU)\n"
		"      --grpc-threads N         gRPC completion-queue threads\n"
		"      --log-level LEVEL        error, warning, notice, info, debug\n"
		"      --help-config            list the configuration settings\n"
		"  -V, --version                print the version\n"
		"  -h, --help                   this text\n");
}

/* SIGTERM/SIGINT: leave the loop; shutdown follows in main. */
static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;
	log_notice("signal %d: shutting down", (int)sig);
	event_base_loopbreak(d->base);
}

/* Build settings from the file and the command line. */
static int load_settings(struct daemon_state *d, struct settings **out, char **err)
{
	struct settings *c = settings_new();
	if (d->config_path) {
		int rc = settings_load_file(c, d->config_path, err);
		if (rc < 0) {
			settings_free(c);
			return rc;
		}
	}
	for (size_t i = 0; i < d->n_cli; i++) {
		int rc = settings_set(c, d->cli_args[2 * i], d->cli_args[2 * i + 1], err);
		if (rc < 0) {
			settings_free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

/* SIGHUP: re-read the config file, apply what can change live. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;
	struct settings *fresh;
	char *err = NULL;
	notify_reloading();
	if (load_settings(d, &fresh, &err) < 0) {
		log_err("reload: %s (keeping the current settings)", err);
		free(err);
	} else {
		const char *fixed;
		settings_apply_reloadable(d->cfg, fresh, &fixed);
		if (fixed)
			log_warn("reload: setting '%s' changed; it takes effect after a restart", fixed);
		enum log_level lvl;
		log_level_parse(settings_str(d->cfg, "log_level"), &lvl);
		log_init(lvl, 0);
		settings_free(fresh);
		log_notice("reloaded settings");
	}
	notify_ready("serving");
}

/* Watchdog timer. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	notify_watchdog();
}

/* Remember a command-line setting. */
static void cli_add(struct daemon_state *d, const char *name, const char *value)
{
	d->cli_args = xreallocarray(d->cli_args, 2 * (d->n_cli + 1), sizeof(char *));
	d->cli_args[2 * d->n_cli] = (char *)name;
	d->cli_args[2 * d->n_cli + 1] = (char *)value;
	d->n_cli++;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "model-repository", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "grpc-threads", required_argument, NULL, 'g' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help-config", no_argument, NULL, 'H' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_state d = { 0 };
	int c;
	while ((c = getopt_long(argc, argv, "c:l:m:t:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': d.config_path = optarg; break;
		case 'l': cli_add(&d, "listen", optarg); break;
		case 'm': cli_add(&d, "model_repository", optarg); break;
		case 't': cli_add(&d, "threads", optarg); break;
		case 'g': cli_add(&d, "grpc_threads", optarg); break;
		case 'L': cli_add(&d, "log_level", optarg); break;
		case 'H': settings_describe(); return 0;
		case 'V': printf("acceld %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "acceld: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	char *err = NULL;
	if (load_settings(&d, &d.cfg, &err) < 0) {
		fprintf(stderr, "acceld: configuration: %s\n", err);
		return 1;
	}
	enum log_level lvl;
	log_level_parse(settings_str(d.cfg, "log_level"), &lvl);
	log_init(lvl, 0);
	log_route_libraries();

	/* Keep large blocks mapped: giving them back after every request costs page faults. */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	signal(SIGPIPE, SIG_IGN);

	evthread_use_pthreads();
	d.base = event_base_new();
	if (!d.base)
		fatal("cannot create the event loop");
	struct event *ev_term = evsignal_new(d.base, SIGTERM, on_stop, &d);
	struct event *ev_int = evsignal_new(d.base, SIGINT, on_stop, &d);
	struct event *ev_hup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);

	struct device_manager *dm;
	if (device_manager_create(&dm, &err) < 0)
		fatal("devices: %s", err);
	const char *repo_path = settings_str(d.cfg, "model_repository");
	if (repo_open(repo_path, dm, (int)settings_int(d.cfg, "threads"), &d.repo, &err) < 0)
		fatal("%s", err);

	const char *const *listen;
	size_t n_listen = settings_strv(d.cfg, "listen", &listen);
	struct rpc_options ro = {
		.listen = listen,
		.n_listen = n_listen,
		.threads = (int)settings_int(d.cfg, "grpc_threads"),
		.max_message_bytes = (size_t)settings_int(d.cfg, "max_message_bytes"),
	};
	struct rpc *rpc;
	if (rpc_start(&ro, d.repo, &rpc, &err) < 0)
		fatal("%s", err);
	for (size_t i = 0; i < n_listen; i++)
		log_notice("serving gRPC on %s", listen[i]);

	repo_load_all(d.repo);
	log_notice("acceld %s ready (model repository %s)", PACKAGE_VERSION, repo_path);
	notify_ready("serving");

	struct event *ev_wd = NULL;
	uint64_t wd_us = notify_watchdog_interval_us();
	if (wd_us) {
		struct timeval tv = { .tv_sec = (time_t)(wd_us / 1000000), .tv_usec = (suseconds_t)(wd_us % 1000000) };
		ev_wd = event_new(d.base, -1, EV_PERSIST, on_watchdog, NULL);
		event_add(ev_wd, &tv);
	}

	event_base_dispatch(d.base);

	notify_stopping();
	rpc_stop(rpc);
	repo_close(d.repo);
	device_manager_free(dm);
	if (ev_wd)
		event_free(ev_wd);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_base_free(d.base);
	settings_free(d.cfg);
	free(d.cli_args);
	log_notice("stopped");
	return 0;
}
