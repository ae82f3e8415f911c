/* Tests for src/io: safetensors round trips, the exact byte layout, validation of corrupt files
 * and atomic writes. Files live in a fresh directory under /tmp, removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "octet/io.h"

static char dir[64];

static char *path_in_dir(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(*n + 1);
    assert_int_equal(fread(buf, 1, *n, fp), *n);
    fclose(fp);
    return buf;
}

static void spit(const char *path, const void *bytes, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}

/* Writes a file with the given header text (unpadded) followed by n zero data bytes. */
static void spit_header(const char *path, const char *header, size_t n) {
    size_t len = strlen(header);
    unsigned char *buf = calloc(8 + len + n, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buf + 8, header, len);
    spit(path, buf, 8 + len + n);
    free(buf);
}

/* Opening path must fail with code and a message that names the file and contains what. */
static void expect_open_error(const char *path, oct_status code, const char *what) {
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != code || !strstr(oct_last_error(), what) || !strstr(oct_last_error(), path))
        fail_msg("expected %d \"%s\", got %d \"%s\"", code, what, s, oct_last_error());
    oct_st_close(&f);
}

static int count_temps(void) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path);
}

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/octet-test-io.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void round_trip(void **state) {
    float f32[6] = {1.5f, -2.25f, 0.0f, 3e38f, -1e-38f, 7.0f};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x7c00, 0x0001};
    int8_t i8[3] = {-128, 0, 127};
    int64_t i64[2] = {INT64_MIN, 1234567890123LL};
    int32_t i32[4] = {INT32_MIN, -1, 0, INT32_MAX};
    uint8_t u8[5] = {0, 1, 128, 254, 255};
    double f64[1] = {3.141592653589793};
    uint16_t bf16[2] = {0x3f80, 0xbf80};
    float scalar = 42.0f;
    int s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s22[2] = {2, 2}, s5[1] = {5};
    int s111[3] = {1, 1, 1}, s03[2] = {0, 3};
    struct {
        const char *name;
        oct_dtype dt;
        int ndim;
        const int *shape;
        const void *data;
    } t[] = {
        {"w.f32", OCT_DT_F32, 2, s23, f32},
        {"h.f16", OCT_DT_F16, 1, s4, f16},
        {"q.i8", OCT_DT_I8, 1, s3, i8},
        {"big.i64", OCT_DT_I64, 1, s2, i64}, /* offset 35 */
        {"n.i32", OCT_DT_I32, 2, s22, i32},
        {"u.u8", OCT_DT_U8, 1, s5, u8},
        {"d.f64", OCT_DT_F64, 3, s111, f64},
        {"b.bf16", OCT_DT_BF16, 1, s2, bf16},
        {"scalar", OCT_DT_F32, 0, NULL, &scalar},
        {"empty", OCT_DT_F32, 2, s03, NULL},
    };
    int n = sizeof t / sizeof t[0];
    oct_st_writer w;
    oct_st_writer_init(&w);
    for (int i = 0; i < n; i++)
        assert_int_equal(
            oct_st_writer_add(&w, t[i].name, t[i].dt, t[i].ndim, t[i].shape, t[i].data), OCT_OK);
    assert_int_equal(oct_st_writer_meta(&w, "step", "100"), OCT_OK);
    assert_int_equal(oct_st_writer_meta(&w, "note", "h\xc3\xa9llo \"quoted\"\n"), OCT_OK);
    assert_int_equal(oct_st_writer_meta(&w, "empty", ""), OCT_OK);
    assert_int_equal(oct_st_writer_meta(&w, "step", "200"), OCT_OK); /* replaces */
    const char *path = path_in_dir("rt.safetensors");
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_writer_free(NULL);

    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    assert_int_equal(f.count, n);
    assert_int_equal((8 + f.header_size) % 8, 0);
    for (int i = 0; i < n; i++) {
        const oct_st_entry *e = &f.entries[i];
        assert_string_equal(e->name, t[i].name); /* file order = order added */
        assert_ptr_equal(oct_st_find(&f, t[i].name), e);
        assert_int_equal(e->dtype, t[i].dt);
        assert_int_equal(e->ndim, t[i].ndim);
        for (int d = 0; d < e->ndim; d++) assert_int_equal(e->shape[d], t[i].shape[d]);
        assert_int_equal((uintptr_t)e->data % oct_dtype_size(e->dtype), 0);
        if (e->nbytes) assert_memory_equal(e->data, t[i].data, e->nbytes);
        const void *data;
        assert_int_equal(oct_st_get(&f, t[i].name, t[i].dt, t[i].ndim, t[i].shape, &data), OCT_OK);
        assert_ptr_equal(data, e->data);
    }
    assert_int_equal(oct_st_find(&f, "big.i64")->offset, 35); /* misaligned: read as a copy */
    assert_int_equal(oct_st_find(&f, "scalar")->numel, 1);
    assert_int_equal(oct_st_find(&f, "empty")->nbytes, 0);
    assert_string_equal(oct_st_meta(&f, "step"), "200");
    assert_string_equal(oct_st_meta(&f, "note"), "h\xc3\xa9llo \"quoted\"\n");
    assert_string_equal(oct_st_meta(&f, "empty"), "");
    assert_int_equal(strlen(oct_st_meta(&f, "octet.crc32")), 8);
    assert_null(oct_st_meta(&f, "absent"));
    assert_null(oct_st_find(&f, "absent"));
    assert_int_equal(f.nmeta, 4);
    assert_string_equal(oct_dtype_name(OCT_DT_BF16), "BF16");
    oct_st_close(&f);
    oct_st_close(&f); /* idempotent */
    oct_st_close(NULL);
}

