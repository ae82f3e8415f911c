/* `octet export MODEL -o OUT.int8.safetensors`: turns a QAT-trained MLP or GPT (gpt_int8.c) into
 * the integer model the engine runs (formats in include/octet/int8.h). A fp32 model is refused with
 * a hint to train with --qat: its activations have no quantization ranges. The output is written
 * atomically, so a failed export leaves no partial file. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "gpt_int8.h"
#include "mlp_model.h"
#include "octet/int8.h"
#include "octet/io.h"

/* The QAT model in path as a deployed int8 model: load the QAT model (fp32 weights and
 * quantizer state) and convert it with the very builder its forward pass uses. */
static oct_status qat_model_to_int8(const char *path, oct_i8_mlp *out) {
    mlp_model m;
    oct_status s = mlp_model_load(&m, path);
    if (s != OCT_OK) return s;
    s = m.qat ? oct_qat_mlp_to_int8(m.qat, m.mean, m.std, out)
              : oct_fail(OCT_EINVAL, "%s has no quantizer state", path);
    mlp_model_free(&m);
    return s;
}

/* What kind of model file path holds; fails (message naming the file) unless it is a QAT
 * MLP. */
static oct_status check_qat_model(const char *path) {
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != OCT_OK) return s;
    const char *fmt = oct_st_meta(&f, "octet.format"), *kind = oct_st_meta(&f, "octet.model");
    if (fmt && !strcmp(fmt, OCT_I8_FORMAT))
        s = oct_fail(OCT_EINVAL, "%s is already an int8 export", path);
    else if (!kind || strcmp(kind, "mlp"))
        s = oct_fail(OCT_EFORMAT, "%s: not an octet MLP model (metadata octet.model is %s)", path,
                     kind ? kind : "missing");
    else if (!oct_st_meta(&f, "octet.qat"))
        s = oct_fail(OCT_EINVAL,
                     "%s is a fp32 model without quantization ranges: train it with "
                     "'octet train mlp --qat' or calibrate it with 'octet calibrate' to "
                     "export it as int8",
                     path);
    oct_st_close(&f);
    return s;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL;
    const cli_flag flags[] = {
        {"-o", CLI_STR, &out, "output file (required), e.g. model.int8.safetensors", 0, 0},
    };
    cli_cmd cmd = {"export",
                   "MODEL -o OUT.int8.safetensors",
                   "Exports a QAT-trained MLP or GPT as an int8 model for the integer engine\n"
                   "(octet eval --int8, octet predict, octet generate). The file is safetensors,\n"
                   "readable from Python.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   1,
                   1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if (!out) {
        fprintf(stderr, "octet export: -o OUT is required (see octet export --help)\n");
        return CLI_USAGE;
    }
    if (gpt_is_model(pos[0])) return gpt_int8_export(pos[0], out);
    if (gpt_int8_is_export(pos[0])) {
        fprintf(stderr, "octet: %s is already an int8 export\n", pos[0]);
        return CLI_FAIL;
    }
    oct_i8_mlp m = {0};
    if (check_qat_model(pos[0]) || qat_model_to_int8(pos[0], &m) || oct_i8_mlp_save(&m, out)) {
        rc = cli_fail(NULL);
        oct_i8_mlp_free(&m);
        return rc;
    }
    long long fp32 = 0;
    for (int i = 0; i < m.n_layers; i++) fp32 += 4LL * m.layers[i].out * (m.layers[i].in + 1);
    long long size = file_size(out);
    printf("%s: %d layers, %lld bytes (%.2fx the %lld bytes of fp32 weights; %s is %lld bytes)\n",
           out, m.n_layers, size, (double)size / (double)fp32, fp32, pos[0], file_size(pos[0]));
    oct_i8_mlp_free(&m);
    return CLI_OK;
}
