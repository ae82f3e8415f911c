/* `octet export MODEL -o OUT.int8.safetensors`: turns a QAT-trained MLP or GPT (gpt_int8.c) into
 * the integer model the engine runs (formats in include/octet/int8.h). A fp32 model is refused with
 * a hint to train with --qat: its activations have no quantization ranges. The output is written
 * atomically, so a failed export leaves no partial file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt_int8.h"
#include "gpt_model.h"
#include "int8_model.h"
#include "mlp_model.h"
#include "octet/int8.h"
#include "octet/io.h"
#include "octet/qat.h"
#include "torch_import.h"

/* The QAT model in path as a deployed int8 model: load the QAT model (fp32 weights and
 * quantizer state) and convert it with the very builder its forward pass uses. */
static oct_status qat_model_to_int8(const char *path, bool keep_source, oct_i8_mlp *out) {
    mlp_model m;
    oct_status s = mlp_model_load(&m, path);
    if (s != OCT_OK) return s;
    s = m.qat ? oct_qat_mlp_to_int8(m.qat, m.mean, m.std, out)
              : oct_fail(OCT_EINVAL, "%s has no quantizer state", path);
    if (s == OCT_OK && keep_source) out->source = cli_take(&m.source); /* its data */
    mlp_model_free(&m);
    return s;
}

/* What kind of model file path holds; fails (message naming the file) unless it is a QAT
 * MLP. */
static oct_status check_qat_model(const char *path) {
    oct_st_file f;
    oct_status s = oct_st_open_header(&f, path);
    if (s != OCT_OK) return s;
    const char *fmt = oct_st_meta(&f, "octet.format"), *kind = oct_st_meta(&f, "octet.model");
    if (fmt && !strcmp(fmt, OCT_I8_FORMAT))
        s = oct_fail(OCT_EINVAL, "%s is already an int8 export", path);
    else if (!kind || strcmp(kind, "mlp"))
        s = oct_fail(OCT_EFORMAT, "%s: %s, where a QAT MLP or GPT model is expected", path,
                     cli_file_kind(&f));
    else if (!oct_st_meta(&f, "octet.qat"))
        s = oct_fail(OCT_EINVAL,
                     "%s is a fp32 model without quantization ranges: train it with "
                     "'octet train mlp --qat' or calibrate it with 'octet calibrate' to "
                     "export it as int8",
                     path);
    oct_st_close(&f);
    return s;
}

/* Loads the model file path (a GPT when gpt, else an MLP) with its regular loader, which checks
 * its metadata, tensors, shapes, dtypes and values, and releases it. */
static oct_status check_loads(const char *path, bool gpt) {
    gpt_model g;
    mlp_model m;
    oct_status s = gpt ? gpt_model_load(&g, path) : mlp_model_load(&m, path);
    if (s == OCT_OK && gpt) gpt_model_free(&g);
    if (s == OCT_OK && !gpt) mlp_model_free(&m);
    return s;
}

/* The fp32 GPT or MLP model file path, once its loader accepts it, rewritten at out with every
 * F32 tensor as F16 (metadata and other tensors unchanged; a checkpoint's optimizer state and run
 * left out): half the size, read by every command as the float32 values of the halves. */