static void f32_tensors_and_lookup_errors(void **state) {
    oct_arena a;
    oct_arena_init(&a, 0);
    int shape[2] = {2, 3}, other[2] = {3, 2};
    oct_tensor *w = oct_tensor_param(&a, "fc.weight", 2, shape);
    for (int i = 0; i < 6; i++) w->data[i] = (float)i - 2.5f;
    oct_st_writer wr;
    oct_st_writer_init(&wr);
    assert_int_equal(oct_st_writer_add_tensor(&wr, w), OCT_OK);
    const char *path = path_in_dir("f32.safetensors");
    assert_int_equal(oct_st_writer_write(&wr, path), OCT_OK);
    oct_st_writer_free(&wr);

    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    oct_tensor *r = oct_tensor_zeros(&a, 2, shape);
    r->name = "fc.weight";
    assert_int_equal(oct_st_read_f32(&f, r), OCT_OK);
    assert_memory_equal(r->data, w->data, 6 * sizeof(float));

    char want[512];
    oct_tensor *bad = oct_tensor_zeros(&a, 2, other);
    bad->name = "fc.weight";
    assert_int_equal(oct_st_read_f32(&f, bad), OCT_ESHAPE);
    snprintf(want, sizeof want, "%s: tensor \"fc.weight\": expected F32 [3, 2], found F32 [2, 3]",
             path);
    assert_string_equal(oct_last_error(), want);
    const void *data;
    assert_int_equal(oct_st_get(&f, "fc.weight", OCT_DT_I8, 2, shape, &data), OCT_EFORMAT);
    snprintf(want, sizeof want, "%s: tensor \"fc.weight\": expected I8 [2, 3], found F32 [2, 3]",
             path);
    assert_string_equal(oct_last_error(), want);
    assert_int_equal(oct_st_get(&f, "fc.weight", OCT_DT_F32, 1, shape, &data), OCT_ESHAPE);
    assert_non_null(strstr(oct_last_error(), "expected F32 [2], found F32 [2, 3]"));
    bad->name = "fc.bias";
    assert_int_equal(oct_st_read_f32(&f, bad), OCT_ENOTFOUND);
    assert_non_null(strstr(oct_last_error(), "fc.bias"));
    oct_st_close(&f);
    oct_arena_free(&a);
}

static void exact_bytes(void **state) {
    static const char expected[] =
        "\xa0\0\0\0\0\0\0\0"
        "{\"__metadata__\":{\"k\":\"v\",\"octet.crc32\":\"8d8f477b\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}   "
        "\x00\x00\x80\x3f\x00\x00\x00\xc0"
        "\x01\x02\x03";
    float a[2] = {1.0f, -2.0f};
    uint8_t b[3] = {1, 2, 3};
    int s2[1] = {2}, s3[1] = {3};
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_int_equal(oct_st_writer_add(&w, "a", OCT_DT_F32, 1, s2, a), OCT_OK);
    assert_int_equal(oct_st_writer_add(&w, "b", OCT_DT_U8, 1, s3, b), OCT_OK);
    assert_int_equal(oct_st_writer_meta(&w, "k", "v"), OCT_OK);
    const char *path = path_in_dir("tiny.safetensors");
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK); /* again: same bytes */
    oct_st_writer_free(&w);
    size_t n;
    unsigned char *got = slurp(path, &n);
    assert_int_equal(n, sizeof expected - 1);
    assert_memory_equal(got, expected, n);
    free(got);
}

