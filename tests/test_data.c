/* Tests for datasets/: IDX loading (valid and broken files, gzip'ed and raw), batch
 * normalization, the minibatch iterator, the text corpus reader, and, when the Debian package
 * is installed, the real Fashion-MNIST test set. Files are written to a fresh mkdtemp
 * directory that the group teardown removes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "octet/data.h"

static char tmpdir[] = "/tmp/octet_test_data_XXXXXX";

/* ---- helpers -------------------------------------------------------------------------------- */

/* Writes n bytes to tmpdir/name, gzip'ed if gz; returns the full path, valid until the fourth
 * next call (copy it to keep it longer). */
static const char *write_file(const char *name, const void *data, size_t n, bool gz) {
    static char paths[4][512];
    static int slot;
    char *path = paths[slot++ % 4];
    snprintf(path, 512, "%s/%s", tmpdir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (n) assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
    return path;
}

/* Reads a whole file into buf (at most cap bytes); returns its size. */
static size_t read_whole(const char *path, uint8_t *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    assert_true(feof(f));
    fclose(f);
    return n;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX image file of n images rows x cols, pixel (i, j) = (7 * i + j) mod 256; returns its
 * size in bytes. */
static size_t make_images(uint8_t *buf, uint32_t n, uint32_t rows, uint32_t cols) {
    put_be32(buf, 0x00000803);
    put_be32(buf + 4, n);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    size_t pixels = (size_t)n * rows * cols;
    for (size_t k = 0; k < pixels; k++)
        buf[16 + k] = (uint8_t)((7 * (k / (rows * cols)) + k % (rows * cols)) % 256);
    return 16 + pixels;
}

/* An IDX label file of n labels, label i = i mod 10. */
static size_t make_labels(uint8_t *buf, uint32_t n) {
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, n);
    for (uint32_t i = 0; i < n; i++) buf[8 + i] = (uint8_t)(i % 10);
    return 8 + n;
}

/* Loading must fail with want, leave s zeroed, and name path (and contain what, if given). */
static void expect_load_fail(const char *images, const char *labels, oct_status want,
                             const char *path, const char *what) {
    oct_image_set s;
    oct_clear_error();
    oct_status st = oct_image_set_load(&s, images, labels);
    if (st != want || !strstr(oct_last_error(), path) || (what && !strstr(oct_last_error(), what)))
        print_error("status %d (want %d), message '%s' (want '%s' and '%s')\n", st, want,
                    oct_last_error(), path, what ? what : "");
    assert_int_equal(st, want);
    assert_non_null(strstr(oct_last_error(), path));
    if (what) assert_non_null(strstr(oct_last_error(), what));
    assert_null(s.images);
    assert_null(s.labels);
    assert_int_equal(s.n, 0);
}

static int setup(void **state) {
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- IDX ------------------------------------------------------------------------------------ */

static void idx_valid_gz_and_raw(void **state) {
    static uint8_t img[16 + 5 * 3 * 2], lab[8 + 5];
    size_t ni = make_images(img, 5, 3, 2), nl = make_labels(lab, 5);
    for (int gz = 0; gz < 2; gz++) {
        const char *ip = write_file(gz ? "v-img.gz" : "v-img", img, ni, gz);
        const char *lp = write_file(gz ? "v-lab.gz" : "v-lab", lab, nl, gz);
        oct_image_set s;
        assert_int_equal(oct_image_set_load(&s, ip, lp), OCT_OK);
        assert_int_equal(s.n, 5);
        assert_int_equal(s.rows, 3);
        assert_int_equal(s.cols, 2);
        assert_int_equal(s.n_classes, 5); /* labels 0..4 */
        assert_memory_equal(s.images, img + 16, 30);
        assert_int_equal(s.images[4 * 6 + 5], 28 + 5);
        assert_memory_equal(s.labels, lab + 8, 5);
        assert_float_equal(s.mean, OCT_FASHION_MNIST_MEAN, 0.0f);
        assert_float_equal(s.std, OCT_FASHION_MNIST_STD, 0.0f);
        oct_image_set_free(&s);
        assert_null(s.images);
        /* the images alone (prediction without labels) */
        assert_int_equal(oct_image_set_load(&s, ip, NULL), OCT_OK);
        assert_int_equal(s.n, 5);
        assert_int_equal(s.n_classes, 0);
        assert_null(s.labels);
        assert_memory_equal(s.images, img + 16, 30);
        oct_image_set_free(&s);
    }
    oct_image_set_free(NULL);
}

/* Any byte is a label: the set has 1 + the largest label classes. */
static void idx_label_classes(void **state) {
    static uint8_t img[16 + 3 * 2 * 2], lab[8 + 3];
    size_t ni = make_images(img, 3, 2, 2), nl = make_labels(lab, 3);
    const char *ip = write_file("k-img", img, ni, false);
    const uint8_t largest[] = {0, 25, 255};
    for (int i = 0; i < 3; i++) {
        lab[8 + 1] = largest[i];
        const char *lp = write_file("k-lab", lab, nl, false);
        oct_image_set s;
        assert_int_equal(oct_image_set_load(&s, ip, lp), OCT_OK);
        assert_int_equal(s.n_classes, largest[i] > 2 ? largest[i] + 1 : 3);
        assert_int_equal(s.labels[1], largest[i]);
        oct_image_set_free(&s);
    }
}

static void idx_load_dir(void **state) {
    static uint8_t img[16 + 4 * 2 * 2], lab[8 + 4];
    size_t ni = make_images(img, 4, 2, 2), nl = make_labels(lab, 4);
    write_file("train-images-idx3-ubyte.gz", img, ni, true);
    write_file("train-labels-idx1-ubyte", lab, nl, false); /* falls back to the raw name */
    oct_image_set s;
    assert_int_equal(oct_image_set_load_dir(&s, tmpdir, true), OCT_OK);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.labels[3], 3);
    oct_image_set_free(&s);
    assert_int_equal(oct_image_set_load_dir(&s, tmpdir, false), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), tmpdir));
    assert_non_null(strstr(oct_last_error(), "t10k-images-idx3-ubyte"));
    assert_null(s.images);
}

