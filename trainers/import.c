/* `octet import`: a GPT or an MLP trained in PyTorch (torch_import.h) into an octet model file,
 * which every other command reads. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "commands.h"
#include "torch_import.h"

typedef struct import_opts {
    const char *out, *text, *gelu, *positions, *activation;
    const char *source; /* the data an export --torch file records (octet.source), or NULL */
    int heads;
    float mean, std;
    bool meta_vocab; /* vocab comes from the file's metadata, not from --text */
    oct_vocab vocab;
} import_opts;

/* The vocabulary in metadata "vocab_bytes" (a JSON array of increasing byte values, as
 * `export --torch` writes it) into v. */
static oct_status meta_vocab(const char *path, const char *json, oct_vocab *v) {
    json_t *a = json_loads(json, 0, NULL);
    uint8_t bytes[256];
    size_t n = json_array_size(a);
    bool ok = json_is_array(a) && n >= 1 && n <= 256;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *b = json_array_get(a, i);
        ok = json_is_integer(b) && json_integer_value(b) >= 0 && json_integer_value(b) <= 255;
        if (ok) bytes[i] = (uint8_t)json_integer_value(b);
    }
    json_decref(a);
    if (ok && oct_vocab_from_bytes(v, bytes, (int)n) == OCT_OK) return OCT_OK;
    return oct_fail(OCT_EFORMAT,
                    "%s: metadata 'vocab_bytes' must be a JSON array of increasing byte values",
                    path);
}

/* The value of metadata key when flag was not given on the command line, else NULL. */
static const char *unset_meta(const oct_st_file *f, const cli_cmd *cmd, const bool *seen,
                              const char *flag, const char *key) {
    return cli_given(cmd, seen, flag) ? NULL : oct_st_meta(f, key);
}

/* The number in metadata key, when flag (a CLI_INT or CLI_FLOAT flag of cmd) was not given,
 * into the flag's destination: OCT_EFORMAT naming the file and the key unless it lies in the
 * range the flag accepts (an integer for CLI_INT). */
static oct_status meta_number(const oct_st_file *f, const cli_cmd *cmd, const bool *seen,
                              const char *flag, const char *key) {
    const char *v = unset_meta(f, cmd, seen, flag, key);
    if (!v) return OCT_OK;
    int i = 0;
    while (i < cmd->n_flags && strcmp(cmd->flags[i].name, flag)) i++;
    OCT_ASSERT(i < cmd->n_flags);
    const cli_flag *fl = &cmd->flags[i];
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    bool is_int = fl->kind == CLI_INT;
    if (end == v || *end || errno || !(x >= fl->min && x <= fl->max) || (is_int && x != floor(x)))
        return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is '%s', expected %s in [%g, %g] (as %s)",
                        f->path, key, v, is_int ? "an integer" : "a number", fl->min, fl->max,
                        flag);
    if (is_int)
        *(int *)fl->dst = (int)x;
    else
        *(float *)fl->dst = (float)x;
    return OCT_OK;
}

/* Settings the file's metadata records (written by `export --torch`), for the flags not given:
 * a GPT's n_head, gelu, positions and vocab_bytes; an MLP's activation, mean, std and gelu (its
 * form), numbers in the ranges of their flags; the other kind's keys are not looked at. Strings
 * point into f, which must stay open while o is used. */
static oct_status from_metadata(const oct_st_file *f, const cli_cmd *cmd, const bool *seen,
                                bool gpt, import_opts *o) {
    const char *v;
    if (!gpt) {
        oct_status s = meta_number(f, cmd, seen, "--mean", "mean");
        if (s == OCT_OK) s = meta_number(f, cmd, seen, "--std", "std");
        if (s != OCT_OK) return s;
        oct_activation act;
        if ((v = unset_meta(f, cmd, seen, "--activation", "activation"))) o->activation = v;
        if (v && oct_activation_parse(v, &act))
            return oct_fail(OCT_EFORMAT,
                            "%s: metadata 'activation' is '%s', expected relu, gelu, tanh or none "
                            "(as --activation)",
                            f->path, v);
        const char *form = oct_st_meta(f, "gelu");
        if (form && strcmp(form, "tanh") && !strcmp(o->activation, "gelu"))
            return oct_fail(OCT_EFORMAT,
                            "%s: metadata 'gelu' is '%s': an octet MLP's GELU is the tanh form "
                            "(nn.GELU(approximate=\"tanh\"))",
                            f->path, form);
        return OCT_OK;
    }
    oct_status s = meta_number(f, cmd, seen, "--heads", "n_head");
    if (s != OCT_OK) return s;
    if ((v = unset_meta(f, cmd, seen, "--gelu", "gelu"))) o->gelu = v;
    if (v && strcmp(v, "tanh") && strcmp(v, "erf"))
        return oct_fail(OCT_EFORMAT,
                        "%s: metadata 'gelu' is '%s', expected tanh or erf (as --gelu)", f->path,
                        v);
    if ((v = unset_meta(f, cmd, seen, "--positions", "positions"))) o->positions = v;
    if (v && strcmp(v, "learned") && strcmp(v, "learned+rope") && strcmp(v, "rope"))
        return oct_fail(OCT_EFORMAT,
                        "%s: metadata 'positions' is '%s', expected learned, learned+rope or rope "
                        "(as --positions)",
                        f->path, v);
    if ((v = unset_meta(f, cmd, seen, "--text", "vocab_bytes"))) {
        o->meta_vocab = true;
        return meta_vocab(f->path, v, &o->vocab);
    }
    return OCT_OK;
}

