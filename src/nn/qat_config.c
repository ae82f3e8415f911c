/* The QAT configuration: defaults, validation, names of the quantizer modes, parsing from
 * command-line strings, and the JSON form saved as a model's "octet.qat" metadata. */
#include "octet/qat.h"

#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *const wmode_names[] = {
    [OCT_QAT_W_MINMAX] = "minmax",
    [OCT_QAT_W_LSQ] = "lsq",
    [OCT_QAT_W_POW2] = "pow2",
    [OCT_QAT_W_KMEANS] = "kmeans",
};
_Static_assert(sizeof wmode_names / sizeof wmode_names[0] == OCT_QAT_W_COUNT, "weight modes");

static const char *const amode_names[] = {
    [OCT_QAT_A_EMA] = "ema",   [OCT_QAT_A_MINMAX] = "minmax", [OCT_QAT_A_LSQ] = "lsq",
    [OCT_QAT_A_PACT] = "pact", [OCT_QAT_A_HIST] = "hist",
};
_Static_assert(sizeof amode_names / sizeof amode_names[0] == OCT_QAT_A_COUNT, "act modes");

void oct_qat_config_default(oct_qat_config *c) {
    memset(c, 0, sizeof *c);
    c->weight_bits = 8;
    c->act_bits = 8;
    c->weight_mode = OCT_QAT_W_MINMAX;
    c->n_act_modes = 1;
    c->act_mode[0] = OCT_QAT_A_EMA;
    c->momentum = OCT_OBSERVER_MOMENTUM;
    c->freeze_after = 0;
}

/* Weight bits of the mode m: 2..8, kmeans 2..7, pow2 2..4; what names the setting ("weight_bits "
 * or "layer bits fc0="). */
static oct_status weight_bits_check(oct_qat_wmode m, int bits, const char *what) {
    if (bits < 2 || bits > 8) return oct_fail(OCT_EINVAL, "qat: %s%d, expected 2..8", what, bits);
    if (m == OCT_QAT_W_KMEANS && bits > 7)
        return oct_fail(OCT_EINVAL,
                        "qat: %s%d: kmeans codebooks take 2..7 bits (8 bits is the uniform grid)",
                        what, bits);
    if (m == OCT_QAT_W_POW2 && bits > 4)
        return oct_fail(OCT_EINVAL,
                        "qat: %s%d: pow2 weights take 2..4 bits (codes up to 2^6 = 64 fit int8)",
                        what, bits);
    return OCT_OK;
}

/* One "PATTERN=BITS" item of layer_bits starting at *p: the pattern (NUL-terminated) into pat,
 * the bits into *bits; *p moves past the item and its comma. 1 for an item, 0 at the end,
 * -1 (with the error set) for a malformed one. */
static int layer_bits_next(const char **p, char *pat, size_t n, int *bits) {
    if (!**p) return 0;
    const char *end = strchr(*p, ','), *eq = strchr(*p, '=');
    size_t len = end ? (size_t)(end - *p) : strlen(*p);
    if (!eq || eq >= *p + len || eq == *p || (size_t)(eq - *p) >= n) {
        oct_fail(OCT_EINVAL, "qat: layer bits '%.*s': expected PATTERN=BITS (e.g. lm_head=8)",
                 (int)len, *p);
        return -1;
    }
    memcpy(pat, *p, (size_t)(eq - *p));
    pat[eq - *p] = '\0';
    char *num_end;
    long b = strtol(eq + 1, &num_end, 10);
    if (num_end == eq + 1 || num_end != *p + len || b < 0 || b > 99) {
        oct_fail(OCT_EINVAL, "qat: layer bits '%.*s': BITS is not a number of bits", (int)len, *p);
        return -1;
    }
    *bits = (int)b;
    *p += len + (end ? 1 : 0);
    if (end && !**p) {
        oct_fail(OCT_EINVAL, "qat: layer bits end with a comma");
        return -1;
    }
    return 1;
}