static int float16_export(const char *path, const char *out, bool keep_source) {
    oct_st_file f;
    if (oct_st_open(&f, path)) return cli_fail(NULL);
    const char *kind = oct_st_meta(&f, "octet.model");
    oct_status s = OCT_OK;
    if (!kind || (strcmp(kind, "gpt") && strcmp(kind, "mlp")))
        s = oct_fail(OCT_EFORMAT, "%s: %s, where an fp32 GPT or MLP model is expected", path,
                     cli_file_kind(&f));
    else if (oct_st_meta(&f, "octet.qat"))
        s = oct_fail(OCT_EINVAL,
                     "%s: a QAT model (it exports to int8 without --float16); --float16 takes a "
                     "fp32 model",
                     path);
    else
        s = check_loads(path, !strcmp(kind, "gpt")); /* what the copy below does not look at */
    int64_t total = 0;
    for (int i = 0; i < f.count; i++)
        if (f.entries[i].dtype == OCT_DT_F32) total += f.entries[i].numel;
    uint16_t *half = s == OCT_OK ? malloc((size_t)(total ? total : 1) * sizeof *half) : NULL;
    if (s == OCT_OK && !half) s = oct_fail(OCT_ENOMEM, "%s: out of memory", path);
    oct_st_writer w;
    oct_st_writer_init(&w);
    for (int i = 0; i < f.nmeta && s == OCT_OK; i++) /* a checkpoint's run state stays behind */
        if (strcmp(f.meta[i].key, "octet.crc32") && strncmp(f.meta[i].key, "octet.train.", 12) &&
            (keep_source || strcmp(f.meta[i].key, CLI_META_SOURCE)))
            s = oct_st_writer_meta(&w, f.meta[i].key, f.meta[i].value);
    int64_t at = 0;
    for (int i = 0; i < f.count && s == OCT_OK; i++) { /* in file order: floats before U8 */
        const oct_st_entry *e = &f.entries[i];
        if (!strncmp(e->name, GPT_OPTIM_PREFIX, strlen(GPT_OPTIM_PREFIX))) continue;
        if (e->dtype != OCT_DT_F32) {
            s = oct_st_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, e->data);
            continue;
        }
        const float *x = e->data;
        for (int64_t j = 0; j < e->numel && s == OCT_OK; j++)
            if (fabsf(x[j]) >= 65520.0f) /* rounds to an infinity, which no loader reads */
                s = oct_fail(OCT_EINVAL,
                             "%s: tensor '%s' holds %g at index %lld, beyond float16's range "
                             "(65504): keep this model in float32",
                             path, e->name, (double)x[j], (long long)j);
        if (s != OCT_OK) break;
        oct_f32_to_f16(e->data, e->numel, half + at);
        s = oct_st_writer_add(&w, e->name, OCT_DT_F16, e->ndim, e->shape, half + at);
        at += e->numel;
    }
    if (s == OCT_OK) s = oct_st_writer_write(&w, out);
    oct_st_writer_free(&w);
    free(half);
    bool gpt = s == OCT_OK && !strcmp(kind, "gpt");
    oct_st_close(&f);
    if (s != OCT_OK) return cli_fail(NULL);
    printf("%s: float16 %s, %lld bytes (%s is %lld bytes)\n", out, gpt ? "GPT" : "MLP",
           cli_file_size(out), path, cli_file_size(path));
    return CLI_OK;
}

/* The GPT or MLP model file path (fp32, or the float weights of a QAT model) as an int8 model
 * with dynamic activations (post-training dynamic quantization). */
