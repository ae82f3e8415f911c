/* `octet inspect FILE`: what a safetensors file holds: its metadata, every tensor (name, dtype,
 * shape, bytes), and for an int8 export the layer table (after full validation by the loader),
 * so a model can be checked without Python. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "int8_model.h"
#include "octet/io.h"

/* Prints the layer table of a validated int8 export. */
static int print_layers(const char *path) {
    oct_i8_mlp m;
    if (oct_i8_mlp_load(&m, path)) return cli_fail(NULL);
    if (m.dynamic)
        printf("int8 MLP with dynamic activations (every layer's input quantized per row at run "
               "time), input: normalization mean %.6g std %.6g\n",
               (double)m.in_mean, (double)m.in_std);
    else
        printf("int8 MLP, input: normalization mean %.6g std %.6g, codes [%d, %d]\n",
               (double)m.in_mean, (double)m.in_std, (int)m.in_qmin, (int)m.in_qmax);
    printf("  %-5s %6s %6s %5s %12s %4s %12s %4s %9s  %s\n", "layer", "in", "out", "relu",
           "in scale", "zp", "out scale", "zp", "codes", "weight scales (min..max)");
    for (int i = 0; i < m.n_layers; i++) {
        const oct_qlinear *l = &m.layers[i];
        float lo = l->w_scale[0], hi = l->w_scale[0];
        for (int c = 1; c < l->out; c++) {
            lo = l->w_scale[c] < lo ? l->w_scale[c] : lo;
            hi = l->w_scale[c] > hi ? l->w_scale[c] : hi;
        }
        char fc[16], codes[16], yscale[24], yzp[8], ascale[24] = "dynamic", azp[8] = "-";
        snprintf(fc, sizeof fc, "fc%d", i);
        if (!l->dynamic) {
            snprintf(ascale, sizeof ascale, "%.6g", (double)l->a_scale);
            snprintf(azp, sizeof azp, "%d", (int)l->a_zp);
        }
        if (l->quant_out) {
            snprintf(codes, sizeof codes, "[%d,%d]", (int)l->y_qmin, (int)l->y_qmax);
            snprintf(yscale, sizeof yscale, "%.6g", (double)l->y_scale);
            snprintf(yzp, sizeof yzp, "%d", (int)l->y_zp);
        } else {
            snprintf(codes, sizeof codes, l->dynamic ? "float" : "int32");
            snprintf(yscale, sizeof yscale, "-");
            snprintf(yzp, sizeof yzp, "-");
        }
        printf("  %-5s %6d %6d %5s %12s %4s %12s %4s %9s  %.4g..%.4g\n", fc, l->in, l->out,
               l->relu ? "yes" : "no", ascale, azp, yscale, yzp, codes, (double)lo, (double)hi);
    }
    oct_i8_mlp_free(&m);
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
        char shape[96] = "(";
        for (int d = 0; d < e->ndim; d++) {
            size_t len = strlen(shape);
            snprintf(shape + len, sizeof shape - len, d ? ", %d" : "%d", e->shape[d]);
        }
        strncat(shape, ")", sizeof shape - strlen(shape) - 1);
        printf("  %-28s %-4s %-16s %10zu bytes\n", e->name, oct_dtype_name(e->dtype), shape,
               e->nbytes);
        numel += e->numel;
    }
    printf("  total: %lld values, %zu bytes of data\n", (long long)numel, f.data_size);
    oct_st_close(&f);
    return int8_is_export(pos[0]) ? print_layers(pos[0]) : CLI_OK;
}