oct_status oct_qat_config_check(const oct_qat_config *c) {
    if ((unsigned)c->weight_mode >= OCT_QAT_W_COUNT)
        return oct_fail(OCT_EINVAL, "qat: weight_mode %d out of range", (int)c->weight_mode);
    oct_status st = weight_bits_check(c->weight_mode, c->weight_bits, "weight_bits ");
    if (st != OCT_OK) return st;
    if (c->act_bits < 2 || c->act_bits > 8)
        return oct_fail(OCT_EINVAL, "qat: act_bits %d, expected 2..8", c->act_bits);
    if (c->per_tensor_weights && c->weight_mode == OCT_QAT_W_LSQ)
        return oct_fail(OCT_EINVAL,
                        "qat: per-tensor weights: they take min-max, pow2 or kmeans scales, "
                        "not learned (lsq) per-channel steps");
    if (!memchr(c->layer_bits, '\0', sizeof c->layer_bits))
        return oct_fail(OCT_EINVAL, "qat: layer bits longer than %d characters",
                        OCT_QAT_LAYER_BITS_LEN - 1);
    char pat[OCT_QAT_LAYER_BITS_LEN], what[OCT_QAT_LAYER_BITS_LEN + 16];
    int bits, r;
    for (const char *p = c->layer_bits; (r = layer_bits_next(&p, pat, sizeof pat, &bits));) {
        if (r < 0) return OCT_EINVAL;
        snprintf(what, sizeof what, "layer bits %s=", pat);
        if ((st = weight_bits_check(c->weight_mode, bits, what)) != OCT_OK) return st;
    }
    if (c->n_act_modes < 1 || c->n_act_modes > OCT_QAT_MAX_POINTS)
        return oct_fail(OCT_EINVAL, "qat: %d activation modes, expected 1..%d", c->n_act_modes,
                        OCT_QAT_MAX_POINTS);
    for (int i = 0; i < c->n_act_modes; i++)
        if ((unsigned)c->act_mode[i] >= OCT_QAT_A_COUNT)
            return oct_fail(OCT_EINVAL, "qat: activation mode %d of point %d out of range",
                            (int)c->act_mode[i], i);
    if (!(c->momentum > 0.0f && c->momentum <= 1.0f))
        return oct_fail(OCT_EINVAL, "qat: momentum %g, expected (0, 1]", (double)c->momentum);
    if (c->freeze_after < 0)
        return oct_fail(OCT_EINVAL, "qat: freeze_after %lld, expected >= 0 (0: never)",
                        (long long)c->freeze_after);
    if (c->embed_bits != 0 && (c->embed_bits < 2 || c->embed_bits > 8))
        return oct_fail(OCT_EINVAL, "qat: embed_bits %d, expected 0 (float32) or 2..8",
                        c->embed_bits);
    return OCT_OK;
}

int oct_qat_config_weight_bits(const oct_qat_config *c, const char *layer) {
    char pat[OCT_QAT_LAYER_BITS_LEN];
    int bits, b = c->weight_bits;
    for (const char *p = c->layer_bits; layer_bits_next(&p, pat, sizeof pat, &bits) > 0;)
        if (!fnmatch(pat, layer, 0)) b = bits;
    return b;
}

int oct_qat_config_min_weight_bits(const oct_qat_config *c) {
    char pat[OCT_QAT_LAYER_BITS_LEN];
    int bits, b = c->weight_bits;
    for (const char *p = c->layer_bits; layer_bits_next(&p, pat, sizeof pat, &bits) > 0;)
        b = bits < b ? bits : b;
    return b;
}

oct_status oct_qat_config_check_layers(const oct_qat_config *c, const char *const *names, int n) {
    char pat[OCT_QAT_LAYER_BITS_LEN];
    int bits;
    for (const char *p = c->layer_bits; layer_bits_next(&p, pat, sizeof pat, &bits) > 0;) {
        int i = 0;
        while (i < n && fnmatch(pat, names[i], 0)) i++;
        if (i == n)
            return oct_fail(OCT_EINVAL, "qat: layer bits pattern '%s' matches no layer (%s ... %s)",
                            pat, n ? names[0] : "", n ? names[n - 1] : "");
    }
    return OCT_OK;
}

oct_qat_amode oct_qat_config_act_mode(const oct_qat_config *c, int point) {
    if (c->n_act_modes > 1) {
        OCT_ASSERT(point >= 0 && point < c->n_act_modes);
        return c->act_mode[point];
    }
    return point == 0 && c->act_mode[0] == OCT_QAT_A_PACT ? OCT_QAT_A_EMA : c->act_mode[0];
}

const char *oct_qat_wmode_name(oct_qat_wmode m) {
    return (unsigned)m < OCT_QAT_W_COUNT ? wmode_names[m] : "?";
}

const char *oct_qat_amode_name(oct_qat_amode m) {
    return (unsigned)m < OCT_QAT_A_COUNT ? amode_names[m] : "?";
}

oct_status oct_qat_wmode_parse(const char *s, oct_qat_wmode *out) {
    for (int i = 0; i < OCT_QAT_W_COUNT; i++)
        if (!strcmp(s, wmode_names[i])) {
            *out = (oct_qat_wmode)i;
            return OCT_OK;
        }
    return oct_fail(OCT_EINVAL, "weight quantizer '%s': expected minmax, lsq, pow2 or kmeans", s);
}

static oct_status amode_parse(const char *s, size_t len, oct_qat_amode *out) {
    for (int i = 0; i < OCT_QAT_A_COUNT; i++)
        if (strlen(amode_names[i]) == len && !strncmp(s, amode_names[i], len)) {
            *out = (oct_qat_amode)i;
            return OCT_OK;
        }
    return oct_fail(OCT_EINVAL, "activation quantizer '%.*s': expected ema, minmax, lsq or pact",
                    (int)len, s);
}

oct_status oct_qat_amodes_parse(const char *s, oct_qat_config *c) {
    oct_qat_amode modes[OCT_QAT_MAX_POINTS];
    int n = 0;
    for (const char *p = s;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == OCT_QAT_MAX_POINTS)
            return oct_fail(OCT_EINVAL, "activation quantizers '%s': more than %d", s,
                            OCT_QAT_MAX_POINTS);
        oct_status st = amode_parse(p, len, &modes[n++]);
        if (st != OCT_OK) return st;
        if (!end) break;
        p = end;
    }
    memcpy(c->act_mode, modes, (size_t)n * sizeof *modes);
    c->n_act_modes = n;
    return OCT_OK;
}