static int dynamic_export(const char *path, const char *out, int embed_bits, bool keep_source) {
    bool gpt = gpt_is_model(path);
    if (gpt) {
        gpt_model m;
        if (gpt_model_load(&m, path)) return cli_fail(NULL);
        oct_i8_gpt i8;
        oct_status s = oct_gpt_to_dynamic_int8(&m.gpt, m.vocab.bytes, embed_bits, &i8);
        if (s == OCT_OK && keep_source) i8.source = cli_take(&m.source); /* its text */
        if (s == OCT_OK) s = oct_i8_gpt_save(&i8, out);
        char emb[16];
        if (s == OCT_OK)
            printf("%s: int8 GPT with dynamic activations, %d layer%s, %s embeddings", out,
                   i8.n_layer, i8.n_layer == 1 ? "" : "s",
                   gpt_embed_desc(i8.wte_q ? embed_bits : 0, emb, sizeof emb));
        oct_i8_gpt_free(&i8);
        gpt_model_free(&m);
        if (s != OCT_OK) return cli_fail(NULL);
    } else {
        if (embed_bits) {
            fprintf(stderr, "octet export: --embed-bits: %s is an MLP, which has no embeddings\n",
                    path);
            return CLI_USAGE;
        }
        mlp_model m;
        if (mlp_model_load(&m, path)) return cli_fail(NULL);
        oct_i8_mlp i8;
        oct_status s = oct_mlp_to_dynamic_int8(&m.mlp, m.mean, m.std, &i8);
        if (s != OCT_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", oct_last_error());
            oct_fail(s, "%s: %s", path, msg);
        }
        if (s == OCT_OK && keep_source) i8.source = cli_take(&m.source); /* its data */
        if (s == OCT_OK) s = oct_i8_mlp_save(&i8, out);
        if (s == OCT_OK)
            printf("%s: int8 MLP with dynamic activations, %d layers", out, i8.n_layers);
        oct_i8_mlp_free(&i8);
        mlp_model_free(&m);
        if (s != OCT_OK) return cli_fail(NULL);
    }
    printf(", %lld bytes (%s is %lld bytes)\n", cli_file_size(out), path, cli_file_size(path));
    return CLI_OK;
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL;
    bool float16 = false, dynamic = false, torch = false, no_source = false;
    int embed_bits = 0;
    const cli_flag flags[] = {
        {"-o", CLI_STR, &out, "output file (required), e.g. model.int8.safetensors", 0, 0},
        {"--float16", CLI_BOOL, &float16,
         "instead: a fp32 model with its weights as float16 (half the file; no QAT needed)", 0, 0},
        {"--dynamic", CLI_BOOL, &dynamic,
         "instead: int8 weights, activations quantized per row at run time (dynamic PTQ of a "
         "fp32 or QAT model)",
         0, 0},
        {"--torch", CLI_BOOL, &torch,
         "instead: the float weights of a fp32 or QAT model as a PyTorch state dict (nanoGPT's "
         "names for a GPT, fc1, fc2, ... for an MLP; safetensors.torch.load_file reads it)",
         0, 0},
        {"--embed-bits", CLI_INT, &embed_bits,
         "with --dynamic, GPT: 0 keeps float32 embeddings, 2..8 quantizes them per row", 0, 8},
        {"--no-source", CLI_BOOL, &no_source,
         "leave out the path of the training data (metadata octet.source) that the model records",
         0, 0},
    };
    cli_cmd cmd = {"export",
                   "MODEL -o OUT.int8.safetensors [flags]",
                   "Exports a QAT-trained MLP or GPT as an int8 model for the integer engine\n"
                   "(octet eval --int8, octet predict, octet generate); weights of 4 bits or\n"
                   "fewer are stored packed. With --dynamic, any fp32 or QAT model becomes int8\n"
                   "with dynamic activations; with --float16, a half-size fp32 model; with\n"
                   "--torch, a PyTorch state dict. The file is safetensors, readable from Python.",
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
    if (float16 + dynamic + torch > 1) {
        fprintf(stderr, "octet export: --float16, --dynamic and --torch exclude each other\n");
        return CLI_USAGE;
    }
    if (embed_bits && !dynamic) {
        fprintf(stderr, "octet export: --embed-bits goes with --dynamic (a QAT model records its "
                        "own)\n");
        return CLI_USAGE;
    }
    if (embed_bits == 1) {
        fprintf(stderr, "octet export: --embed-bits: expected 0 or 2..8, got 1\n");
        return CLI_USAGE;
    }
    if (cli_check_output("-o", out)) return CLI_FAIL;
    if ((rc = cli_check_not_input("-o", out, "the model", pos[0], NULL)) != CLI_OK) return rc;
    if (float16) return float16_export(pos[0], out, !no_source);
    if (gpt_int8_is_export(pos[0]) || int8_is_export(pos[0])) {
        fprintf(stderr, "octet: %s is already an int8 export\n", pos[0]);
        return CLI_FAIL;
    }
    if (dynamic) return dynamic_export(pos[0], out, embed_bits, !no_source);
    if (torch) {
        const char *kind;
        if (torch_export(pos[0], out, !no_source, &kind)) return cli_fail(NULL);
        printf("%s: PyTorch state dict of the %s's float weights, %lld bytes\n", out, kind,
               cli_file_size(out));
        return CLI_OK;
    }
    if (gpt_is_model(pos[0])) return gpt_int8_export(pos[0], out, !no_source);
    oct_i8_mlp m = {0};
    if (check_qat_model(pos[0]) || qat_model_to_int8(pos[0], !no_source, &m) ||
        oct_i8_mlp_save(&m, out)) {
        rc = cli_fail(NULL);
        oct_i8_mlp_free(&m);
        return rc;
    }
    long long fp32 = 0;
    for (int i = 0; i < m.n_layers; i++) fp32 += 4LL * m.layers[i].out * (m.layers[i].in + 1);
    long long size = cli_file_size(out);
    printf("%s: %d layers, %lld bytes (%.2fx the %lld bytes of fp32 weights; %s is %lld bytes)\n",
           out, m.n_layers, size, (double)size / (double)fp32, fp32, pos[0], cli_file_size(pos[0]));
    oct_i8_mlp_free(&m);
    return CLI_OK;
}