static void idx_broken_files(void **state) {
    static uint8_t img[16 + 6 * 4 * 4], lab[8 + 6], bad[sizeof img + 16];
    size_t ni = make_images(img, 6, 4, 4), nl = make_labels(lab, 6);
    char good_img[512], good_lab[512];
    strcpy(good_img, write_file("g-img.gz", img, ni, true));
    strcpy(good_lab, write_file("g-lab.gz", lab, nl, true));
    const char *p;

    for (int gz = 0; gz < 2; gz++) {
        p = write_file(gz ? "hdr.gz" : "hdr", img, 10, gz);
        expect_load_fail(p, good_lab, OCT_EFORMAT, p, "truncated header");
        p = write_file(gz ? "short.gz" : "short", img, ni - 3, gz);
        expect_load_fail(p, good_lab, OCT_EFORMAT, p, "truncated data");
        memcpy(bad, img, ni);
        bad[ni] = 1;
        p = write_file(gz ? "long.gz" : "long", bad, ni + 1, gz);
        expect_load_fail(p, good_lab, OCT_EFORMAT, p, "unexpected data");
    }
    p = write_file("empty.gz", img, 0, true);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "truncated header");

    memcpy(bad, img, 16);
    put_be32(bad, 0x00000801); /* a label file's magic */
    p = write_file("magic1", bad, ni, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "expected 3-D");
    put_be32(bad, 0x4d5a9000);
    p = write_file("magic2", bad, ni, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "not an IDX file");
    put_be32(bad, 0x00000d03); /* float32 elements */
    p = write_file("magic3", bad, ni, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "element type 0x0d");

    memcpy(bad, img, 16);
    put_be32(bad + 8, 0);
    p = write_file("zero", bad, 16, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "dimension 1 of 6 x 0 x 4 is zero");
    put_be32(bad + 4, 0xffffffffu);
    put_be32(bad + 8, 0xffffffffu);
    put_be32(bad + 12, 0xffffffffu);
    p = write_file("huge", bad, 16, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "exceed the limit");
    put_be32(bad + 4, 2); /* 2^31 bytes: one past the limit */
    put_be32(bad + 8, 1u << 15);
    put_be32(bad + 12, 1u << 15);
    p = write_file("limit", bad, 16, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "exceed the limit");
    put_be32(bad + 4, 1); /* 2^31 - 1 bytes claimed, 16 present: fails without allocating it */
    put_be32(bad + 8, 1);
    put_be32(bad + 12, 0x7fffffffu);
    p = write_file("claims", bad, 16 + 100, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "truncated data");

    p = write_file("lab5.gz", bad, make_labels(bad, 5), true);
    expect_load_fail(good_img, p, OCT_EFORMAT, p, "5 labels");
    p = write_file("labimg.gz", img, ni, true); /* images where labels belong */
    expect_load_fail(good_img, p, OCT_EFORMAT, p, "expected 1-D");

    snprintf((char *)bad, sizeof bad, "%s/missing.gz", tmpdir);
    expect_load_fail((const char *)bad, good_lab, OCT_EIO, (const char *)bad, "No such file");
    expect_load_fail(good_img, (const char *)bad, OCT_EIO, (const char *)bad, NULL);
    expect_load_fail(tmpdir, good_lab, OCT_EIO, tmpdir, NULL); /* a directory */
}

