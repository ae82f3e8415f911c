/* Internal to src/int8: the pieces of the int8 export files and model checks shared by the MLP
 * (engine.c, export.c) and the GPT (gpt_engine.c, gpt_export.c): one integer linear layer's
 * structural check, its JSON graph entry, its tensors, and the JSON field readers. */
#ifndef OCTET_INT8_INTERNAL_H
#define OCTET_INT8_INTERNAL_H

#include <jansson.h>

#include "octet/int8.h"
#include "octet/io.h"

/* OCT_EINVAL (message naming the layer) unless l is built, its scales are positive and finite,
 * its bias cannot overflow the accumulators, and: logits (int32 output, no relu, no output
 * quantization) when logits, else a requantizing layer with a valid output code range and
 * multipliers. */
oct_status oct__qlinear_check(const oct_qlinear *l, const char *name, bool logits);
/* OCT_EINVAL unless 0 <= qmin < qmax <= 255 and qmin <= zp <= qmax; what names the codes. */
oct_status oct__i8_check_codes(const char *what, int32_t zp, int32_t qmin, int32_t qmax);
/* One embedding table of an int8 GPT: its name ("wte", "wpe"), rows, and where m keeps its int8
 * codes (rows,C), per-row scales (rows) and float values (rows,C). */
typedef struct oct__i8_emb {
    const char *name;
    int rows;
    int8_t **q;
    float **s, **x;
} oct__i8_emb;
/* m's token and position tables into t (m is only written through them by callers that own it);
 * returns how many: 2, or 1 (wte alone) with m->no_wpe. */
int oct__i8_gpt_embeddings(oct_i8_gpt *m, oct__i8_emb t[2]);
/* Sets m->wte and m->wpe (allocated unless no_wpe) to the dequantized int8 embedding codes (all
 * present). */
void oct__i8_gpt_dequantize_embeddings(oct_i8_gpt *m);

/* The graph entry of a linear: {"name", "in", "out", "relu", "input_scale",
 * "input_zero_point", "output": {"scale", "zero_point", "qmin", "qmax"} or null}; a dynamic
 * one: {"name", "in", "out", "relu"}. */
json_t *oct__i8_linear_json(const oct_qlinear *l, const char *name);
/* Adds the tensors "<name>.weight_scale", ".bias_q", ".wsum", ".m0", ".shift" (the last two
 * only when quant_out; a dynamic layer: ".weight_scale", ".wsum", ".bias") when !codes_pass,
 * else the weights: "<name>.weight_q", or "<name>.weight_codebook" and ".weight_idx" when the
 * codes take at most 16 values, from a malloc'd *codes that the caller frees after writing
 * (4-byte tensors of every layer first keeps them aligned). */
oct_status oct__i8_linear_add(oct_st_writer *w, const char *name, const oct_qlinear *l,
                              bool codes_pass, int8_t **codes);

/* An export file being read. */
typedef struct oct__i8_loader {
    const char *path;
    oct_st_file f;
} oct__i8_loader;

/* ---- int8 code tables (codes_io.c) --------------------------------------------------------- */

/* Bytes of scratch oct__i8_codes_add needs for a (rows, cols) table. */
size_t oct__i8_codes_scratch(int rows, int cols);
/* Adds codes (rows, cols) as "<prefix>.weight_q" I8, or, when they take at most 16 values, as
 * "<prefix>.weight_idx" U8 (rows, ceil(cols b / 8)) b-bit indices (b = 1, 2, 4) into
 * "<prefix>.weight_codebook" I8 (2^b codes); the writer keeps pointers to codes and scratch
 * (oct__i8_codes_scratch bytes), which must live until it has written. */
oct_status oct__i8_codes_add(oct_st_writer *w, const char *prefix, const int8_t *codes, int rows,
                             int cols, uint8_t *scratch);
/* Whether the file stores table prefix packed (it has "<prefix>.weight_idx"). */
bool oct__i8_codes_packed(const oct__i8_loader *ld, const char *prefix);
/* Reads table prefix (rows, cols), stored either way, into out; adds the number of tensors it
 * read to *n_tensors. Errors name the file and the tensor. */
oct_status oct__i8_codes_read(const oct__i8_loader *ld, const char *prefix, int rows, int cols,
                              int8_t *out, int *n_tensors);

/* Metadata keys of every int8 export. */
#define OCT__I8_META_FORMAT "octet.format"
#define OCT__I8_META_VERSION "octet.format_version"
#define OCT__I8_META_GRAPH "octet.graph"
/* Where a model's data came from: informational, for the commands' defaults. */
#define OCT__I8_META_SOURCE "octet.source"

/* The file's octet.source metadata, malloc'd into *source (NULL when absent). */
oct_status oct__i8_read_source(const oct__i8_loader *ld, char **source);

/* Checks that the file's format metadata is `format` and its version 1 to `version` (what
 * names the model kind in messages, "MLP" or "GPT") and parses its graph JSON into *graph (the
 * caller frees it with json_decref). */
oct_status oct__i8_read_graph(const oct__i8_loader *ld, const char *format, int version,
                              const char *what, json_t **graph);

/* obj[key] as an integer in [lo, hi] / a number; OCT_EFORMAT naming path, where and key. */
oct_status oct__i8_get_int(const oct__i8_loader *ld, const char *where, json_t *obj,
                           const char *key, long long lo, long long hi, int32_t *out);
oct_status oct__i8_get_float(const oct__i8_loader *ld, const char *where, json_t *obj,
                             const char *key, float *out);
/* obj["activations"]: absent or "static" (false), "dynamic" (true); OCT_EFORMAT otherwise. */
oct_status oct__i8_read_activations(const oct__i8_loader *ld, json_t *obj, bool *dynamic);
/* The scalars of linear name from its graph entry g (whose "name" must be name); l->dynamic set
 * first says which entry to expect. */
oct_status oct__i8_linear_from_json(const oct__i8_loader *ld, json_t *g, const char *name,
                                    oct_qlinear *l);
/* Reads the tensors of linear name (scalars already set; weights as weight_q or as a codebook
 * and packed indices) and checks wsum and the multipliers against the codes and scales; counts
 * the tensors it read into *n_tensors. */
oct_status oct__i8_linear_read(const oct__i8_loader *ld, const char *name, oct_qlinear *l,
                               int *n_tensors);

#endif
