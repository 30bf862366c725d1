/* cpu.c - the CPU driver: runs engine models on the host CPUs, completing inline. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "util.h"

struct drv_device {
	struct drv_device_info info;
};

struct drv_exec {
	struct eng_exec *exec;
	const struct eng_model *model;
};

/* Read the CPU model name from /proc/cpuinfo (best effort). */
static void cpu_model_name(char *buf, size_t len)
{
	snprintf(buf, len, "host CPU");
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && colon) {
			colon += 1 + strspn(colon + 1, " \t");
			colon[strcspn(colon, "\n")] = '\0';
			snprintf(buf, len, "%s", colon);
			break;
		}
	}
	fclose(f);
}

/* The host is one device whatever its core count: the engine's thread pool spreads work. */
static int cpu_probe(struct drv_device_info **out, size_t *n, char **err)
{
	struct drv_device_info *d = xcalloc(1, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "cpu0");
	snprintf(d->kind, sizeof(d->kind), "KIND_CPU");
	cpu_model_name(d->model, sizeof(d->model));
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	d->memory_bytes = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
	*out = d;
	*n = 1;
	return 0;
}

/* Open the host device. */
static int cpu_open(const struct drv_device_info *info, struct drv_device **out, char **err)
{
	struct drv_device *dev = xcalloc(1, sizeof(*dev));
	dev->info = *info;
	*out = dev;
	return 0;
}

/* An executable is an engine execution context. */
static int cpu_load(struct drv_device *dev, const struct eng_model *model, struct drv_exec **out,
		    char **err)
{
	struct eng_exec *e;
	int rc = eng_exec_create(model, &e, err);
	if (rc < 0)
		return rc;
	struct drv_exec *x = xcalloc(1, sizeof(*x));
	x->exec = e;
	x->model = model;
	*out = x;
	return 0;
}

/* Run the batch on the calling thread and complete inline. */
static int cpu_execute(struct drv_exec *x, struct drv_batch *batch, drv_done_fn done, void *arg)
{
	if (batch->n_inputs != eng_model_n_inputs(x->model) ||
	    batch->n_outputs != eng_model_n_outputs(x->model)) {
		acc_err(&batch->error, -EINVAL, "batch has %zu inputs/%zu outputs, model has %zu/%zu",
			batch->n_inputs, batch->n_outputs, eng_model_n_inputs(x->model),
			eng_model_n_outputs(x->model));
		done(batch, -EINVAL, arg);
		return 0;
	}
	int rc = eng_exec_run(x->exec, batch->inputs, batch->outputs, &batch->error);
	done(batch, rc, arg);
	return 0;
}

/* The host CPU is healthy while we run. */
static int cpu_health(struct drv_device *dev, struct drv_health_info *out)
{
	memset(out, 0, sizeof(*out));
	out->state = DRV_HEALTH_OK;
	out->temperature_c = -1;
	return 0;
}

/* Free an executable. */
static void cpu_unload(struct drv_exec *x)
{
	eng_exec_free(x->exec);
	free(x);
}

/* Close the device. */
static void cpu_close(struct drv_device *dev)
{
	free(dev);
}

const struct driver_ops cpu_driver_ops = {
	.name = "cpu",
	.probe = cpu_probe,
	.open = cpu_open,
	.load = cpu_load,
	.execute = cpu_execute,
	.health = cpu_health,
	.unload = cpu_unload,
	.close = cpu_close,
};