static void idx_corrupt_gzip(void **state) {
    /* A payload big enough for a real deflate stream: pseudo-random pixels, 64 images 16x16. */
    static uint8_t img[16 + 64 * 256], gz[sizeof img + 1024], bad[sizeof gz];
    static uint8_t lab[8 + 64];
    make_images(img, 64, 16, 16);
    oct_rng r;
    oct_rng_seed(&r, 7, 0);
    for (size_t k = 16; k < sizeof img; k++) img[k] = (uint8_t)(oct_rng_u32(&r) >> 28);
    char good_lab[512];
    strcpy(good_lab, write_file("c-lab.gz", lab, make_labels(lab, 64), true));
    size_t n = read_whole(write_file("c-img.gz", img, sizeof img, true), gz, sizeof gz);
    assert_true(n > 200);

    memcpy(bad, gz, n); /* flipped bytes in the middle of the deflate stream */
    for (size_t k = n / 2; k < n / 2 + 4; k++) bad[k] ^= 0x5a;
    const char *p = write_file("flip.gz", bad, n, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "gzip stream");

    memcpy(bad, gz, n); /* intact data, wrong CRC-32 in the trailer */
    bad[n - 8] ^= 0xff;
    p = write_file("crc.gz", bad, n, false);
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "corrupt gzip stream (incorrect data check)");

    p = write_file("cut.gz", gz, n - 20, false); /* the .gz file itself cut short */
    expect_load_fail(p, good_lab, OCT_EFORMAT, p, "truncated");
}

/* ---- normalization and batches -------------------------------------------------------------- */

static void image_batches(void **state) {
    static uint8_t img[16 + 5 * 3 * 2], lab[8 + 5];
    const char *ip = write_file("b-img.gz", img, make_images(img, 5, 3, 2), true);
    const char *lp = write_file("b-lab.gz", lab, make_labels(lab, 5), true);
    oct_image_set s;
    assert_int_equal(oct_image_set_load(&s, ip, lp), OCT_OK);
    s.mean = 0.5f;
    s.std = 0.25f;
    int32_t idx[3] = {4, 0, 2}, y[3] = {-1, -1, -1}, y2[2];
    float x[3 * 6], x2[2 * 6];
    oct_image_set_batch(&s, idx, 3, x, y);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(y[i], idx[i]);
        for (int j = 0; j < 6; j++) {
            float p = (float)(7 * idx[i] + j);
            assert_float_equal(x[i * 6 + j], (p / 255.0f - 0.5f) / 0.25f, 1e-6f);
        }
    }
    assert_float_equal(oct_pixel_normalize(0, 0.5f, 0.25f), -2.0f, 0.0f);
    assert_float_equal(oct_pixel_normalize(255, 0.5f, 0.25f), 2.0f, 0.0f);
    oct_image_set_batch_range(&s, 3, 2, x2, y2);
    int32_t idx2[2] = {3, 4};
    oct_image_set_batch(&s, idx2, 2, x, NULL);
    assert_memory_equal(x, x2, sizeof x2);
    assert_int_equal(y2[0], 3);
    assert_int_equal(y2[1], 4);

    /* stats: half the pixels 0, half 255 -> mean 0.5, std 0.5 */
    for (int k = 0; k < 30; k++) s.images[k] = k % 2 ? 255 : 0;
    float mean, std;
    oct_image_set_stats(&s, &mean, &std);
    assert_float_equal(mean, 0.5f, 1e-6f);
    assert_float_equal(std, 0.5f, 1e-6f);
    oct_image_set_free(&s);
}