static void writer_errors(void **state) {
    int s1[1] = {1};
    float x = 0;
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_int_equal(oct_st_writer_add(&w, "x", OCT_DT_F32, 1, s1, &x), OCT_OK);
    assert_int_equal(oct_st_writer_add(&w, "x", OCT_DT_F32, 1, s1, &x), OCT_EINVAL);
    assert_string_equal(oct_last_error(), "safetensors writer: tensor name \"x\" is already used");
    assert_int_equal(oct_st_writer_add(&w, "__metadata__", OCT_DT_F32, 1, s1, &x), OCT_EINVAL);
    assert_int_equal(oct_st_writer_add(&w, "bad\xff", OCT_DT_F32, 1, s1, &x), OCT_EINVAL);
    assert_int_equal(oct_st_writer_meta(&w, "octet.crc32", "0"), OCT_EINVAL);
    assert_int_equal(oct_st_writer_meta(&w, "k", "bad\xff"), OCT_EINVAL);
    assert_int_equal(w.count, 1);
    oct_st_writer_free(&w);
}

/* A small valid file: every proper prefix of it and every extension must be rejected. */
static void truncated_and_extended(void **state) {
    float a[5] = {1, 2, 3, 4, 5};
    int s5[1] = {5};
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_int_equal(oct_st_writer_add(&w, "a", OCT_DT_F32, 1, s5, a), OCT_OK);
    const char *path = path_in_dir("good.safetensors");
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
    size_t n;
    unsigned char *good = slurp(path, &n);
    char bad[256];
    snprintf(bad, sizeof bad, "%s", path_in_dir("bad.safetensors"));
    for (size_t len = 0; len < n; len++) {
        spit(bad, good, len);
        oct_st_file f;
        assert_int_equal(oct_st_open(&f, bad), OCT_EFORMAT);
        assert_non_null(strstr(oct_last_error(), bad));
        oct_st_close(&f);
    }
    spit(bad, good, 7);
    expect_open_error(bad, OCT_EFORMAT, "7 bytes, shorter than the 8-byte header length");
    spit(bad, good, 20);
    expect_open_error(bad, OCT_EFORMAT, "exceeds the 20-byte file");
    spit(bad, good, n - 1);
    expect_open_error(bad, OCT_EFORMAT, "beyond the 19-byte data buffer");
    unsigned char *longer = calloc(n + 3, 1);
    memcpy(longer, good, n);
    spit(bad, longer, n + 3);
    expect_open_error(bad, OCT_EFORMAT, "3 trailing bytes after the last tensor");
    memcpy(longer, good, n);
    longer[n - 7] ^= 0x10; /* a data byte */
    spit(bad, longer, n);
    expect_open_error(bad, OCT_EFORMAT, "checksum mismatch: file is corrupt");
    /* The header alone: read without the data, so the checksum is not looked at, but a file of
     * the wrong size is still refused. */
    oct_st_file h;
    assert_int_equal(oct_st_open_header(&h, bad), OCT_OK);
    assert_int_equal(h.count, 1);
    assert_string_equal(h.entries[0].name, "a");
    assert_int_equal(h.entries[0].numel, 5);
    assert_null(h.entries[0].data);
    assert_non_null(oct_st_meta(&h, "octet.crc32"));
    oct_st_close(&h);
    spit(bad, good, n - 1);
    assert_int_equal(oct_st_open_header(&h, bad), OCT_EFORMAT);
    assert_non_null(strstr(oct_last_error(), "beyond the 19-byte data buffer"));
    oct_st_close(&h);
    free(longer);
    free(good);
    expect_open_error(path_in_dir("missing.safetensors"), OCT_EIO, "cannot open");
    expect_open_error(dir, OCT_EIO, "not a regular file (a directory)");
    /* A FIFO with no writer is refused at once (an open() for reading would wait for one); the
     * alarm fails a hang fast. */
    const char *fifo = path_in_dir("input.fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    alarm(20);
    expect_open_error(fifo, OCT_EIO, "not a regular file (a FIFO)");
    alarm(0);
    assert_int_equal(unlink(fifo), 0);
}

static void corrupt_headers(void **state) {
    static const struct {
        const char *header;
        size_t data;
        oct_status code;
        const char *what;
    } cases[] = {
        {"{\"a\":", 0, OCT_EFORMAT, "header is not valid JSON"},
        {"", 0, OCT_EFORMAT, "header is not valid JSON"},
        {"[1, 2]", 0, OCT_EFORMAT, "header is not a JSON object"},
        {"{\"a\":3}", 0, OCT_EFORMAT, "tensor \"a\": entry is not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT, "\"dtype\" is missing"},
        {"{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT,
         "\"dtype\" is missing or not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT,
         "\"shape\" is missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT,
         "\"shape\" is missing or not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, OCT_EFORMAT,
         "\"data_offsets\" is missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, OCT_EFORMAT,
         "not [begin, end]"},
        {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, OCT_EUNSUPPORTED,
         "tensor \"a\": unsupported dtype \"Q7\""},
        {"{\"a\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, OCT_EUNSUPPORTED,
         "unsupported dtype \"BOOL\""},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
         OCT_EUNSUPPORTED, "9 dimensions, at most 8 supported"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT,
         "dimension 0 is not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT,
         "dimension 0 is not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2147483648],\"data_offsets\":[0,4]}}", 4,
         OCT_EFORMAT, "dimension 1 is not an integer"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2147483647,2147483647,2147483647],"
         "\"data_offsets\":[0,8]}}",
         8, OCT_EFORMAT, "the size of the shape overflows"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1073741824,1073741824,16],"
         "\"data_offsets\":[0,8]}}",
         8, OCT_EFORMAT, "the size of the shape overflows"}, /* numel fits, bytes do not */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, OCT_EFORMAT,
         "not non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4, OCT_EFORMAT,
         "not non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, OCT_EFORMAT,
         "end 0 < begin 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, OCT_EFORMAT,
         "end 8 beyond the 4-byte data buffer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, OCT_EFORMAT,
         "4 data bytes, but F32 [2] needs 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, OCT_EFORMAT, "tensor \"b\": data overlaps the previous tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, OCT_EFORMAT, "tensor \"b\": a 4-byte hole in the data precedes it"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, OCT_EFORMAT,
         "4 trailing bytes after the last tensor"},
        {"{}", 1, OCT_EFORMAT, "1 trailing bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, OCT_EFORMAT, "duplicate object key"},
        {"{\"__metadata__\":[]}", 0, OCT_EFORMAT, "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, OCT_EFORMAT, "metadata \"k\" is not a string"},
        {"{\"__metadata__\":{\"octet.crc32\":\"ABCDEF01\"}}", 0, OCT_EFORMAT,
         "is not 8 lowercase hex digits"},
        {"{\"__metadata__\":{\"octet.crc32\":\"00000001\"}}", 0, OCT_EFORMAT,
         "checksum mismatch: file is corrupt"},
    };
    const char *path = path_in_dir("hdr.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit_header(path, cases[i].header, cases[i].data);
        expect_open_error(path, cases[i].code, cases[i].what);
    }
    /* An absurd header length, checked before the file size. */
    unsigned char huge[16] = {0, 0, 0, 0x10, 0, 0, 0, 0};
    spit(path, huge, sizeof huge);
    expect_open_error(path, OCT_EFORMAT, "header length 268435456 is absurd");

    /* Files from other writers: no checksum, space padding, an empty file, empty tensors. */
    static const char *valid[] = {
        "{}",
        "{\"__metadata__\":{\"format\":\"pt\"}}    ",
        "{\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[4,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
    };
    for (int i = 0; i < 3; i++) {
        spit_header(path, valid[i], i == 2 ? 4 : 0);
        oct_st_file f;
        if (oct_st_open(&f, path) != OCT_OK) fail_msg("%s", oct_last_error());
        assert_int_equal(f.count, i == 2 ? 2 : 0);
        oct_st_close(&f);
    }
}

