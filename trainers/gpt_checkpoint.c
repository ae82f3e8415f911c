/* Checkpoints of `octet train gpt`: the model file plus the optimizer state and the run (see
 * gpt_checkpoint.h). 64-bit values (generator states) are stored as 16 hex digits, since JSON
 * numbers hold them only to 53 bits. */
#include "gpt_checkpoint.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "load_check.h"

#define ARGS_KEY "octet.train.args"
#define STATE_KEY "octet.train.state"

void gpt_run_text(gpt_run *run, const oct_text *text) {
    run->text_n = text->n;
    run->text_crc = (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), text->tokens, (size_t)text->n);
}

static json_t *hex64(uint64_t v) {
    char buf[17];
    snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return json_string(buf);
}

static bool parse_hex64(const json_t *j, uint64_t *out) {
    const char *s = json_string_value(j);
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16) return false;
    *out = strtoull(s, NULL, 16);
    return true;
}

/* The name of the optimizer state tensor t in a checkpoint. */
static void optim_name(char *buf, size_t n, const oct_tensor *t) {
    snprintf(buf, n, "%s%s", GPT_OPTIM_PREFIX, t->name);
}

/* The run as a JSON object (metadata STATE_KEY); NULL after oct_fail naming the checkpoint at
 * path. */
static char *run_json(const char *path, const gpt_run *run, const oct_optim *opt) {
    json_t *rngs = json_array();
    bool ok = rngs != NULL;
    for (int i = 0; ok && i < run->n_rng; i++)
        ok = !json_array_append_new(
            rngs, json_pack("[o, o]", hex64(run->rng[i].state), hex64(run->rng[i].inc)));
    json_t *o = NULL;
    if (ok) /* json_pack takes rngs, also when it fails */
        o = json_pack("{s:i, s:I, s:o, s:I, s:I, s:s, s:[f, i]}", "step", run->step, "optim_step",
                      (json_int_t)opt->step, "rng", rngs, "text_tokens", (json_int_t)run->text_n,
                      "text_crc32", (json_int_t)run->text_crc, "options", run->options,
                      "train_losses", run->loss_sum, run->loss_n);
    else
        json_decref(rngs);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s)
        oct_fail(OCT_EINVAL,
                 "--checkpoint %s: the run's state cannot be recorded (out of memory, or an "
                 "option that is not valid UTF-8)",
                 path);
    return s;
}

/* arg with its bytes outside printable ASCII as \xNN, into buf (n bytes). */
static const char *escaped(const char *arg, char *buf, size_t n) {
    size_t k = 0;
    for (const unsigned char *c = (const unsigned char *)arg; *c && k + 5 < n; c++)
        k += (size_t)snprintf(buf + k, n - k, *c < 0x20 || *c >= 0x7f ? "\\x%02x" : "%c", *c);
    buf[k] = '\0';
    return buf;
}

/* The command line as a JSON array (metadata ARGS_KEY); NULL after oct_fail naming the
 * checkpoint at path and the argument that is not valid UTF-8 (JSON strings are). */
static char *args_json(const char *path, int argc, char *const *argv) {
    json_t *a = json_array();
    for (int i = 0; a && i < argc; i++) {
        json_t *v = json_string(argv[i]); /* NULL for text that is not UTF-8 */
        if (!v || json_array_append_new(a, v)) {
            char buf[256];
            json_decref(a);
            if (!v)
                oct_fail(OCT_EINVAL,
                         "--checkpoint %s: argument '%s' is not valid UTF-8 and cannot be "
                         "recorded for --resume",
                         path, escaped(argv[i], buf, sizeof buf));
            else
                oct_fail(OCT_ENOMEM, "--checkpoint %s: out of memory", path);
            return NULL;
        }
    }
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (!s) oct_fail(OCT_ENOMEM, "--checkpoint %s: out of memory", path);
    return s;
}

oct_status gpt_checkpoint_check_args(const char *path, int argc, char *const *argv) {
    char *s = args_json(path, argc, argv);
    bool ok = s != NULL;
    free(s);
    return ok ? OCT_OK : OCT_EINVAL;
}