/* Runs one epoch of b, checking every index appears exactly once (drop_last: at most once, the
 * n % batch missing); records the order in order[] and returns the number of batches. */
static int run_epoch(oct_batcher *b, int32_t *order) {
    int seen[64] = {0}, batches = 0, total = 0, count;
    const int32_t *idx;
    while (oct_batcher_next(b, &idx, &count)) {
        assert_true(count == b->batch || (!b->drop_last && count < b->batch));
        for (int i = 0; i < count; i++) {
            assert_in_range(idx[i], 0, b->n - 1);
            seen[idx[i]]++;
            order[total++] = idx[i];
        }
        batches++;
    }
    for (int64_t i = 0; i < b->n; i++) assert_true(seen[i] <= 1);
    assert_int_equal(total, b->drop_last ? b->n - b->n % b->batch : b->n);
    assert_int_equal(batches, oct_batcher_batches_per_epoch(b));
    return batches;
}

static void batcher_epochs(void **state) {
    oct_rng r1, r2;
    oct_rng_seed(&r1, 42, 1);
    oct_rng_seed(&r2, 42, 1);
    oct_batcher a, b, c;
    assert_int_equal(oct_batcher_init(&a, 10, 3, false, &r1), OCT_OK);
    assert_int_equal(oct_batcher_init(&b, 10, 3, false, &r2), OCT_OK);
    int32_t oa[2][10], ob[2][10];
    assert_int_equal(run_epoch(&a, oa[0]), 4); /* 3 + 3 + 3 + 1 */
    assert_int_equal(run_epoch(&a, oa[1]), 4);
    run_epoch(&b, ob[0]);
    run_epoch(&b, ob[1]);
    assert_memory_equal(oa, ob, sizeof oa);              /* same seed, same order */
    assert_memory_not_equal(oa[0], oa[1], sizeof oa[0]); /* reshuffled each epoch */
    assert_int_equal(a.epoch, 2);

    /* restore: a fresh batcher moved to (seed, epoch 1, pos 3) continues like the original */
    oct_rng r3;
    oct_rng_seed(&r3, 1, 1);
    assert_int_equal(oct_batcher_init(&c, 10, 3, false, &r3), OCT_OK);
    oct_batcher_restore(&c, a.seed, 1, 3);
    const int32_t *idx;
    int count;
    assert_true(oct_batcher_next(&c, &idx, &count));
    assert_int_equal(count, 3);
    assert_memory_equal(idx, oa[1] + 3, 3 * sizeof *idx);

    oct_batcher d;
    assert_int_equal(oct_batcher_init(&d, 10, 4, true, &r1), OCT_OK);
    int32_t od[10];
    assert_int_equal(run_epoch(&d, od), 2); /* 4 + 4, the last 2 dropped */
    assert_int_equal(run_epoch(&d, od), 2);
    oct_batcher_free(&d);

    assert_int_equal(oct_batcher_init(&d, 3, 4, true, &r1), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "batch size 4"));
    assert_int_equal(oct_batcher_init(&d, 0, 4, false, &r1), OCT_EINVAL);
    assert_int_equal(oct_batcher_init(&d, 3, 4, false, &r1), OCT_OK);
    assert_int_equal(oct_batcher_batches_per_epoch(&d), 1);
    oct_batcher_free(&a);
    oct_batcher_free(&b);
    oct_batcher_free(&c);
    oct_batcher_free(&d);
    oct_batcher_free(NULL);
}

/* ---- text ----------------------------------------------------------------------------------- */

static const char corpus[] = "the quick brown fox jumps over the lazy dog\nTHE END.\n";

