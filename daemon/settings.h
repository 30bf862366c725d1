/* settings.h - the daemon's settings: one table (name, type, bounds, default, reloadable),
 * filled from defaults, then the JSON config file, then command-line flags; read through
 * getters. Not thread-safe for writes: only the main thread loads or reloads. */
#ifndef ACC_SETTINGS_H
#define ACC_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

struct settings;

/* A configuration holding every default. */
struct settings *settings_new(void);
/* Free a configuration. */
void settings_free(struct settings *c);
/* Read a JSON file over the current values: unknown keys, wrong types and values out of
 * bounds are errors (-EINVAL) and leave c unchanged. */
int settings_load_file(struct settings *c, const char *path, char **err);
/* Set one setting from text (command line): ints are parsed and bounds-checked; for a list
 * setting, the first call replaces the list and later calls append. */
int settings_set(struct settings *c, const char *name, const char *value, char **err);
/* Copy the reloadable settings of src into dst; *changed_fixed is set when src differs from
 * dst in a setting that needs a restart (its name is logged by the caller via *which). */
void settings_apply_reloadable(struct settings *dst, const struct settings *src, const char **which);

/* Getters; the name must be in the table (a wrong name is a programming error: fatal). */
long long settings_int(const struct settings *c, const char *name);
const char *settings_str(const struct settings *c, const char *name);
/* List setting: number of entries, *out points at them (valid until the next change). */
size_t settings_strv(const struct settings *c, const char *name, const char *const **out);
/* Print the table (name, type, default, bounds, reloadable) for --help-config. */
void settings_describe(void);

#endif
