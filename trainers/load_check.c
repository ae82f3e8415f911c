/* Checks shared by the model loaders (see load_check.h). */
#include "load_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

oct_status load_check_finite(const char *path, const char *name, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return oct_fail(OCT_EFORMAT,
                            "%s: tensor '%s' holds %g at index %lld, not a finite value", path,
                            name, (double)x[i], (long long)i);
    return OCT_OK;
}

oct_status load_read_param(const oct_st_file *f, oct_tensor *t) {
    oct_status s = oct_st_read_f32(f, t);
    if (s == OCT_ENOTFOUND)
        return oct_fail(OCT_EFORMAT, "%s: tensor '%s' is missing", f->path, t->name);
    return s == OCT_OK ? load_check_finite(f->path, t->name, t->data, t->size) : s;
}

oct_status load_qat_steps(const oct_st_file *f, int64_t *steps) {
    const char *v = oct_st_meta(f, "octet.qat_steps");
    size_t digits = v ? strspn(v, "0123456789") : 0;
    /* 17 digits hold 2^53; more (leading zeros aside) cannot be in range */
    bool ok = v && digits > 0 && !v[digits] && digits - strspn(v, "0") <= 17;
    int64_t x = ok ? strtoll(v, NULL, 10) : 0;
    if (!ok || x > LOAD_MAX_QAT_STEPS)
        return oct_fail(OCT_EFORMAT,
                        "%s: metadata 'octet.qat_steps' is %s%s%s, expected a count of steps in "
                        "[0, 2^53]",
                        f->path, v ? "'" : "", v ? v : "missing", v ? "'" : "");
    *steps = x;
    return OCT_OK;
}

oct_status load_fail_in(oct_status code, const char *path) {
    return oct_fail(code, "%s: %s", path, oct_last_error());
}