static void text_vocab_and_codes(void **state) {
    const char *p = write_file("t.txt", corpus, strlen(corpus), false);
    oct_text t;
    assert_int_equal(oct_text_load(&t, p, false), OCT_OK);
    int64_t n = (int64_t)strlen(corpus);
    assert_int_equal(t.n, n);
    assert_int_equal(t.n_train, n * 9 / 10);
    assert_int_equal(
        oct_text_split_size(&t, OCT_SPLIT_TRAIN) + oct_text_split_size(&t, OCT_SPLIT_VAL), n);
    /* 26 lowercase letters, '\n', ' ', '.', 'D', 'E', 'H', 'N', 'T' */
    assert_int_equal(t.vocab.size, 34);
    for (int i = 1; i < t.vocab.size; i++) assert_true(t.vocab.bytes[i] > t.vocab.bytes[i - 1]);
    assert_int_equal(t.vocab.bytes[0], '\n');
    assert_int_equal(t.vocab.bytes[33], 'z');
    assert_int_equal(t.vocab.id['A'], -1);
    assert_int_equal(t.tokens[0], t.vocab.id['t']);

    int32_t ids[sizeof corpus];
    char back[sizeof corpus];
    assert_int_equal(oct_vocab_encode(&t.vocab, corpus, n, ids), OCT_OK);
    for (int64_t i = 0; i < n; i++) assert_int_equal(ids[i], t.tokens[i]);
    oct_vocab_decode(&t.vocab, ids, n, back);
    assert_string_equal(back, corpus);
    assert_int_equal(oct_vocab_encode(&t.vocab, "the Zoo", 7, ids), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'Z'"));
    assert_non_null(strstr(oct_last_error(), "offset 4"));
    assert_int_equal(oct_vocab_encode(&t.vocab, "\xc3\xa9", 2, ids), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "0xc3"));

    /* the vocabulary survives a round trip through its byte list */
    oct_vocab v;
    assert_int_equal(oct_vocab_from_bytes(&v, t.vocab.bytes, t.vocab.size), OCT_OK);
    assert_memory_equal(&v, &t.vocab, sizeof v);
    uint8_t unsorted[3] = {'a', 'c', 'b'};
    assert_int_equal(oct_vocab_from_bytes(&v, unsorted, 3), OCT_EINVAL);
    assert_int_equal(oct_vocab_from_bytes(&v, unsorted, 0), OCT_EINVAL);
    oct_text_free(&t);

    assert_int_equal(oct_text_load(&t, p, true), OCT_OK); /* byte level: ids are the bytes */
    assert_int_equal(t.vocab.size, 256);
    assert_memory_equal(t.tokens, corpus, (size_t)n);
    assert_int_equal(oct_vocab_encode(&t.vocab, "\xc3\xa9", 2, ids), OCT_OK);
    assert_int_equal(ids[0], 0xc3);
    oct_text_free(&t);
    oct_text_free(NULL);
}

/* A text re-encoded with a larger vocabulary (a model's) keeps its characters; one with a
 * character the vocabulary lacks is refused and left as it was. */
