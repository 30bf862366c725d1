/* profile.h - an optional per-op-type time profile of runs, for finding where time goes.
 *
 * Off unless the environment sets ACCELD_ENGINE_PROFILE=1 (read once). When on, plan_run times
 * each step and adds it to a process-wide table keyed by the node's op type (with a suffix for
 * fused activations/bias, e.g. "Conv+Relu"); the table is shared by all execs and guarded by a
 * mutex. ACCELD_ENGINE_PROFILE=2 keys rows by the step's shapes as well (first input, output,
 * Conv weights and stride), to see which layers of a type cost what. It costs one branch per
 * step when off.
 */
#ifndef ACC_ENGINE_PROFILE_H
#define ACC_ENGINE_PROFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "graph.h"

/* Whether profiling is on (ACCELD_ENGINE_PROFILE set to a non-empty value other than "0"). */
bool eng_profile_enabled(void);
/* Add one step's time: node n with these inputs and outputs (may be NULL) ran for ns nanoseconds. */
void eng_profile_add(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     uint64_t ns);
/* Forget everything recorded so far (e.g. after warm-up runs). */
void eng_profile_reset(void);
/* Print the table to f, most expensive first: op key, calls, total ms, share, per run
 * (divided by runs when runs > 0). */
void eng_profile_print(FILE *f, const char *title, int runs);

#endif
