/* Muon's matrix update: Newton-Schulz orthogonalization of the (Nesterov) momentum, as in
 * torch.optim.Muon, in float32 with OpenBLAS sgemm. The elementwise momentum update runs in
 * optim.c's sliced pass; this file does the per-matrix part, one task per matrix, so the result
 * does not depend on how many threads share the matrices. */
#include "optim_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_STEPS 5
#define NS_A 3.4445f
#define NS_B -4.7750f
#define NS_C 2.0315f
#define NS_EPS 1e-7

void oct_muon_orthogonalize(float *x, int rows, int cols, float *work) {
    int64_t n = (int64_t)rows * cols;
    int m = rows <= cols ? rows : cols; /* side of the Gram matrix */
    float *y = work, *a = work + n, *b = a + (int64_t)m * m;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float inv = (float)(1.0 / fmax(sqrt(ss), NS_EPS));
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
    float *cur = x, *next = y;
    for (int it = 0; it < NS_STEPS; it++) {
        if (rows <= cols) /* A = X X^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, cols, 1.0f, cur, cols, cur,
                        cols, 0.0f, a, m);
        else /* A = X^T X */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, m, rows, 1.0f, cur, cols, cur,
                        cols, 0.0f, a, m);
        for (int64_t i = 0; i < (int64_t)m * m; i++) b[i] = NS_B * a[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, NS_C, a, m, a, m, 1.0f, b,
                    m); /* B = b A + c A A */
        for (int64_t i = 0; i < n; i++) next[i] = NS_A * cur[i];
        if (rows <= cols) /* X' = a X + B X */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, m, 1.0f, b, m, cur,
                        cols, 1.0f, next, cols);
        else /* X' = a X + X B (B is symmetric) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, m, 1.0f, cur, cols,
                        b, m, 1.0f, next, cols);
        float *t = cur;
        cur = next;
        next = t;
    }
    if (cur != x) memcpy(x, cur, (size_t)n * sizeof *x);
}

int oct__muon_blocks(const oct_optim_hyper *h, const oct_tensor *p) {
    if (p->ndim != 2) return 0;
    return h->muon_select ? h->muon_select(p, h->muon_ctx) : 1;
}

float oct__muon_momentum_at(const oct_optim_hyper *h, int64_t step) {
    if (step >= h->momentum_warmup) return h->momentum;
    double lo = fmin(0.85, (double)h->momentum), f = (double)step / (double)h->momentum_warmup;
    return (float)(lo + f * ((double)h->momentum - lo));
}

void oct__muon_momentum(float *restrict buf,     /* (n) */
                        const float *restrict g, /* (n) */
                        int64_t n, float mu) {
    float c = 1.0f - mu;
    for (int64_t i = 0; i < n; i++) buf[i] += c * (g[i] - buf[i]);
}

/* Floats of the workspace for matrix p (split into row blocks of r rows): the update (n) and
 * oct_muon_orthogonalize's scratch for one block (r c + 2 m^2). */
static int64_t muon_work_size(const oct_optim_hyper *h, const oct_tensor *p) {
    int blocks = oct__muon_blocks(h, p), r = p->shape[0] / blocks, c = p->shape[1];
    int64_t m = r <= c ? r : c;
    return p->size + (int64_t)r * c + 2 * m * m;
}

oct_status oct__muon_alloc(oct_optim *o) {
    const oct_params *ps = o->params;
    o->muon_which = malloc((size_t)ps->n * sizeof *o->muon_which);
    o->muon_off = malloc((size_t)ps->n * sizeof *o->muon_off);
    if (!o->muon_which || !o->muon_off) return OCT_ENOMEM;
    int64_t total = 0;
    for (int i = 0; i < ps->n; i++)
        if (o->state[2 * i + 1] == NULL) {
            o->muon_which[o->n_muon] = i;
            o->muon_off[o->n_muon++] = total;
            total += muon_work_size(&o->h, ps->items[i]);
        }
    o->muon_work = malloc((size_t)(total > 0 ? total : 1) * sizeof *o->muon_work);
    return o->muon_work ? OCT_OK : OCT_ENOMEM;
}

typedef struct muon_job {
    const oct_optim *o;
    float lr, mu;
} muon_job;

static void muon_matrix(void *arg, int task) {
    const muon_job *j = arg;
    const oct_optim_hyper *h = &j->o->h;
    int i = j->o->muon_which[task];
    oct_tensor *p = j->o->params->items[i];
    const float *g = p->grad, *buf = j->o->state[2 * i]->data;
    int blocks = oct__muon_blocks(h, p), r = p->shape[0] / blocks, c = p->shape[1];
    int64_t n = p->size, nb = (int64_t)r * c;
    float *x = j->o->muon_work + j->o->muon_off[task];
    float mu = j->mu;
    if (h->nesterov)
        for (int64_t k = 0; k < n; k++) x[k] = g[k] + mu * (buf[k] - g[k]);
    else
        memcpy(x, buf, (size_t)n * sizeof *x);
    for (int b = 0; b < blocks; b++) oct_muon_orthogonalize(x + b * nb, r, c, x + n);
    float decay = (float)(1.0 - (double)j->lr * h->weight_decay);
    float step = (float)((double)j->lr * 0.2 * sqrt((double)(r > c ? r : c)));
    for (int64_t k = 0; k < n; k++) p->data[k] = p->data[k] * decay - step * x[k];
}

void oct__muon_step(const oct_optim *o, float lr, float mu) {
    muon_job j = {.o = o, .lr = lr, .mu = mu};
    oct_parallel_for(o->n_muon, o->threads > 1 ? o->threads : 1, muon_matrix, &j);
}
