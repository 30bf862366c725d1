/* driver.h - the interface between the device manager and one kind of execution hardware.
 *
 * A driver enumerates its devices, compiles an engine model into an executable for one
 * device, and runs batches on it. The device manager owns the driver objects; a driver never
 * calls back into the scheduler except through the completion callback.
 *
 * Threads: probe/open/close run on the main thread at start-up and shutdown. load/unload may
 * run on any thread. execute is called by one worker thread per executable at a time; it may
 * complete inline (done called before execute returns) or later from a driver thread.
 */
#ifndef ACC_DRIVER_H
#define ACC_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct drv_device; /* driver-private per-device state */
struct drv_exec;   /* driver-private per-executable state */

enum drv_health { DRV_HEALTH_OK = 0, DRV_HEALTH_DEGRADED, DRV_HEALTH_FAILED };

/* What probe reports about one device. */
struct drv_device_info {
	char name[64];   /* "cpu0", "cuda0" */
	char kind[16];   /* Triton instance kind: "KIND_CPU", "KIND_GPU" */
	char model[128]; /* human-readable hardware name */
	uint64_t memory_bytes;
	int index; /* index among the driver's devices */
};

struct drv_health_info {
	enum drv_health state;
	char reason[128];
	double temperature_c; /* < 0 if unknown */
	uint64_t memory_used_bytes;
};

/* One batch handed to a driver: inputs in model order, outputs filled by the driver. */
struct drv_batch {
	size_t n_inputs, n_outputs;
	const struct eng_tensor *inputs;
	struct eng_tensor *outputs; /* data valid until the next execute on the same exec */
	char *error;                /* set by the driver on failure; freed by the caller */
};

typedef void (*drv_done_fn)(struct drv_batch *batch, int status, void *arg);

struct driver_ops {
	const char *name;
	/* Enumerate devices: *out is a fresh array the caller frees; 0 devices is not an error. */
	int (*probe)(struct drv_device_info **out, size_t *n, char **err);
	/* Open one probed device. */
	int (*open)(const struct drv_device_info *info, struct drv_device **out, char **err);
	/* Compile model for dev; the model outlives the executable. */
	int (*load)(struct drv_device *dev, const struct eng_model *model, struct drv_exec **out,
		    char **err);
	/* Run one batch; done(batch, 0 or -errno, arg) is called exactly once. */
	int (*execute)(struct drv_exec *x, struct drv_batch *batch, drv_done_fn done, void *arg);
	/* Current health of dev. */
	int (*health)(struct drv_device *dev, struct drv_health_info *out);
	/* Free an executable (no execute in flight). */
	void (*unload)(struct drv_exec *x);
	/* Close a device (no executable left). */
	void (*close)(struct drv_device *dev);
};

/* The built-in drivers. */
extern const struct driver_ops cpu_driver_ops;

#endif
