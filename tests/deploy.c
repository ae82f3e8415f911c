/* The README's deployment example: generate text from an int8 GPT export with the integer engine
 * alone (no trainer, no autograd). usage: deploy MODEL.int8.safetensors PROMPT N */
#include <octet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Greedy decoding: the most likely next character (the first one on ties), printed at once (the
 * engine calls the sampler once per new character, in order, so the text streams). */
static int32_t argmax(const float *logits, int V, float temperature, int top_k, void *model) {
    const oct_i8_gpt *m = model;
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    putchar(m->vocab_bytes[best]);
    fflush(stdout);
    return best;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.int8.safetensors PROMPT N\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2];
    int n_prompt = (int)strlen(prompt), n_new = atoi(argv[3]);
    oct_i8_gpt m;
    if (oct_i8_gpt_load(&m, argv[1]) != OCT_OK) {
        fprintf(stderr, "%s\n", oct_last_error());
        return 1;
    }
    int32_t *ids = malloc((size_t)(n_prompt + 1) * sizeof *ids);
    oct_i8_gpt_cache cache = {0};
    int rc =
        !ids || n_prompt < 1 || n_new < 0 || oct_i8_gpt_cache_init(&cache, &m, n_prompt) != OCT_OK;
    for (int i = 0; !rc && i < n_prompt; i++) { /* the prompt's bytes as token ids */
        ids[i] = -1;
        for (int t = 0; t < m.vocab; t++)
            if (m.vocab_bytes[t] == (uint8_t)prompt[i]) ids[i] = t;
        rc = ids[i] < 0;
    }
    if (!rc) {
        fputs(prompt, stdout);
        rc = oct_i8_gpt_generate(&cache, ids, n_prompt, n_new, 0.0f, 0, argmax, &m, NULL);
        putchar('\n');
    }
    if (rc) fprintf(stderr, "deploy: cannot generate from '%s' with %s\n", prompt, argv[1]);
    oct_i8_gpt_cache_free(&cache);
    free(ids);
    oct_i8_gpt_free(&m);
    return rc ? 1 : 0;
}
