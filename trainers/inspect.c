/* `octet inspect FILE`: what a safetensors file holds: its metadata, every tensor (name, dtype,
 * shape, bytes), and for an int8 MLP or GPT export the layer table (after full validation by the
 * loader), so a model can be checked without Python. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt_int8.h"
#include "int8_model.h"
#include "octet/io.h"

/* The header of the layer table. */
static void print_header(void) {
    printf("  %-16s %6s %6s %5s %12s %4s %12s %4s %9s %9s  %s\n", "layer", "in", "out", "relu",
           "in scale", "zp", "out scale", "zp", "codes", "weights", "weight scales (min..max)");
}

/* One row of the layer table: linear l called name, stored in f (its weights "int8", or packed
 * "b-bit idx" into a codebook of 2^b codes). */
static void print_linear(const char *name, const oct_qlinear *l, const oct_st_file *f) {
    char book_name[96], weights[16] = "int8";
    snprintf(book_name, sizeof book_name, "%s.weight_codebook", name);
    const oct_st_entry *book = oct_st_find(f, book_name);
    if (book && oct_i8_index_bits(book->numel))
        snprintf(weights, sizeof weights, "%d-bit idx", oct_i8_index_bits(book->numel));
    float lo = l->w_scale[0], hi = l->w_scale[0];
    for (int c = 1; c < l->out; c++) {
        lo = l->w_scale[c] < lo ? l->w_scale[c] : lo;
        hi = l->w_scale[c] > hi ? l->w_scale[c] : hi;
    }
    char codes[16] = "int32", yscale[24] = "-", yzp[8] = "-", ascale[24] = "dynamic", azp[8] = "-";
    if (!l->dynamic) {
        snprintf(ascale, sizeof ascale, "%.6g", (double)l->a_scale);
        snprintf(azp, sizeof azp, "%d", (int)l->a_zp);
    } else {
        snprintf(codes, sizeof codes, "float");
    }
    if (l->quant_out) {
        snprintf(codes, sizeof codes, "[%d,%d]", (int)l->y_qmin, (int)l->y_qmax);
        snprintf(yscale, sizeof yscale, "%.6g", (double)l->y_scale);
        snprintf(yzp, sizeof yzp, "%d", (int)l->y_zp);
    }
    printf("  %-16s %6d %6d %5s %12s %4s %12s %4s %9s %9s  %.4g..%.4g\n", name, l->in, l->out,
           l->relu ? "yes" : "no", ascale, azp, yscale, yzp, codes, weights, (double)lo,
           (double)hi);
}

static const char *const dynamic_note =
    " with dynamic activations (every layer's input quantized per row at run time)";

/* Prints the layer table of a validated int8 MLP export. */
static int print_mlp(const char *path, const oct_st_file *f) {
    oct_i8_mlp m;
    if (oct_i8_mlp_load(&m, path)) return cli_fail(NULL);
    printf("int8 MLP%s, input: normalization mean %.6g std %.6g", m.dynamic ? dynamic_note : "",
           (double)m.in_mean, (double)m.in_std);
    if (!m.dynamic) printf(", codes [%d, %d]", (int)m.in_qmin, (int)m.in_qmax);
    printf("\n");
    print_header();
    for (int i = 0; i < m.n_layers; i++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", i);
        print_linear(name, &m.layers[i], f);
    }
    oct_i8_mlp_free(&m);
    return CLI_OK;
}

/* Prints the config and linear table of a validated int8 GPT export. */
static int print_gpt(const char *path, const oct_st_file *f) {
    oct_i8_gpt m;
    if (oct_i8_gpt_load(&m, path)) return cli_fail(NULL);
    printf("int8 GPT%s: vocabulary %d, context %d, %d layers, %d heads, width %d, MLP %d, %s "
           "GELU, %s positions, %s embeddings\n",
           m.dynamic ? dynamic_note : "", m.vocab, m.context, m.n_layer, m.n_head, m.width, m.mlp,
           m.exact_gelu ? "exact (erf)" : "tanh", cli_positions_name(m.rope, m.no_wpe),
           m.wte_q ? "int8" : "float32");
    print_header();
    for (int j = 0; j < OCT_I8_GPT_PER_BLOCK * m.n_layer + 1; j++) {
        char name[48];
        oct_i8_gpt_linear_name(&m, j, name, sizeof name);
        print_linear(name, &m.lin[j], f);
    }
    oct_i8_gpt_free(&m);
    return CLI_OK;
}

int cmd_inspect(int argc, char **argv) {
    cli_cmd cmd = {"inspect",
                   "FILE",
                   "Lists the metadata and tensors of any safetensors file; for an int8 export\n"
                   "also validates it and prints its layers.",
                   NULL,
                   0,
                   1,
                   1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    oct_st_file f;
    if (oct_st_open(&f, pos[0])) return cli_fail(NULL);
    printf("%s: %zu bytes (header %zu, data %zu), %d tensors\n", pos[0],
           8 + f.header_size + f.data_size, f.header_size, f.data_size, f.count);
    for (int i = 0; i < f.nmeta; i++) printf("  meta %s = %s\n", f.meta[i].key, f.meta[i].value);
    int64_t numel = 0;
    for (int i = 0; i < f.count; i++) {
        const oct_st_entry *e = &f.entries[i];
        char shape[96];
        cli_shape_str(e->ndim, e->shape, shape, sizeof shape);
        printf("  %-28s %-4s %-16s %10zu bytes\n", e->name, oct_dtype_name(e->dtype), shape,
               e->nbytes);
        numel += e->numel;
    }
    printf("  total: %lld values, %zu bytes of data\n", (long long)numel, f.data_size);
    rc = int8_is_export(pos[0])       ? print_mlp(pos[0], &f)
         : gpt_int8_is_export(pos[0]) ? print_gpt(pos[0], &f)
                                      : CLI_OK;
    oct_st_close(&f);
    return rc;
}
