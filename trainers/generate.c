/* `octet generate MODEL`: samples text from a saved GPT with the key/value cache and prints the
 * prompt followed by the continuation on stdout. A QAT model samples its simulated-int8 forward
 * pass, which gives the text of its int8 export. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt_int8.h"
#include "gpt_model.h"

/* oct_gpt_generate for a QAT model: each token runs the simulated-int8 forward pass over the
 * window that the integer engine's key/value cache holds at that point (oct_i8_gpt_generate: it
 * slides by restarting from the last context / 2 tokens), and the engine computes every row of a
 * window as the QAT model does, so the two sample the same tokens. No cache: each token costs a
 * forward pass over up to a context of tokens. */
static oct_status qat_generate(gpt_model *m, const int32_t *prompt, int n_prompt, int n_new,
                               float temperature, int top_k, gpt_stream *out) {
    int T = m->gpt.cfg.context, V = m->gpt.cfg.vocab, keep = T / 2 > 0 ? T / 2 : 1;
    int64_t total = (int64_t)n_prompt + n_new;
    int32_t *hist = malloc((size_t)total * sizeof *hist);
    if (!hist) return oct_fail(OCT_ENOMEM, "generate: out of memory");
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    oct_graph g;
    oct_graph_init(&g, 0, 0);
    g.no_grad = true;
    g.training = false;
    int64_t start = n_prompt > T ? n_prompt - keep : 0; /* the window is hist[start, n) */
    for (int64_t n = n_prompt; n < total; n++) {
        if (n - start > T) start = n - keep;
        oct_graph_reset(&g);
        oct_tensor *logits = gpt_model_forward(m, &g, hist + start, 1, (int)(n - start));
        hist[n] =
            oct_gpt_sample(logits->data + (n - start - 1) * V, V, temperature, top_k, out->rng);
        gpt_stream_token(out, hist[n]);
    }
    oct_graph_free(&g);
    free(hist);
    return OCT_OK;
}

/* Encodes, generates and prints as it goes; m is loaded. */
static int generate(gpt_model *m, const char *prompt, int n, float temperature, int top_k,
                    int seed) {
    char first[2];
    int64_t len;
    int32_t *ids;
    int rc = gpt_prompt_ids(prompt, &m->vocab, first, &prompt, &len, &ids);
    if (rc != CLI_OK) return rc;
    oct_rng rng;
    oct_rng_seed(&rng, (uint64_t)seed, 4);
    gpt_stream out;
    gpt_stream_init(&out, &m->vocab, &rng, prompt, len);
    double t0 = cli_now();
    if (m->qat_on ? qat_generate(m, ids, (int)len, n, temperature, top_k, &out)
                  : oct_gpt_generate(&m->gpt, ids, (int)len, n, temperature, top_k, &rng, NULL,
                                     gpt_stream_token, &out)) {
        rc = cli_fail(NULL);
    } else {
        gpt_stream_end(&out);
        double sec = cli_now() - t0;
        char label[96] = "fp32 model";
        if (m->qat_on) cli_qat_label(&m->qat->cfg, label, sizeof label);
        fprintf(stderr, "octet: %s%s: %d tokens in %.3f s, %.0f tok/s\n", label,
                m->qat_on ? ", the tokens of its export" : "", n, sec, n / sec);
    }
    free(ids);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL; /* gpt_prompt: a newline */
    int n = 200, top_k = 40, seed = 1, threads = 1;
    float temperature = 0.8f;
    const cli_flag flags[] = {
        {"--prompt", CLI_STR, &prompt,
         "text to continue (characters of the training text; unset: a newline, or the first "
         "character of a vocabulary without one)",
         0, 0},
        {"-n", CLI_INT, &n, "characters to generate", 0, 1 << 24},
        {"--temperature", CLI_FLOAT, &temperature, "softmax temperature (0: greedy)", 0, 100},
        {"--top-k", CLI_INT, &top_k, "sample among the k most likely characters (0: all)", 0,
         65536},
        {"--seed", CLI_INT, &seed, "random seed for sampling", 0, 2147483647},
        {"--threads", CLI_INT, &threads, "threads", 1, 256},
    };
    cli_cmd cmd = {"generate",
                   "MODEL [flags]",
                   "Continues --prompt with text sampled from a GPT (an fp32 or QAT model, a\n"
                   "checkpoint, an import or an int8 export), and prints the prompt and the\n"
                   "continuation. Each character sees at most the model's context: when it is\n"
                   "full, generation goes on from the last context/2 characters (a KV cache\n"
                   "cannot slide), so past the context the text differs from a model that\n"
                   "re-reads the last full context at each step.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   1,
                   1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    cli_set_threads(threads);
    if (gpt_int8_is_export(pos[0]))
        return gpt_int8_generate(pos[0], prompt, n, temperature, top_k, seed, threads);
    gpt_model m;
    if (gpt_model_load(&m, pos[0])) return cli_fail(NULL);
    rc = generate(&m, prompt, n, temperature, top_k, seed);
    gpt_model_free(&m);
    return rc;
}
