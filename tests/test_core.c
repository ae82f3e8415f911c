/* Tests for src/core: arena, tensors, status messages and the RNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "octet/tensor.h"

static void arena_alignment_and_rewind(void **state) {
    oct_arena a;
    oct_arena_init(&a, 4096);
    void *p = oct_arena_alloc(&a, 10);
    assert_int_equal((uintptr_t)p % OCT_ALIGN, 0);
    oct_arena_mark m = oct_arena_save(&a);
    void *q = oct_arena_alloc(&a, 100000); /* larger than a block */
    assert_non_null(q);
    assert_int_equal((uintptr_t)q % OCT_ALIGN, 0);
    oct_arena_rewind(&a, m);
    void *r = oct_arena_alloc(&a, 10);
    assert_ptr_equal((char *)p + OCT_ALIGN, r);
    size_t reserved = a.reserved;
    oct_arena_reset(&a);
    for (int i = 0; i < 3; i++) oct_arena_alloc(&a, 100000);
    oct_arena_reset(&a);
    for (int i = 0; i < 3; i++) oct_arena_alloc(&a, 100000);
    assert_true(a.reserved >= reserved);
    size_t after = a.reserved;
    oct_arena_reset(&a);
    for (int i = 0; i < 3; i++) oct_arena_alloc(&a, 100000);
    assert_int_equal(a.reserved, after); /* steady state: no new blocks */
    oct_arena_free(&a);
    oct_arena_free(NULL);
}

/* An arena that cannot get a block calls the out-of-memory handler with the size (the handler
 * here jumps back instead of exiting). */
static jmp_buf oom_jump;
static size_t oom_bytes;

static void on_oom(size_t bytes) {
    oom_bytes = bytes;
    longjmp(oom_jump, 1);
}

/* Under AddressSanitizer an impossible allocation returns NULL as it does without. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "allocator_may_return_null=1";
}

static void arena_out_of_memory(void **state) {
    assert_null(oct_set_oom_handler(on_oom));
    oct_arena a;
    oct_arena_init(&a, 4096);
    volatile size_t huge = SIZE_MAX / 4;
    if (setjmp(oom_jump) == 0) {
        oct_arena_alloc(&a, huge);
        fail_msg("an impossible allocation returned");
    }
    assert_true(oom_bytes >= huge && oom_bytes < huge + 2 * OCT_ALIGN);
    assert_ptr_equal(oct_set_oom_handler(NULL), on_oom);
    oct_arena_free(&a);
}

static void tensor_shapes(void **state) {
    oct_arena a;
    oct_arena_init(&a, 0);
    int shape[3] = {2, 3, 4};
    oct_tensor *t = oct_tensor_zeros(&a, 3, shape);
    assert_int_equal(t->size, 24);
    assert_int_equal(oct_tensor_cols(t), 4);
    assert_int_equal(oct_tensor_rows(t), 6);
    char buf[32];
    assert_string_equal(oct_tensor_shape_str(t, buf, sizeof buf), "[2, 3, 4]");
    oct_tensor *p = oct_tensor_param(&a, "w", 3, shape);
    assert_true(p->requires_grad);
    assert_non_null(p->grad);
    assert_float_equal(p->grad[23], 0.0f, 0.0f);
    oct_arena_free(&a);
}

static void status_messages(void **state) {
    oct_status s = oct_fail(OCT_EFORMAT, "%s: bad magic %d", "x.idx", 7);
    assert_int_equal(s, OCT_EFORMAT);
    assert_string_equal(oct_last_error(), "x.idx: bad magic 7");
    assert_string_equal(oct_strerror(OCT_EFORMAT), "malformed file");
    assert_string_equal(oct_strerror(OCT_OK), "success");
    /* Context added around a lower layer's message, which is itself an argument. */
    oct_fail(OCT_EIO, "%s", "inner problem");
    oct_fail(OCT_EIO, "outer.bin: %s", oct_last_error());
    assert_string_equal(oct_last_error(), "outer.bin: inner problem");
    /* One line whatever the arguments hold (a tensor name read from a file). */
    oct_fail(OCT_EFORMAT, "f.st: tensor \"%s\": bad dtype", "evil\nname\r\t\x7f");
    assert_string_equal(oct_last_error(), "f.st: tensor \"evil?name???\": bad dtype");
    oct_clear_error();
    assert_string_equal(oct_last_error(), "");
}

static void rng_reproducible(void **state) {
    oct_rng a, b;
    oct_rng_seed(&a, 42, 1);
    oct_rng_seed(&b, 42, 1);
    for (int i = 0; i < 1000; i++) assert_int_equal(oct_rng_u32(&a), oct_rng_u32(&b));
    oct_rng_seed(&b, 43, 1);
    int same = 0;
    for (int i = 0; i < 100; i++) same += oct_rng_u32(&a) == oct_rng_u32(&b);
    assert_true(same < 5);
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        float x = oct_rng_normal(&a);
        sum += x;
        sq += (double)x * x;
    }
    assert_true(fabs(sum / 100000) < 0.02);
    assert_true(fabs(sq / 100000 - 1.0) < 0.03);
    int32_t idx[100];
    for (int i = 0; i < 100; i++) idx[i] = i;
    oct_rng_shuffle(&a, idx, 100);
    int seen[100] = {0};
    for (int i = 0; i < 100; i++) seen[idx[i]]++;
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    for (int i = 0; i < 10000; i++) assert_true(oct_rng_below(&a, 7) < 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arena_alignment_and_rewind),
        cmocka_unit_test(arena_out_of_memory),
        cmocka_unit_test(tensor_shapes),
        cmocka_unit_test(status_messages),
        cmocka_unit_test(rng_reproducible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