/* oct_st_to_f32: every kind of half (normal, subnormal, signed zero, infinities, NaN), bfloat16
 * and float64 read as float32; an integer tensor is refused. */
static void float_dtypes_to_f32(void **state) {
    const uint16_t half[] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff,
                             0x8000, 0x7c00, 0xfc00, 0x7e00};
    const float want[] = {1.0f, -2.0f, 0x1p-24f, 0x3ffp-24f, 65504.0f, -0.0f, INFINITY, -INFINITY};
    const uint16_t bf16[] = {0x3f80, 0xc0a0, 0x0001};
    const double f64[] = {0.1, -1e300, 3.0};
    const int32_t ints[] = {1};
    int nh = 9, nb = 3, nd = 3, ni = 1;
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_int_equal(oct_st_writer_add(&w, "h", OCT_DT_F16, 1, &nh, half), OCT_OK);
    assert_int_equal(oct_st_writer_add(&w, "b", OCT_DT_BF16, 1, &nb, bf16), OCT_OK);
    assert_int_equal(oct_st_writer_add(&w, "d", OCT_DT_F64, 1, &nd, f64), OCT_OK);
    assert_int_equal(oct_st_writer_add(&w, "i", OCT_DT_I32, 1, &ni, ints), OCT_OK);
    const char *path = path_in_dir("dtypes.safetensors");
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    float out[9];
    assert_int_equal(oct_st_to_f32(&f, oct_st_find(&f, "h"), out), OCT_OK);
    assert_memory_equal(out, want, sizeof want); /* bit for bit: -0.0 too */
    assert_true(isnan(out[8]));
    assert_int_equal(oct_st_to_f32(&f, oct_st_find(&f, "b"), out), OCT_OK);
    assert_true(out[0] == 1.0f && out[1] == -5.0f && out[2] == 0x1p-133f);
    assert_int_equal(oct_st_to_f32(&f, oct_st_find(&f, "d"), out), OCT_OK);
    assert_true(out[0] == 0.1f && out[1] == -INFINITY && out[2] == 3.0f);
    assert_int_equal(oct_st_to_f32(&f, oct_st_find(&f, "i"), out), OCT_EUNSUPPORTED);
    assert_non_null(strstr(oct_last_error(), "'i' is I32"));
    /* oct_st_read_f32 converts too, and refuses an integer tensor */
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_tensor *t = oct_tensor_zeros(&a, 1, &nh);
    t->name = "h";
    assert_int_equal(oct_st_read_f32(&f, t), OCT_OK);
    assert_memory_equal(t->data, want, sizeof want);
    t->name = "i";
    t->shape[0] = t->size = 1;
    assert_int_equal(oct_st_read_f32(&f, t), OCT_EFORMAT);
    oct_arena_free(&a);
    oct_st_close(&f);
    unlink(path);
}

