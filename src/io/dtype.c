/* Element types of safetensors entries: names as the format spells them and sizes in bytes. */
#include "io_internal.h"

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
