/* `octet import`: a GPT trained in PyTorch (gpt_import.h) into an octet GPT model file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt_import.h"

int cmd_import(int argc, char **argv) {
    const char *out = NULL, *text = OCT_DEFAULT_TEXT, *gelu = "erf";
    int heads = 0;
    const cli_flag flags[] = {
        {"-o", CLI_STR, &out, "output file (required): an octet GPT model", 0, 0},
        {"--heads", CLI_INT, &heads, "attention heads (required: a state dict does not record it)",
         0, 4096},
        {"--gelu", CLI_STR, &gelu,
         "the model's GELU: erf (nn.GELU(), nanoGPT's) or tanh (nn.GELU(approximate=\"tanh\"))", 0,
         0},
        {"--text", CLI_STR, &text,
         "the text the model was trained on: token i is its i-th smallest distinct byte (nanoGPT's "
         "char prepare.py: sorted(set(data)))",
         0, 0},
    };
    cli_cmd cmd = {"import",
                   "TORCH.safetensors --heads N -o OUT.safetensors",
                   "Converts a GPT trained in PyTorch (a state dict saved as safetensors, in\n"
                   "nanoGPT's layout or benchmarks/torch_gpt.py's) into an octet fp32 GPT that\n"
                   "eval, generate, export and `train gpt --from` read. The character vocabulary\n"
                   "comes from --text.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   1,
                   1};
    const char *pos[1];
    int n_pos = 0;
    int rc = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if (n_pos != 1 || !out || heads < 1) {
        fprintf(stderr, "octet import: %s\n",
                n_pos != 1 ? "expected one PyTorch safetensors file"
                : !out     ? "-o OUT.safetensors is required"
                           : "--heads N is required (a state dict does not record the heads)");
        return CLI_USAGE;
    }
    if (strcmp(gelu, "erf") && strcmp(gelu, "tanh")) {
        fprintf(stderr, "octet import: --gelu '%s': expected erf or tanh\n", gelu);
        return CLI_USAGE;
    }
    if (cli_check_output("-o", out)) return CLI_FAIL;
    oct_text t;
    if (oct_text_load(&t, text, false)) return cli_fail(NULL);
    oct_vocab vocab = t.vocab;
    oct_text_free(&t);
    gpt_model m;
    gpt_import_info info;
    if (gpt_import(&m, pos[0], &vocab, heads, !strcmp(gelu, "erf"), &info)) return cli_fail(NULL);
    const oct_gpt_config *c = &m.gpt.cfg;
    printf("%s: GPT %d layers, %d heads, width %d, context %d, MLP %d, %s output layer, %s "
           "GELU, vocabulary %d: %lld parameters",
           pos[0], c->n_layer, c->n_head, c->width, c->context, c->mlp, c->tied ? "tied" : "untied",
           gelu, c->vocab, (long long)oct_params_count(&m.params));
    if (info.zero_biases) printf("; %d biases not in the file, set to 0", info.zero_biases);
    if (info.buffers) printf("; %d buffers skipped", info.buffers);
    printf("\n");
    rc = gpt_model_save(&m, out) ? cli_fail(NULL) : CLI_OK;
    if (rc == CLI_OK) printf("saved %s\n", out);
    gpt_model_free(&m);
    return rc;
}
