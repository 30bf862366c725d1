/* device.c - device manager over the built-in drivers. */
#include "config.h"
#include "device.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct device {
	const struct driver_ops *ops;
	struct drv_device *dev;
	struct drv_device_info info;
	pthread_mutex_t lock;
	struct drv_health_info health;
};

struct device_manager {
	size_t n;
	struct device **devs;
};

struct device_instance {
	struct device *device;
	struct drv_exec *exec;
};

static const struct driver_ops *const drivers[] = { &cpu_driver_ops };

/* Probe every driver and open its devices. */
int device_manager_create(struct device_manager **out, char **err)
{
	struct device_manager *dm = xcalloc(1, sizeof(*dm));
	for (size_t i = 0; i < ACC_ARRAY_LEN(drivers); i++) {
		const struct driver_ops *ops = drivers[i];
		struct drv_device_info *infos = NULL;
		size_t n = 0;
		char *msg = NULL;
		if (ops->probe(&infos, &n, &msg) < 0) {
			log_warn("driver %s: probe failed: %s", ops->name, msg ? msg : "?");
			free(msg);
			continue;
		}
		for (size_t j = 0; j < n; j++) {
			struct drv_device *dd;
			if (ops->open(&infos[j], &dd, &msg) < 0) {
				log_warn("driver %s: cannot open %s: %s", ops->name, infos[j].name,
					 msg ? msg : "?");
				free(msg);
				msg = NULL;
				continue;
			}
			struct device *d = xcalloc(1, sizeof(*d));
			d->ops = ops;
			d->dev = dd;
			d->info = infos[j];
			pthread_mutex_init(&d->lock, NULL);
			d->health.state = DRV_HEALTH_OK;
			dm->devs = xreallocarray(dm->devs, dm->n + 1, sizeof(*dm->devs));
			dm->devs[dm->n++] = d;
			log_info("device %s (%s): %s", d->info.name, ops->name, d->info.model);
		}
		free(infos);
	}
	if (dm->n == 0) {
		free(dm);
		return acc_err(err, -ENODEV, "no usable device found");
	}
	*out = dm;
	return 0;
}

/* Close all devices. */
void device_manager_free(struct device_manager *dm)
{
	if (!dm)
		return;
	for (size_t i = 0; i < dm->n; i++) {
		dm->devs[i]->ops->close(dm->devs[i]->dev);
		pthread_mutex_destroy(&dm->devs[i]->lock);
		free(dm->devs[i]);
	}
	free(dm->devs);
	free(dm);
}

/* Number of devices. */
size_t device_count(const struct device_manager *dm)
{
	return dm->n;
}

/* Device by position. */
struct device *device_at(struct device_manager *dm, size_t i)
{
	return i < dm->n ? dm->devs[i] : NULL;
}

/* Find a healthy device of a kind. */
struct device *device_find(struct device_manager *dm, const char *kind, int idx)
{
	int seen = 0;
	for (size_t i = 0; i < dm->n; i++) {
		struct device *d = dm->devs[i];
		if (strcmp(d->info.kind, kind) != 0)
			continue;
		if (seen++ != idx)
			continue;
		pthread_mutex_lock(&d->lock);
		int ok = d->health.state != DRV_HEALTH_FAILED;
		pthread_mutex_unlock(&d->lock);
		return ok ? d : NULL;
	}
	return NULL;
}

/* Probe information. */
const struct drv_device_info *device_info(const struct device *d)
{
	return &d->info;
}

/* Ask the driver for health and cache it. */
int device_health_poll(struct device *d, struct drv_health_info *out)
{
	struct drv_health_info h;
	int rc = d->ops->health(d->dev, &h);
	if (rc < 0) {
		memset(&h, 0, sizeof(h));
		h.state = DRV_HEALTH_FAILED;
		snprintf(h.reason, sizeof(h.reason), "health query failed (%d)", rc);
	}
	pthread_mutex_lock(&d->lock);
	d->health = h;
	pthread_mutex_unlock(&d->lock);
	if (out)
		*out = h;
	return 0;
}

/* Compile model for a device. */
int device_instance_create(struct device *d, const struct eng_model *model,
			   struct device_instance **out, char **err)
{
	struct drv_exec *x;
	int rc = d->ops->load(d->dev, model, &x, err);
	if (rc < 0)
		return rc;
	struct device_instance *in = xcalloc(1, sizeof(*in));
	in->device = d;
	in->exec = x;
	*out = in;
	return 0;
}

/* Free an instance. */
void device_instance_free(struct device_instance *in)
{
	if (!in)
		return;
	in->device->ops->unload(in->exec);
	free(in);
}

/* The instance's device. */
struct device *device_instance_device(const struct device_instance *in)
{
	return in->device;
}

/* Run a batch through the driver. */
int device_instance_execute(struct device_instance *in, struct drv_batch *batch,
			    device_done_fn done, void *arg)
{
	return in->device->ops->execute(in->exec, batch, done, arg);
}
