/* device.h - the device manager: drivers, their devices, and model instances on them.
 *
 * Devices are probed once at start-up and live until device_manager_free. An instance is one
 * executable copy of a model on one device; the scheduler runs batches on instances. All
 * functions are thread-safe.
 */
#ifndef ACC_DEVICE_H
#define ACC_DEVICE_H

#include <stddef.h>

#include "drivers/driver.h"

struct device_manager;
struct device;
struct device_instance;

/* Completion of device_instance_execute: status 0 or -errno. */
typedef void (*device_done_fn)(struct drv_batch *batch, int status, void *arg);

/* Probe every built-in driver; a driver that fails to probe is logged and skipped. */
int device_manager_create(struct device_manager **out, char **err);
/* Close every device (no instance may remain). */
void device_manager_free(struct device_manager *dm);
/* Number of devices. */
size_t device_count(const struct device_manager *dm);
/* Device i (0 <= i < device_count). */
struct device *device_at(struct device_manager *dm, size_t i);
/* The first healthy device of a Triton instance kind ("KIND_CPU", "KIND_GPU"), with index
 * idx among that kind's devices, or NULL. */
struct device *device_find(struct device_manager *dm, const char *kind, int idx);
/* Probe information of a device. */
const struct drv_device_info *device_info(const struct device *d);
/* Poll the device's health now (the result is also cached for device_last_health). */
int device_health_poll(struct device *d, struct drv_health_info *out);

/* Create an instance of model on d. */
int device_instance_create(struct device *d, const struct eng_model *model,
			   struct device_instance **out, char **err);
/* Free an instance (no batch in flight). */
void device_instance_free(struct device_instance *in);
/* The device an instance runs on. */
struct device *device_instance_device(const struct device_instance *in);
/* Run one batch; done is called exactly once (maybe before this returns). */
int device_instance_execute(struct device_instance *in, struct drv_batch *batch,
			    device_done_fn done, void *arg);

#endif