oct_status gpt_checkpoint_save(const char *path, const gpt_model *m, const oct_optim *opt,
                               const gpt_run *run, int argc, char *const *argv) {
    oct_st_writer w;
    oct_st_writer_init(&w);
    oct_status s = OCT_OK;
    for (int i = 0; i < opt->n_state && s == OCT_OK; i++) {
        const oct_tensor *t = opt->state[i];
        if (!t) continue; /* Muon's empty second slot */
        char name[256];
        optim_name(name, sizeof name, t);
        s = oct_st_writer_add(&w, name, OCT_DT_F32, t->ndim, t->shape, t->data);
    }
    char *state = s == OCT_OK ? run_json(path, run, opt) : NULL;
    char *args = state ? args_json(path, argc, argv) : NULL;
    if (s == OCT_OK && !args) s = OCT_EINVAL; /* run_json or args_json failed */
    if (s == OCT_OK) s = oct_st_writer_meta(&w, STATE_KEY, state);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, ARGS_KEY, args);
    free(state);
    free(args);
    if (s == OCT_OK) s = gpt_model_add(m, &w, path);
    if (s == OCT_OK) s = oct_st_writer_write(&w, path);
    oct_st_writer_free(&w);
    return s;
}

/* The JSON metadata value for key of the checkpoint f (new reference), or NULL after oct_fail. */
static json_t *meta_json(const oct_st_file *f, const char *key) {
    const char *v = oct_st_meta(f, key);
    if (!v) {
        oct_fail(OCT_EFORMAT, "%s: not a checkpoint of `octet train gpt --checkpoint` (no %s)",
                 f->path, key);
        return NULL;
    }
    json_t *j = json_loads(v, 0, NULL);
    if (!j) oct_fail(OCT_EFORMAT, "%s: metadata '%s' is not JSON", f->path, key);
    return j;
}

oct_status gpt_checkpoint_args(const char *path, int *argc, char ***argv) {
    *argc = 0;
    *argv = NULL;
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != OCT_OK) return s;
    json_t *a = meta_json(&f, ARGS_KEY);
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    char **v = json_is_array(a) ? calloc(n + 1, sizeof *v) : NULL;
    for (size_t i = 0; v && i < n; i++) {
        const char *arg = json_string_value(json_array_get(a, i));
        if (!arg || !(v[i] = strdup(arg))) {
            gpt_checkpoint_free_args((int)i, v);
            v = NULL;
        }
    }
    if (!a)
        s = OCT_EFORMAT;
    else if (!json_is_array(a) || !v)
        s = oct_fail(OCT_EFORMAT, "%s: metadata '%s' is not a list of strings", path, ARGS_KEY);
    json_decref(a);
    oct_st_close(&f);
    if (s == OCT_OK) {
        *argc = (int)n;
        *argv = v;
    }
    return s;
}

void gpt_checkpoint_free_args(int argc, char **argv) {
    for (int i = 0; argv && i < argc; i++) free(argv[i]);
    free(argv);
}