char *oct_qat_config_to_json(const oct_qat_config *c) {
    json_t *modes = json_array();
    for (int i = 0; i < c->n_act_modes; i++)
        json_array_append_new(modes, json_string(oct_qat_amode_name(c->act_mode[i])));
    json_t *o =
        json_pack("{s:i, s:i, s:s, s:o, s:f, s:I, s:i}", "weight_bits", c->weight_bits, "act_bits",
                  c->act_bits, "weight_mode", oct_qat_wmode_name(c->weight_mode), "act_modes",
                  modes, "momentum", (double)c->momentum, "freeze_after",
                  (json_int_t)c->freeze_after, "embed_bits", c->embed_bits);
    if (o && ((c->layer_bits[0] &&
               json_object_set_new(o, "layer_bits", json_string(c->layer_bits)) != 0) ||
              (c->per_tensor_weights &&
               json_object_set_new(o, "per_tensor_weights", json_true()) != 0))) {
        json_decref(o);
        return NULL;
    }
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

static oct_status bad_key(const char *key) {
    return oct_fail(OCT_EFORMAT, "qat config: '%s' has the wrong type or value", key);
}

/* *out = v when v is a JSON integer in int's range (a wider one would wrap into range). */
static oct_status json_int(const json_t *v, const char *key, int *out) {
    if (!json_is_integer(v) || json_integer_value(v) < INT_MIN || json_integer_value(v) > INT_MAX)
        return bad_key(key);
    *out = (int)json_integer_value(v);
    return OCT_OK;
}

oct_status oct_qat_config_from_json(oct_qat_config *c, const char *json) {
    json_error_t err;
    json_t *o = json_loads(json, 0, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return oct_fail(OCT_EFORMAT, "qat config: not a JSON object (%s)", err.text);
    }
    oct_qat_config r;
    oct_qat_config_default(&r);
    oct_status st = OCT_OK;
    static const char *const known[] = {"weight_bits", "act_bits",   "weight_mode",
                                        "act_modes",   "momentum",   "freeze_after",
                                        "embed_bits",  "layer_bits", "per_tensor_weights"};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) { /* a setting this build does not know would be ignored */
        size_t k = 0;
        while (k < sizeof known / sizeof *known && strcmp(key, known[k])) k++;
        if (k == sizeof known / sizeof *known && st == OCT_OK)
            st = oct_fail(OCT_EFORMAT, "qat config: unknown setting '%s' (a newer octet's file?)",
                          key);
    }
    if (st == OCT_OK && (v = json_object_get(o, "weight_bits")))
        st = json_int(v, "weight_bits", &r.weight_bits);
    if (st == OCT_OK && (v = json_object_get(o, "act_bits")))
        st = json_int(v, "act_bits", &r.act_bits);
    if (st == OCT_OK && (v = json_object_get(o, "weight_mode")))
        st = json_is_string(v) && !oct_qat_wmode_parse(json_string_value(v), &r.weight_mode)
                 ? OCT_OK
                 : bad_key("weight_mode");
    if (st == OCT_OK && (v = json_object_get(o, "act_modes"))) {
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n < 1 || n > OCT_QAT_MAX_POINTS) st = bad_key("act_modes");
        for (size_t i = 0; st == OCT_OK && i < n; i++) {
            const char *m = json_string_value(json_array_get(v, i));
            if (!m || amode_parse(m, strlen(m), &r.act_mode[i])) st = bad_key("act_modes");
        }
        r.n_act_modes = (int)n;
    }
    if (st == OCT_OK && (v = json_object_get(o, "momentum")))
        st = json_is_number(v) ? (r.momentum = (float)json_number_value(v), OCT_OK)
                               : bad_key("momentum");
    if (st == OCT_OK && (v = json_object_get(o, "freeze_after")))
        st = json_is_integer(v) ? (r.freeze_after = json_integer_value(v), OCT_OK)
                                : bad_key("freeze_after");
    if (st == OCT_OK && (v = json_object_get(o, "embed_bits")))
        st = json_int(v, "embed_bits", &r.embed_bits);
    if (st == OCT_OK && (v = json_object_get(o, "layer_bits"))) {
        const char *lb = json_string_value(v);
        st = lb && strlen(lb) < sizeof r.layer_bits ? (strcpy(r.layer_bits, lb), OCT_OK)
                                                    : bad_key("layer_bits");
    }
    if (st == OCT_OK && (v = json_object_get(o, "per_tensor_weights")))
        st = json_is_boolean(v) ? (r.per_tensor_weights = json_is_true(v), OCT_OK)
                                : bad_key("per_tensor_weights");
    json_decref(o);
    if (st == OCT_OK && oct_qat_config_check(&r) != OCT_OK)
        st = oct_fail(OCT_EFORMAT, "%s", oct_last_error());
    if (st == OCT_OK) *c = r;
    return st;
}