static void text_recode(void **state) {
    const char *p = write_file("r.txt", corpus, strlen(corpus), false);
    oct_text t, bytes;
    assert_int_equal(oct_text_load(&t, p, false), OCT_OK);
    assert_int_equal(oct_text_load(&bytes, p, true), OCT_OK);
    oct_vocab wide; /* the text's characters and 'A', 'Z' and 0xff */
    uint8_t list[40];
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (t.vocab.id[b] >= 0 || b == 'A' || b == 'Z' || b == 0xff) list[n++] = (uint8_t)b;
    assert_int_equal(oct_vocab_from_bytes(&wide, list, n), OCT_OK);
    assert_int_equal(oct_text_recode(&t, &wide), OCT_OK);
    assert_memory_equal(&t.vocab, &wide, sizeof wide);
    for (int64_t i = 0; i < t.n; i++) assert_int_equal(wide.bytes[t.tokens[i]], corpus[i]);

    oct_vocab narrow; /* no 'z': "lazy" at offset 37 */
    assert_int_equal(oct_vocab_from_bytes(&narrow, list, n - 2), OCT_OK);
    assert_int_equal(narrow.bytes[narrow.size - 1], 'y');
    uint8_t before[sizeof corpus];
    memcpy(before, t.tokens, (size_t)t.n);
    assert_int_equal(oct_text_recode(&t, &narrow), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'z'"));
    assert_non_null(strstr(oct_last_error(), "offset 37"));
    assert_memory_equal(t.tokens, before, (size_t)t.n);
    assert_memory_equal(&t.vocab, &wide, sizeof wide);
    /* byte level to the text's own characters and back */
    assert_int_equal(oct_text_recode(&bytes, &wide), OCT_OK);
    assert_memory_equal(bytes.tokens, t.tokens, (size_t)t.n);
    oct_vocab all;
    oct_vocab_bytes(&all);
    assert_int_equal(oct_text_recode(&t, &all), OCT_OK);
    assert_memory_equal(t.tokens, corpus, (size_t)t.n);
    oct_text_free(&t);
    oct_text_free(&bytes);
}

static void text_windows(void **state) {
    const char *p = write_file("w.txt", corpus, strlen(corpus), false);
    oct_text t;
    assert_int_equal(oct_text_load(&t, p, false), OCT_OK);
    oct_rng r;
    oct_rng_seed(&r, 3, 0);
    enum { B = 8, T = 4 };
    int32_t x[B * T], y[B * T];
    char wx[T + 2], text[sizeof corpus];
    for (int split = 0; split < 2; split++) {
        int64_t start = split ? t.n_train : 0, len = oct_text_split_size(&t, (oct_split)split);
        memcpy(text, corpus + start, (size_t)len);
        text[len] = '\0';
        assert_int_equal(oct_text_batch(&t, (oct_split)split, &r, B, T, x, y), OCT_OK);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i + 1 < T; i++) assert_int_equal(y[b * T + i], x[b * T + i + 1]);
            /* x followed by the last target is a substring of the split */
            oct_vocab_decode(&t.vocab, x + b * T, T, wx);
            wx[T] = (char)t.vocab.bytes[y[b * T + T - 1]];
            wx[T + 1] = '\0';
            assert_non_null(strstr(text, wx));
        }
    }
    /* the validation split holds 6 tokens: windows of T = 5 fit, T = 6 do not */
    assert_int_equal(oct_text_split_size(&t, OCT_SPLIT_VAL), 6);
    assert_int_equal(oct_text_batch(&t, OCT_SPLIT_VAL, &r, 2, 5, x, y), OCT_OK);
    assert_int_equal(oct_text_batch(&t, OCT_SPLIT_VAL, &r, 2, 6, x, y), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "validation"));
    /* windows every stride tokens: stride T tiles the training split, (len - 1) / T of them;
     * a smaller stride overlaps them, (len - 1 - T) / stride + 1; window k starts at k stride */
    int64_t len = oct_text_split_size(&t, OCT_SPLIT_TRAIN);
    const int strides[2] = {T, 2};
    for (int si = 0; si < 2; si++) {
        int stride = strides[si];
        int64_t count = stride == T ? (len - 1) / T : (len - 1 - T) / stride + 1;
        assert_int_equal(oct_text_window_count(&t, OCT_SPLIT_TRAIN, T, stride), count);
        int64_t k = 0;
        for (int n = B; n == B;) {
            assert_int_equal(oct_text_windows(&t, OCT_SPLIT_TRAIN, k, stride, B, T, x, y, &n),
                             OCT_OK);
            for (int b = 0; b < n; b++, k++)
                for (int i = 0; i < T; i++) {
                    assert_int_equal(x[b * T + i], t.tokens[k * stride + i]);
                    assert_int_equal(y[b * T + i], t.tokens[k * stride + i + 1]);
                }
        }
        assert_int_equal(k, count);
        int n;
        assert_int_equal(oct_text_windows(&t, OCT_SPLIT_TRAIN, count, stride, B, T, x, y, &n),
                         OCT_OK);
        assert_int_equal(n, 0);
    }
    int n;
    assert_int_equal(oct_text_window_count(&t, OCT_SPLIT_VAL, 6, 1), 0);
    assert_int_equal(oct_text_windows(&t, OCT_SPLIT_VAL, 0, 6, 2, 6, x, y, &n), OCT_EINVAL);
    oct_text_free(&t);
}