/* oct_f32_to_f16 rounds to nearest, ties to even, through subnormals, overflow and NaN; every
 * half survives the round trip through float. */
static void f32_to_f16(void **state) {
    const float x[] = {1.0f,  -2.0f,    65504.0f, 65519.0f,    65520.0f,        1e-8f,
                       3e-8f, 0x1p-25f, 0x3p-25f, 0x1p-14f,    1.0f + 0x1p-11f, 1.0f + 0x3p-11f,
                       -0.0f, INFINITY, -NAN,     0x1.ffcp-15f};
    const uint16_t want[] = {0x3c00, 0xc000, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x0000,
                             0x0002, 0x0400, 0x3c00, 0x3c02, 0x8000, 0x7c00, 0xfe00, 0x0400};
    uint16_t got[16];
    oct_f32_to_f16(x, 16, got);
    for (int i = 0; i < 16; i++)
        if (got[i] != want[i])
            fail_msg("x[%d] = %a: 0x%04x, want 0x%04x", i, x[i], got[i], want[i]);
    static uint16_t all[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    int n = 65536;
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_int_equal(oct_st_writer_add(&w, "h", OCT_DT_F16, 1, &n, all), OCT_OK);
    const char *path = path_in_dir("halves.safetensors");
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_file file;
    assert_int_equal(oct_st_open(&file, path), OCT_OK);
    assert_int_equal(oct_st_to_f32(&file, oct_st_find(&file, "h"), f), OCT_OK);
    oct_st_close(&file);
    oct_f32_to_f16(f, n, back);
    for (int i = 0; i < n; i++) {
        bool nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        if (nan ? (back[i] & 0x7e00) != 0x7e00 : back[i] != i)
            fail_msg("half 0x%04x -> %a -> 0x%04x", i, f[i], back[i]);
    }
    unlink(path);
}

/* What oct_st_pending_temp() said in a signal handler during a write, and whether that file
 * existed then. */
static char pending_seen[256];
static volatile sig_atomic_t pending_existed;

static void note_pending(int sig) {
    const char *tmp = oct_st_pending_temp();
    struct stat st;
    if (tmp && strlen(tmp) < sizeof pending_seen) {
        memcpy(pending_seen, tmp, strlen(tmp) + 1);
        pending_existed = stat(tmp, &st) == 0 && S_ISREG(st.st_mode);
    }
}

static void atomic_writes(void **state) {
    static const char old[] = "previous contents";
    const char *target = path_in_dir("atomic.safetensors");
    char path[256];
    snprintf(path, sizeof path, "%s", target);
    spit(path, old, sizeof old);
    static float big[1 << 14];
    int shape[1] = {1 << 14};
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_int_equal(oct_st_writer_add(&w, "big", OCT_DT_F32, 1, shape, big), OCT_OK);

    assert_int_equal(oct_st_writer_write(&w, path_in_dir("no/such/dir/x.safetensors")), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), "no/such/dir/x.safetensors: cannot create"));

    /* The file system refuses the write halfway: the target keeps its old contents. */
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 4096;
    /* SIGXFSZ's handler sees the temporary file being written (for a SIGINT handler to remove) */
    assert_null(oct_st_pending_temp());
    void (*handler)(int) = signal(SIGXFSZ, note_pending);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    oct_status s = oct_st_writer_write(&w, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, handler);
    assert_int_equal(s, OCT_EIO);
    assert_non_null(strstr(oct_last_error(), "write failed"));
    assert_true(pending_existed);
    assert_int_equal(strncmp(pending_seen, path, strlen(path)), 0);
    assert_non_null(strstr(pending_seen + strlen(path), ".tmp."));
    assert_null(oct_st_pending_temp());
    size_t n;
    unsigned char *got = slurp(path, &n);
    assert_int_equal(n, sizeof old);
    assert_memory_equal(got, old, n);
    free(got);
    assert_int_equal(count_temps(), 0);

    /* rename fails: the target is a directory. */
    const char *sub = path_in_dir("subdir");
    assert_int_equal(mkdir(sub, 0755), 0);
    spit(path_in_dir("subdir/keep"), old, sizeof old);
    assert_int_equal(oct_st_writer_write(&w, path_in_dir("subdir")), OCT_EIO);
    assert_int_equal(count_temps(), 0);
    struct stat st;
    assert_int_equal(stat(path_in_dir("subdir/keep"), &st), 0);

    /* A FIFO (as a device such as /dev/null) is not replaced by a regular file. */
    const char *fifo = path_in_dir("fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(oct_st_writer_write(&w, fifo), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), "exists and is not a regular file"));
    assert_int_equal(stat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(count_temps(), 0);

    /* A read-only directory (root ignores permissions). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(path_in_dir("subdir"), 0555), 0);
        assert_int_equal(oct_st_writer_write(&w, path_in_dir("subdir/keep")), OCT_EIO);
        assert_int_equal(chmod(path_in_dir("subdir"), 0755), 0);
        assert_int_equal(stat(path_in_dir("subdir/keep"), &st), 0);
        assert_int_equal((size_t)st.st_size, sizeof old);
    }

    /* Success replaces the target. */
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
    assert_int_equal(count_temps(), 0);
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    assert_int_equal(oct_st_find(&f, "big")->numel, 1 << 14);
    oct_st_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(f32_tensors_and_lookup_errors),
        cmocka_unit_test(exact_bytes),
        cmocka_unit_test(writer_errors),
        cmocka_unit_test(truncated_and_extended),
        cmocka_unit_test(corrupt_headers),
        cmocka_unit_test(atomic_writes),
        cmocka_unit_test(float_dtypes_to_f32),
        cmocka_unit_test(f32_to_f16),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
