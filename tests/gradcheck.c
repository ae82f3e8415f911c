/* Finite-difference gradient checks; see gradcheck.h. */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/ops_internal.h"

#define GRADCHECK_SEED 0x67726164ULL

static bool seen[OCT_OP_COUNT];

bool gradcheck_op_seen(int i) {
    return i >= 0 && i < OCT_OP_COUNT && seen[i];
}

oct_tensor *gradcheck_param(oct_arena *a, oct_rng *r, int ndim, const int *shape, float std) {
    oct_tensor *t = oct_tensor_param(a, "gradcheck", ndim, shape);
    oct_rng_fill_normal(r, t, std);
    return t;
}

/* Runs f on a fresh tape with the RNG reseeded, so every evaluation is the same function. */
static oct_tensor *evaluate(oct_graph *g, gradcheck_fn f, void *ctx, oct_tensor *const *in) {
    oct_graph_reset(g);
    oct_rng_seed(&g->rng, GRADCHECK_SEED, 1);
    g->training = true;
    g->no_grad = false;
    return f(g, in, ctx);
}

/* L = sum_i w_i y_i in float64. */
static double weighted_loss(const oct_tensor *y, const float *w) {
    double s = 0.0;
    for (int64_t i = 0; i < y->size; i++) s += (double)w[i] * y->data[i];
    return s;
}

/* Fills analytic[k][i] with dL/d in[k][i]; returns the weights w (size of the output). */
static float *analytic_grads(oct_graph *g, oct_arena *scratch, gradcheck_fn f, void *ctx, int nin,
                             oct_tensor *const *in, float **analytic) {
    for (int k = 0; k < nin; k++) memset(in[k]->grad, 0, (size_t)in[k]->size * sizeof(float));
    oct_tensor *y = evaluate(g, f, ctx, in);
    for (int i = 0; i < g->n_nodes; i++) seen[g->nodes[i].op] = true;
    oct_tensor *w = oct_tensor_new(scratch, y->ndim, y->shape);
    oct_rng r;
    oct_rng_seed(&r, GRADCHECK_SEED, 2);
    oct_rng_fill_normal(&r, w, 1.0f);
    oct_graph_backward(g, oct_sum(g, oct_mul(g, y, w)));
    for (int k = 0; k < nin; k++) {
        memcpy(analytic[k], in[k]->grad, (size_t)in[k]->size * sizeof(float));
        memset(in[k]->grad, 0, (size_t)in[k]->size * sizeof(float));
    }
    return w->data;
}

/* Compares analytic (size of x) with central differences at up to max_probes elements of x;
 * returns false and prints the worst element when some are out of tolerance. */
static bool check_input(const char *label, int k, oct_graph *g, gradcheck_fn f, void *ctx,
                        oct_tensor *const *in, const float *w, const float *analytic,
                        const gradcheck_opts *o) {
    oct_tensor *x = in[k];
    int64_t stride = x->size > o->max_probes ? (x->size + o->max_probes - 1) / o->max_probes : 1;
    int bad = 0;
    double worst = 0.0, worst_a = 0.0, worst_n = 0.0;
    int64_t worst_i = -1;
    for (int64_t i = 0; i < x->size; i += stride) {
        float x0 = x->data[i];
        float xp = x0 + (float)o->eps, xm = x0 - (float)o->eps;
        x->data[i] = xp;
        double lp = weighted_loss(evaluate(g, f, ctx, in), w);
        x->data[i] = xm;
        double lm = weighted_loss(evaluate(g, f, ctx, in), w);
        x->data[i] = x0;
        double num = (lp - lm) / ((double)xp - (double)xm), a = analytic[i];
        double err = fabs(a - num), tol = o->atol + o->rtol * fmax(fabs(a), fabs(num));
        bad += !(err <= tol);
        if (!(err <= tol) && (worst_i < 0 || err - tol > worst)) {
            worst = err - tol;
            worst_i = i;
            worst_a = a;
            worst_n = num;
        }
    }
    if (bad)
        fprintf(stderr,
                "gradcheck %s: input %d: %d elements off, worst [%lld] analytic %.6g "
                "numeric %.6g\n",
                label, k, bad, (long long)worst_i, worst_a, worst_n);
    return bad == 0;
}

bool gradcheck(const char *label, gradcheck_fn f, void *ctx, int nin, oct_tensor *const *in,
               const gradcheck_opts *opts) {
    gradcheck_opts o = opts ? *opts : (gradcheck_opts){0};
    if (o.eps == 0.0) o.eps = 1e-2;
    if (o.rtol == 0.0) o.rtol = 1e-2;
    if (o.atol == 0.0) o.atol = 1e-4;
    if (o.max_probes == 0) o.max_probes = 256;
    for (int k = 0; k < nin; k++) OCT_ASSERT(in[k]->requires_grad && in[k]->grad);

    oct_arena scratch;
    oct_arena_init(&scratch, 0);
    oct_graph g;
    oct_graph_init(&g, 0, GRADCHECK_SEED);
    float **analytic = oct_arena_alloc(&scratch, (size_t)nin * sizeof *analytic);
    for (int k = 0; k < nin; k++)
        analytic[k] = oct_arena_alloc(&scratch, (size_t)in[k]->size * sizeof(float));
    const float *w = analytic_grads(&g, &scratch, f, ctx, nin, in, analytic);
    bool ok = true;
    for (int k = 0; k < nin; k++) ok &= check_input(label, k, &g, f, ctx, in, w, analytic[k], &o);
    oct_graph_free(&g);
    oct_arena_free(&scratch);
    return ok;
}
