/* `octet import`: a GPT or an MLP trained in PyTorch (torch_import.h) into an octet model file,
 * which every other command reads. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "torch_import.h"

typedef struct import_opts {
    const char *out, *text, *gelu, *activation;
    int heads;
    float mean, std;
} import_opts;

/* The flags of one model kind may not be given for the other. */
static int check_kind_flags(const cli_cmd *cmd, const bool *seen, bool gpt, const char *path) {
    static const char *const gpt_only = " --heads --gelu --text ",
                             *mlp_only = " --activation --mean --std ";
    for (int i = 0; i < cmd->n_flags; i++) {
        if (!seen[i] || !cli_flag_listed(gpt ? mlp_only : gpt_only, cmd->flags[i].name)) continue;
        fprintf(stderr, "octet import: %s: %s flag, but %s holds %s\n", cmd->flags[i].name,
                gpt ? "an MLP" : "a GPT", path, gpt ? "a GPT" : "an MLP");
        return CLI_USAGE;
    }
    return CLI_OK;
}

static int import_gpt(const char *path, const import_opts *o) {
    if (o->heads < 1) {
        fprintf(stderr, "octet import: --heads N is required for a GPT (a state dict does not "
                        "record the heads)\n");
        return CLI_USAGE;
    }
    bool exact;
    if (cli_gelu("import", o->gelu, &exact)) return CLI_USAGE;
    oct_text t;
    if (oct_text_load(&t, o->text, false)) return cli_fail(NULL);
    oct_vocab vocab = t.vocab;
    oct_text_free(&t);
    gpt_model m;
    torch_import_info info;
    if (gpt_import(&m, path, &vocab, o->heads, exact, &info)) return cli_fail(NULL);
    const oct_gpt_config *c = &m.gpt.cfg;
    printf("%s: GPT %d layers, %d heads, width %d, context %d, MLP %d, %s output layer, %s "
           "GELU, vocabulary %d: %lld parameters",
           path, c->n_layer, c->n_head, c->width, c->context, c->mlp, c->tied ? "tied" : "untied",
           o->gelu, c->vocab, (long long)oct_params_count(&m.params));
    if (info.zero_biases) printf("; %d biases not in the file, set to 0", info.zero_biases);
    if (info.buffers) printf("; %d buffers skipped", info.buffers);
    printf("\n");
    int rc = gpt_model_save(&m, o->out) ? cli_fail(NULL) : CLI_OK;
    if (rc == CLI_OK) printf("saved %s\n", o->out);
    gpt_model_free(&m);
    return rc;
}

static int import_mlp(const char *path, const import_opts *o) {
    oct_activation act;
    if (oct_activation_parse(o->activation, &act) || act == OCT_ACT_NONE) {
        fprintf(stderr, "octet import: --activation '%s': expected relu, gelu or tanh\n",
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
    int rc = mlp_model_save(&m, o->out) ? cli_fail(NULL) : CLI_OK;
    if (rc == CLI_OK) printf("saved %s\n", o->out);
    mlp_model_free(&m);
    return rc;
}

int cmd_import(int argc, char **argv) {
    import_opts o = {.text = OCT_DEFAULT_TEXT,
                     .gelu = "erf",
                     .activation = "relu",
                     .mean = OCT_FASHION_MNIST_MEAN,
                     .std = OCT_FASHION_MNIST_STD};
    const cli_flag flags[] = {
        {"-o", CLI_STR, &o.out, "output file (required): an octet model", 0, 0},
        {"--heads", CLI_INT, &o.heads,
         "GPT: attention heads (required: a state dict does not record it)", 0, 4096},
        {"--gelu", CLI_STR, &o.gelu,
         "GPT: erf (nn.GELU(), nanoGPT's) or tanh (nn.GELU(approximate=\"tanh\"))", 0, 0},
        {"--text", CLI_STR, &o.text,
         "GPT: the training text; token i is its i-th smallest distinct byte (nanoGPT's char "
         "prepare.py: sorted(set(data)))",
         0, 0},
        {"--activation", CLI_STR, &o.activation, "MLP: the hidden layers' activation", 0, 0},
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
        "whose vocabulary comes from --text, or an MLP of nn.Linear layers.",
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
    if (oct_st_open(&f, pos[0])) return cli_fail(NULL);
    bool gpt = torch_import_is_gpt(&f);
    oct_st_close(&f);
    if ((rc = check_kind_flags(&cmd, seen, gpt, pos[0])) != CLI_OK) return rc;
    if (cli_check_output("-o", o.out)) return CLI_FAIL;
    return gpt ? import_gpt(pos[0], &o) : import_mlp(pos[0], &o);
}
