/* transcend.h - whole-array GELU and exp for the hot loops (the Gelu op and epilogue, Softmax).
 *
 * On AVX2 + FMA the work goes through hand-scheduled kernels that advance four vectors through
 * each step of the formula together, so that the long dependency chains of erfc and exp
 * overlap (the compiler's loop, vmath.h's formula on each element, leaves the core waiting on
 * them); elsewhere the portable vmath.h loops. Both compute the same formulas: relative error
 * about 2e-7 (exp) and 4e-7 (GELU, also in its negative tail; beyond |x| = 3 the float
 * exponent -x^2/2 adds about 6e-8 x^2), NaN propagated. */
#ifndef ACC_ENGINE_TRANSCEND_H
#define ACC_ENGINE_TRANSCEND_H

#include <stdbool.h>
#include <stdint.h>

/* y[i] = GELU(x[i]) = x/2 (1 + erf(x / sqrt 2)) for i < n; y may be x. */
void ktrans_gelu(const float *x, float *y, int64_t n);
/* y[i] = e^(x[i] - m) for i < n (0 where x[i] - m < -87.3); returns their sum. y may be x. */
float ktrans_exp_sum(const float *x, float m, float *y, int64_t n);
/* Use the portable loops only (tests compare the two paths); returns the previous setting. */
bool ktrans_force_portable(bool on);

#endif