/* The run from the checkpoint's state object j. */
static oct_status parse_run(const oct_st_file *f, json_t *j, gpt_run *run, int64_t *optim_step) {
    json_int_t step, ostep, n, crc;
    json_t *rngs;
    const char *options = ""; /* absent in checkpoints of octet before it was recorded */
    json_t *losses = NULL;    /* [sum, count]; absent before it was recorded */
    double loss_sum = 0.0;
    json_int_t loss_n = 0;
    if (json_unpack(j, "{s:I, s:I, s:o, s:I, s:I, s?s, s?o}", "step", &step, "optim_step", &ostep,
                    "rng", &rngs, "text_tokens", &n, "text_crc32", &crc, "options", &options,
                    "train_losses", &losses) ||
        (losses && json_unpack(losses, "[F, I]", &loss_sum, &loss_n)) || step < 0 ||
        step > INT32_MAX || ostep < 0 || !json_is_array(rngs) ||
        json_array_size(rngs) > GPT_RUN_MAX_RNG || crc < 0 || crc > UINT32_MAX ||
        strlen(options) >= sizeof run->options || loss_n < 0 || loss_n > step ||
        !isfinite(loss_sum))
        return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is malformed", f->path, STATE_KEY);
    run->loss_sum = loss_sum;
    run->loss_n = (int)loss_n;
    snprintf(run->options, sizeof run->options, "%s", options);
    run->step = (int)step;
    run->n_rng = (int)json_array_size(rngs);
    run->text_n = n;
    run->text_crc = (uint32_t)crc;
    *optim_step = ostep;
    for (int i = 0; i < run->n_rng; i++) {
        json_t *r = json_array_get(rngs, (size_t)i);
        if (!parse_hex64(json_array_get(r, 0), &run->rng[i].state) ||
            !parse_hex64(json_array_get(r, 1), &run->rng[i].inc))
            return oct_fail(OCT_EFORMAT, "%s: metadata '%s': generator %d is malformed", f->path,
                            STATE_KEY, i);
    }
    return OCT_OK;
}

int gpt_checkpoint_step(const char *path, int *steps) {
    *steps = 0;
    oct_st_file f;
    if (oct_st_open_header(&f, path) != OCT_OK) return -1;
    json_t *j = meta_json(&f, STATE_KEY); /* NULL: no checkpoint */
    gpt_run run;
    int64_t optim_step;
    int step = j && parse_run(&f, j, &run, &optim_step) == OCT_OK ? run.step : -1;
    const char *at = step >= 0 ? strstr(run.options, "--steps=") : NULL; /* "--a=1 --steps=N" */
    if (at && (at == run.options || at[-1] == ' ')) *steps = atoi(at + strlen("--steps="));
    json_decref(j);
    oct_st_close(&f);
    return step;
}

oct_status gpt_checkpoint_restore(const char *path, oct_optim *opt, gpt_run *run) {
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != OCT_OK) return s;
    json_t *j = meta_json(&f, STATE_KEY);
    int64_t optim_step = 0;
    s = j ? parse_run(&f, j, run, &optim_step) : OCT_EFORMAT;
    json_decref(j);
    for (int i = 0; i < opt->n_state && s == OCT_OK; i++) {
        oct_tensor *t = opt->state[i];
        if (!t) continue;
        char name[256];
        optim_name(name, sizeof name, t);
        const void *data;
        s = oct_st_get(&f, name, OCT_DT_F32, t->ndim, t->shape, &data);
        if (s == OCT_ENOTFOUND)
            s = oct_fail(OCT_EFORMAT, "%s: optimizer tensor '%s' is missing (a different --optim?)",
                         path, name);
        if (s == OCT_OK) s = load_check_finite(path, name, data, t->size);
        if (s == OCT_OK) memcpy(t->data, data, (size_t)t->size * sizeof *t->data);
    }
    if (s == OCT_OK) opt->step = optim_step;
    oct_st_close(&f);
    return s;
}

bool gpt_run_options_match(const char *rec, const char *now, char *diff, size_t n) {
    const char *a = rec, *b = now;
    for (;;) {
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        if (!la && !lb) return true;
        const char *eq = memchr(b, '=', lb);
        char name[128]; /* " --x=" */
        snprintf(name, sizeof name, " %.*s", eq ? (int)(eq - b + 1) : 0, b);
        size_t vlen = eq ? lb - (size_t)(eq - b) : 0;
        bool off = (vlen == 2 && !strncmp(eq, "=-", 2)) || (vlen == 6 && !strncmp(eq, "=false", 6));
        bool same = la == lb && !strncmp(a, b, la);
        bool added = !same && off && strncmp(rec, name + 1, strlen(name + 1)) && !strstr(rec, name);
        if (!same && !added) {
            snprintf(diff, n, "%.*s (this octet: %.*s)", (int)la, a, (int)lb, b);
            return false;
        }
        if (same) a += la + (a[la] == ' ');
        b += lb + (b[lb] == ' ');
    }
}
