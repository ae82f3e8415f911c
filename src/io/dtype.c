/* Element types of safetensors entries: names as the format spells them, sizes in bytes, and
 * the conversion of floating-point entries to float32. */
#include "io_internal.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [OCT_DT_F64] = {"F64", 8},   [OCT_DT_F32] = {"F32", 4}, [OCT_DT_F16] = {"F16", 2},
    [OCT_DT_BF16] = {"BF16", 2}, [OCT_DT_I64] = {"I64", 8}, [OCT_DT_I32] = {"I32", 4},
    [OCT_DT_I8] = {"I8", 1},     [OCT_DT_U8] = {"U8", 1},
};
_Static_assert(sizeof dtypes / sizeof dtypes[0] == OCT_DT_COUNT, "one row per oct_dtype");

const char *oct_dtype_name(oct_dtype dt) {
    OCT_ASSERT(dt >= 0 && dt < OCT_DT_COUNT);
    return dtypes[dt].name;
}

size_t oct_dtype_size(oct_dtype dt) {
    OCT_ASSERT(dt >= 0 && dt < OCT_DT_COUNT);
    return dtypes[dt].size;
}

bool oct__st_nbytes(oct_dtype dt, int ndim, const int *shape, int64_t *numel, size_t *nbytes) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, (int64_t)shape[i], &n)) return false;
    *numel = n;
    return !__builtin_mul_overflow((uint64_t)n, (uint64_t)oct_dtype_size(dt), nbytes);
}

static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* 65520 and up (ties to even) round to inf */
    if (a < 0x38800000u) {                       /* below 2^-14: multiples of 2^-24 */
        float v;
        memcpy(&v, &a, sizeof v);
        return sign | (uint16_t)lrintf(v * 16777216.0f); /* exact scaling, rint ties to even */
    }
    uint32_t h = ((a >> 23) - 112u) << 10 | (a >> 13 & 0x3ffu), rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* may carry into the exponent */
    return sign | (uint16_t)h;
}

void oct_f32_to_f16(const float *x, int64_t n, uint16_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = float_to_half(x[i]);
}

/* An IEEE half (1 sign, 5 exponent, 10 fraction bits) as float: every half is a float. */
static float half_to_float(uint16_t h) {
    float sign = (h & 0x8000u) ? -1.0f : 1.0f;
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) return sign * ldexpf((float)m, -24); /* zero and subnormals */
    if (e == 31) return m ? NAN : sign * INFINITY;
    return sign * ldexpf((float)(m | 0x400), e - 25);
}

oct_status oct_st_to_f32(const oct_st_file *f, const oct_st_entry *e, float *out) {
    int64_t n = e->numel;
    switch (e->dtype) {
    case OCT_DT_F32:
        memcpy(out, e->data, (size_t)n * sizeof *out);
        return OCT_OK;
    case OCT_DT_F64: {
        const double *d = e->data;
        for (int64_t i = 0; i < n; i++) out[i] = (float)d[i];
        return OCT_OK;
    }
    case OCT_DT_F16: {
        const uint16_t *h = e->data;
        for (int64_t i = 0; i < n; i++) out[i] = half_to_float(h[i]);
        return OCT_OK;
    }
    case OCT_DT_BF16: { /* the top half of a float */
        const uint16_t *h = e->data;
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)h[i] << 16;
            memcpy(&out[i], &bits, sizeof bits);
        }
        return OCT_OK;
    }
    default:
        return oct_fail(OCT_EUNSUPPORTED, "%s: tensor '%s' is %s, not a floating-point dtype",
                        f->path, e->name, oct_dtype_name(e->dtype));
    }
}