/* The flags of one model kind may not be given for the other. */
static int check_kind_flags(const cli_cmd *cmd, const bool *seen, bool gpt, const char *path) {
    static const char *const gpt_only = " --heads --gelu --positions --text ",
                             *mlp_only = " --activation --mean --std ";
    for (int i = 0; i < cmd->n_flags; i++) {
        if (!seen[i] || !cli_flag_listed(gpt ? mlp_only : gpt_only, cmd->flags[i].name)) continue;
        fprintf(stderr, "octet import: %s: %s flag, but %s holds %s\n", cmd->flags[i].name,
                gpt ? "an MLP" : "a GPT", path, gpt ? "a GPT" : "an MLP");
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* The data an export --torch file records, checked as a recorded path is (UTF-8, no control
 * characters; else nothing), malloc'd; NULL when there is none. */
static char *imported_source(const char *source) {
    if (!source) return NULL;
    return !strcmp(source, OCT_DEFAULT_TEXT) ? strdup(source) : cli_source_record(source);
}

static int import_gpt(const char *path, const import_opts *o) {
    if (o->heads < 1) {
        fprintf(stderr, "octet import: --heads N is required for a GPT (a state dict does not "
                        "record the heads, unless in metadata n_head)\n");
        return CLI_USAGE;
    }
    oct_gpt_config given = {0};
    if (cli_gelu("import", o->gelu, &given.exact_gelu) ||
        cli_positions("import", o->positions, &given))
        return CLI_USAGE;
    oct_vocab vocab = o->vocab;
    if (!o->meta_vocab) {
        oct_text t;
        char buf[PATH_MAX + 32];
        const char *text = gpt_text_path(o->text, buf, sizeof buf);
        if (!text || oct_text_load(&t, text, false)) return cli_fail(NULL);
        vocab = t.vocab;
        oct_text_free(&t);
        if (vocab.bytes[vocab.size - 1] >= 0x80) /* the bytes are sorted */
            fprintf(stderr,
                    "octet import: note: %s is not ASCII: octet's tokens are its distinct bytes "
                    "(as benchmarks/torch_gpt.py's), nanoGPT's its distinct characters, so a "
                    "nanoGPT model of it has other token ids\n",
                    text);
    }
    gpt_model m;
    torch_import_info info;
    if (gpt_import(&m, path, &vocab, o->heads, &given, &info)) return cli_fail(NULL);
    const oct_gpt_config *c = &m.gpt.cfg;
    printf("%s: GPT %d layers, %d heads, width %d, context %d, MLP %d, %s output layer, %s "
           "GELU, %s positions, vocabulary %d: %lld parameters",
           path, c->n_layer, c->n_head, c->width, c->context, c->mlp, c->tied ? "tied" : "untied",
           o->gelu, o->positions, c->vocab, (long long)oct_params_count(&m.params));
    if (info.zero_biases) printf("; %d biases not in the file, set to 0", info.zero_biases);
    if (info.buffers) printf("; %d buffers skipped", info.buffers);
    printf("\n");
    /* the text of its vocabulary, or the one an export --torch file records */
    m.source = !o->meta_vocab ? gpt_text_record(o->text) : imported_source(o->source);
    int rc = gpt_model_save(&m, o->out) ? cli_fail(NULL) : CLI_OK;
    if (rc == CLI_OK) printf("saved %s\n", o->out);
    gpt_model_free(&m);
    return rc;
}

static int import_mlp(const char *path, const import_opts *o) {
    oct_activation act;
    if (oct_activation_parse(o->activation, &act)) {
        fprintf(stderr, "octet import: --activation '%s': expected relu, gelu, tanh or none\n",
                o->activation);
        return CLI_USAGE;
    }
    mlp_model m;
    torch_import_info info;
    if (mlp_import(&m, path, act, o->mean, o->std, &info)) return cli_fail(NULL);
    printf("%s: MLP ", path);
    for (int i = 0; i <= m.mlp.n_layers; i++) printf(i ? "-%d" : "%d", m.mlp.sizes[i]);
    printf(", %s, inputs (pixel / 255 - %g) / %g: %lld parameters", o->activation, (double)o->mean,
           (double)o->std, (long long)oct_params_count(&m.params));
    if (info.zero_biases) printf("; %d biases not in the file, set to 0", info.zero_biases);
    printf("\n");
    m.source = imported_source(o->source); /* what an export --torch file records */
    int rc = mlp_model_save(&m, o->out) ? cli_fail(NULL) : CLI_OK;
    if (rc == CLI_OK) printf("saved %s\n", o->out);
    mlp_model_free(&m);
    return rc;
}

int cmd_import(int argc, char **argv) {
    import_opts o = {.text = OCT_DEFAULT_TEXT,
                     .gelu = "erf",
                     .positions = "learned",
                     .activation = "relu",
                     .mean = OCT_FASHION_MNIST_MEAN,
                     .std = OCT_FASHION_MNIST_STD};
    const cli_flag flags[] = {
        {"-o", CLI_STR, &o.out, "output file (required): an octet model", 0, 0},
        {"--heads", CLI_INT, &o.heads,
         "GPT: attention heads (required unless the file's metadata has n_head, as export --torch "
         "writes: a state dict does not record it)",
         1, 4096},
        {"--gelu", CLI_STR, &o.gelu,
         "GPT: erf (nn.GELU(), nanoGPT's) or tanh (nn.GELU(approximate=\"tanh\"))", 0, 0},
        {"--positions", CLI_STR, &o.positions,
         "GPT: learned (nanoGPT's), learned+rope (q and k also rotated as octet's "
         "--positions learned+rope: GPT-NeoX layout, base 10000) or rope (the rotation alone, "
         "no wpe.weight; the context from metadata block_size)",
         0, 0},
        {"--text", CLI_STR, &o.text,
         "GPT: the training text; token i is its i-th smallest distinct byte (for ASCII text "
         "nanoGPT's char prepare.py: sorted(set(data)))",
         0, 0},
        {"--activation", CLI_STR, &o.activation,
         "MLP: the hidden layers' activation: relu, gelu (the tanh form: "
         "nn.GELU(approximate=\"tanh\")), tanh or none",
         0, 0},
        {"--mean", CLI_FLOAT, &o.mean, "MLP: input normalization (pixel / 255 - mean) / std", -1e6,
         1e6},
        {"--std", CLI_FLOAT, &o.std, "MLP: see --mean", 1e-9, 1e6},
    };
    cli_cmd cmd = {
        "import",
        "TORCH.safetensors -o OUT.safetensors [flags]",
        "Converts a model trained in PyTorch (a state dict saved as safetensors) into\n"
        "an octet fp32 model that eval, generate, predict, calibrate, export and\n"
        "`train --from` read: a GPT in nanoGPT's layout (or benchmarks/torch_gpt.py's),\n"
        "whose vocabulary comes from --text, or an MLP of nn.Linear layers. Settings the\n"
        "file's metadata records (export --torch writes them) fill the flags not given.",
        flags,
        (int)(sizeof flags / sizeof flags[0]),
        1,
        1};
    const char *pos[1];
    int n_pos = 0;
    bool seen[sizeof flags / sizeof flags[0]];
    int rc = cli_parse_seen(&cmd, argc, argv, pos, &n_pos, seen);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if (n_pos != 1 || !o.out) {
        fprintf(stderr, "octet import: %s\n",
                n_pos != 1 ? "expected one PyTorch safetensors file"
                           : "-o OUT.safetensors is required");
        return CLI_USAGE;
    }
    oct_st_file f;
    if (oct_st_open_header(&f, pos[0])) return cli_fail(NULL); /* the import reads the data */
    bool gpt = torch_import_is_gpt(&f);
    o.source = oct_st_meta(&f, CLI_META_SOURCE);
    if (torch_import_refuse_octet(&f) || from_metadata(&f, &cmd, seen, gpt, &o))
        rc = cli_fail(NULL);
    else if ((rc = check_kind_flags(&cmd, seen, gpt, pos[0])) == CLI_OK)
        rc = cli_check_output("-o", o.out) ? CLI_FAIL
             : (rc = cli_check_not_input("-o", o.out, "the state dict", pos[0], "--text", o.text,
                                         NULL))
                 ? rc
             : gpt ? import_gpt(pos[0], &o)
                   : import_mlp(pos[0], &o);
    oct_st_close(&f); /* after the import: o's strings may point into its metadata */
    return rc;
}