static void text_errors(void **state) {
    oct_text t;
    const char *p = write_file("empty.txt", "", 0, false);
    assert_int_equal(oct_text_load(&t, p, false), OCT_EFORMAT);
    assert_non_null(strstr(oct_last_error(), p));
    assert_non_null(strstr(oct_last_error(), "empty"));
    assert_null(t.tokens);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such.txt", tmpdir);
    assert_int_equal(oct_text_load(&t, missing, false), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), missing));
    assert_int_equal(oct_text_load(&t, tmpdir, false), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), "not a regular file"));
}

/* A FIFO (with no writer, it would block an open() or a read forever) is refused at once, naming
 * the file: as --text, as an IDX file, and in a data directory. The alarm fails a hang fast. */
static void fifo_inputs(void **state) {
    alarm(20);
    char fifo_dir[600], text[700], images[700], labels[700];
    snprintf(fifo_dir, sizeof fifo_dir, "%s/fifos", tmpdir);
    assert_int_equal(mkdir(fifo_dir, 0755), 0);
    snprintf(text, sizeof text, "%s/text.fifo", fifo_dir);
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte", fifo_dir);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte", fifo_dir);
    assert_int_equal(mkfifo(text, 0644), 0);
    assert_int_equal(mkfifo(images, 0644), 0);
    assert_int_equal(mkfifo(labels, 0644), 0);
    oct_text t;
    assert_int_equal(oct_text_load(&t, text, false), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), text));
    assert_non_null(strstr(oct_last_error(), "not a regular file (a FIFO)"));
    assert_null(t.tokens);
    static uint8_t lab[8 + 4];
    const char *good_labels = write_file("fifo-labels", lab, make_labels(lab, 4), false);
    expect_load_fail(images, good_labels, OCT_EIO, images, "not a regular file (a FIFO)");
    oct_image_set s;
    assert_int_equal(oct_image_set_load_dir(&s, fifo_dir, false), OCT_EIO);
    assert_non_null(strstr(oct_last_error(), images));
    assert_non_null(strstr(oct_last_error(), "not a regular file (a FIFO)"));
    assert_null(s.images);
    alarm(0);
}

/* ---- the real data set ---------------------------------------------------------------------- */

static void fashion_mnist_real(void **state) {
    if (access(OCT_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0) skip();
    oct_image_set s;
    if (oct_image_set_load_dir(&s, OCT_FASHION_MNIST_DIR, false) != OCT_OK)
        fail_msg("%s", oct_last_error());
    assert_int_equal(s.n, 10000);
    assert_int_equal(s.rows, 28);
    assert_int_equal(s.cols, 28);
    int per_class[10] = {0};
    for (int64_t i = 0; i < s.n; i++) {
        assert_true(s.labels[i] < 10);
        per_class[s.labels[i]]++;
    }
    for (int c = 0; c < 10; c++) assert_int_equal(per_class[c], 1000);
    float mean, std;
    oct_image_set_stats(&s, &mean, &std);
    assert_float_equal(mean, OCT_FASHION_MNIST_MEAN, 0.01f); /* the test set is close */
    assert_float_equal(std, OCT_FASHION_MNIST_STD, 0.01f);
    oct_image_set_free(&s);

    if (oct_image_set_load_dir(&s, OCT_FASHION_MNIST_DIR, true) != OCT_OK)
        fail_msg("%s", oct_last_error());
    assert_int_equal(s.n, 60000);
    oct_image_set_stats(&s, &mean, &std);
    assert_float_equal(mean, OCT_FASHION_MNIST_MEAN, 5e-4f); /* the constants are these */
    assert_float_equal(std, OCT_FASHION_MNIST_STD, 5e-4f);
    oct_image_set_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idx_valid_gz_and_raw), cmocka_unit_test(idx_label_classes),
        cmocka_unit_test(idx_load_dir),         cmocka_unit_test(idx_broken_files),
        cmocka_unit_test(idx_corrupt_gzip),     cmocka_unit_test(image_batches),
        cmocka_unit_test(batcher_epochs),       cmocka_unit_test(text_vocab_and_codes),
        cmocka_unit_test(text_windows),         cmocka_unit_test(text_recode),
        cmocka_unit_test(text_errors),          cmocka_unit_test(fifo_inputs),
        cmocka_unit_test(fashion_mnist_real),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
