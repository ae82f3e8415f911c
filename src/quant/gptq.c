/* GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization
 * for Generative Pre-trained Transformers", arXiv:2210.17323): weights rounded one input column
 * at a time (those of the inputs with the most energy first: act-order), each column's rounding
 * error spread over the columns not rounded yet through the inverse Hessian of the layer's
 * inputs, so that the layer's outputs on the calibration data move as little as the codes allow.
 * The contract is in include/octet/quant.h. Everything runs in double, in a fixed order, so every
 * build computes the same weights. */
#include "octet/quant.h"

#include <math.h>
#include <stdlib.h>

/* In-place lower Cholesky factor of the symmetric positive definite a (n, n): a = L L^T, L in
 * the lower triangle (the upper one is left alone). False when a pivot is not positive. */
static bool cholesky(double *a, int n) {
    for (int j = 0; j < n; j++) {
        double d = a[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= a[(size_t)j * n + k] * a[(size_t)j * n + k];
        if (!(d > 0.0)) return false;
        d = sqrt(d);
        a[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double v = a[(size_t)i * n + j];
            for (int k = 0; k < j; k++) v -= a[(size_t)i * n + k] * a[(size_t)j * n + k];
            a[(size_t)i * n + j] = v / d;
        }
    }
    return true;
}

/* inv (n, n) = (L L^T)^-1 for the lower factor L in l: M = L^-1 column by column (forward
 * substitution), then inv = M^T M. m is scratch (n, n). */
static void cholesky_inverse(const double *l, int n, double *m, double *inv) {
    for (int c = 0; c < n; c++)
        for (int i = 0; i < n; i++) {
            double v = i == c ? 1.0 : 0.0;
            for (int k = c; k < i; k++) v -= l[(size_t)i * n + k] * m[(size_t)k * n + c];
            m[(size_t)i * n + c] = i < c ? 0.0 : v / l[(size_t)i * n + i];
        }
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            double v = 0.0;
            for (int k = j; k < n; k++) v += m[(size_t)k * n + i] * m[(size_t)k * n + j];
            inv[(size_t)i * n + j] = inv[(size_t)j * n + i] = v;
        }
}

/* A column and its Hessian diagonal, for act-order. */
typedef struct gptq_col {
    double diag;
    int index;
} gptq_col;

/* Larger diagonal first, then the lower index: a total order, so every build agrees. */
static int by_diag(const void *a, const void *b) {
    const gptq_col *x = a, *y = b;
    if (x->diag != y->diag) return x->diag > y->diag ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

oct_status oct_gptq(float *w, int rows, int cols, const float *xtx, const float *s, int32_t qmin,
                    int32_t qmax, double damp) {
    size_t n = (size_t)cols;
    double *h = malloc(n * n * sizeof *h), *m = malloc(n * n * sizeof *m);
    double *inv = malloc(n * n * sizeof *inv);
    gptq_col *col = malloc(n * sizeof *col);
    oct_status st = OCT_OK;
    if (!h || !m || !inv || !col) {
        st = oct_fail(OCT_ENOMEM, "gptq: out of memory for a %d x %d Hessian", cols, cols);
        goto out;
    }
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i; j < n; j++) h[i * n + j] = h[j * n + i] = xtx[i * n + j];
        mean += h[i * n + i];
    }
    mean /= (double)n;
    if (!(mean > 0.0) || !isfinite(mean)) {
        st = oct_fail(OCT_EINVAL, "gptq: no calibration inputs (or non-finite ones)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (h[i * n + i] == 0.0) { /* an input never seen: its weights don't matter */
            for (size_t j = 0; j < n; j++) h[i * n + j] = h[j * n + i] = 0.0;
            h[i * n + i] = 1.0;
            for (int r = 0; r < rows; r++) w[(size_t)r * n + i] = 0.0f;
        }
        h[i * n + i] += damp * mean;
    }
    /* Act-order (the reference code's --act-order): the columns of the inputs with the most
     * energy first, while there are the most columns left to take up their error; h becomes H
     * in that order (written into m, then the two swap) and column i of the loop below is w's
     * column col[i].index. */
    for (size_t i = 0; i < n; i++) col[i] = (gptq_col){h[i * n + i], (int)i};
    qsort(col, n, sizeof *col, by_diag);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            m[i * n + j] = h[(size_t)col[i].index * n + (size_t)col[j].index];
    double *t = h;
    h = m;
    m = t;
    if (!cholesky(h, cols)) {
        st =
            oct_fail(OCT_EINVAL, "gptq: the inputs' Hessian is not positive definite (raise damp)");
        goto out;
    }
    cholesky_inverse(h, cols, m, inv);
    if (!cholesky(inv, cols)) { /* inv = R R^T; GPTQ's upper factor U = R^T */
        st = oct_fail(OCT_EINVAL, "gptq: the inverse Hessian is not positive definite");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        double d = inv[i * n + i];
        size_t c = (size_t)col[i].index;
        for (int r = 0; r < rows; r++) {
            float *row = w + (size_t)r * n;
            float q = s[r] * (float)oct_quantize(row[c], s[r], 0, qmin, qmax);
            double e = ((double)row[c] - q) / d;
            row[c] = q;
            for (size_t j = i + 1; j < n; j++)
                row[col[j].index] = (float)(row[col[j].index] - e * inv[j * n + i]);
        }
    }
out:
    free(h);
    free(m);
    free(inv);
    free(col);
    return st;
}
