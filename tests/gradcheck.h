/* A finite-difference gradient checker for ops on the autograd tape, shared by the op tests.
 *
 * The caller writes a function that builds an output tensor (any shape) from input tensors on
 * a graph. The checker reduces that output to a scalar loss L = sum_i w_i y_i with fixed random
 * weights w (so softmax-like ops whose outputs sum to a constant still get a useful gradient),
 * back-propagates once for the analytic gradient of every input, and compares it with central
 * differences (L(x + h) - L(x - h)) / 2h, where L is summed in float64 from the float32 output
 * and h is the exactly representable step. The analytic pass seeds dL/dy = w through oct_mul and
 * oct_sum, so a broken mul or sum makes every check fail loudly. Each evaluation starts from a
 * reset graph with training on and the graph RNG reseeded, so random ops (dropout) repeat the same
 * mask.
 *
 * It also records which ops (indices into the op table) appeared on the tape during any check,
 * so a test can fail for ops that no check exercised.
 */
#ifndef OCTET_TESTS_GRADCHECK_H
#define OCTET_TESTS_GRADCHECK_H

#include "octet/ops.h"

/* Builds the output to check from in[0..nin) on g; ctx is the caller's. */
typedef oct_tensor *(*gradcheck_fn)(oct_graph *g, oct_tensor *const *in, void *ctx);

typedef struct gradcheck_opts {
    double eps;     /* central-difference step; 0 means 1e-2 */
    double rtol;    /* tolerated |analytic - numeric| relative to max(|a|, |n|); 0 means 1e-2 */
    double atol;    /* plus this absolute slack; 0 means 1e-4 */
    int max_probes; /* elements perturbed per input, evenly spread; 0 means 256 */
} gradcheck_opts;

/* Checks the gradient of every input (each must be a parameter: requires_grad, grad buffer).
 * Input data is restored afterwards; their grad buffers are left zeroed. Prints the worst
 * mismatch of each failing input to stderr, tagged with label. opts may be NULL. Returns true
 * when every probed element is within tolerance. */
bool gradcheck(const char *label, gradcheck_fn f, void *ctx, int nin, oct_tensor *const *in,
               const gradcheck_opts *opts);

/* True when op index i appeared on the tape during some gradcheck() call so far. */
bool gradcheck_op_seen(int i);

/* A new parameter in arena a with N(0, std^2) data from r (a convenience for tests). */
oct_tensor *gradcheck_param(oct_arena *a, oct_rng *r, int ndim, const int *shape, float std);

#endif
