/* `octet predict MODEL IMAGES.idx[.gz]`: the predicted class and the class probabilities
 * (softmax of the logits) for a range of images, from an int8 export (the integer engine) or
 * an fp32 or QAT MLP model (its float or simulated-int8 forward pass), each with its true label
 * when there is a labels file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "int8_model.h"
#include "mlp_model.h"

/* The labels file that goes with an images file: "...images-idx3..." -> "...labels-idx1...". */
static bool labels_path_for(const char *images, char *out, size_t n) {
    const char *at = strstr(images, "images-idx3");
    if (!at || strlen(images) >= n) return false;
    snprintf(out, n, "%.*slabels-idx1%s", (int)(at - images), images, at + strlen("images-idx3"));
    return true;
}

static void print_row(int64_t index, int label, const float *logits, int classes) {
    double sum = 0, p[256];
    int best = 0;
    for (int c = 1; c < classes; c++)
        if (logits[c] > logits[best]) best = c;
    double mx = logits[best];
    for (int c = 0; c < classes; c++) sum += p[c] = exp((double)logits[c] - mx);
    printf("image %lld: class %d", (long long)index, best);
    if (label >= 0) printf(" (label %d)", label);
    printf(" p");
    for (int c = 0; c < classes; c++) printf(" %.4f", p[c] / sum);
    printf("\n");
}

/* Logits (n, classes) of images [start, start + n) of set from the int8 model in path. */
static oct_status int8_logits(const char *path, const oct_image_set *set, int64_t start, int n,
                              float *logits, int *classes) {
    oct_i8_mlp m;
    oct_status s = oct_i8_mlp_load(&m, path);
    if (s != OCT_OK) return s;
    int in = m.layers[0].in;
    *classes = m.layers[m.n_layers - 1].out;
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)n * (size_t)*classes);
    if (in != set->rows * set->cols || *classes > 256)
        s = oct_fail(OCT_ESHAPE, "%s expects %d inputs, the images have %d", path, in,
                     set->rows * set->cols);
    else if (!acc)
        s = oct_fail(OCT_ENOMEM, "out of memory");
    else
        s = oct_i8_mlp_forward_u8(&m, set->images + start * in, n, acc, logits, 1);
    free(acc);
    oct_i8_mlp_free(&m);
    return s;
}

/* The same from an fp32 MLP model. */
static oct_status fp32_logits(const char *path, const oct_image_set *set, int64_t start, int n,
                              float *logits, int *classes) {
    mlp_model m;
    oct_status s = mlp_model_load(&m, path);
    if (s != OCT_OK) return s;
    int in = m.mlp.sizes[0];
    *classes = m.mlp.sizes[m.mlp.n_layers];
    if (in != set->rows * set->cols || *classes > 256) {
        s = oct_fail(OCT_ESHAPE, "%s expects %d inputs, the images have %d", path, in,
                     set->rows * set->cols);
    } else {
        oct_graph g;
        oct_graph_init(&g, 0, 0);
        g.no_grad = true;
        g.training = false;
        oct_image_set norm = *set;
        norm.mean = m.mean;
        norm.std = m.std;
        oct_tensor *x = oct_tensor_new2(&g.arena, n, in);
        oct_image_set_batch_range(&norm, start, n, x->data, NULL);
        oct_tensor *y = mlp_model_forward(&m, &g, x);
        memcpy(logits, y->data, sizeof(float) * (size_t)n * (size_t)*classes);
        oct_graph_free(&g);
    }
    mlp_model_free(&m);
    return s;
}

int cmd_predict(int argc, char **argv) {
    int count = 10, offset = 0;
    const char *labels = NULL;
    const cli_flag flags[] = {
        {"--count", CLI_INT, &count, "number of images", 1, 100000},
        {"--offset", CLI_INT, &offset, "index of the first image", 0, 1e9},
        {"--labels", CLI_STR, &labels,
         "labels file, printed next to the predictions (default: IMAGES with images-idx3 "
         "replaced by labels-idx1, if there is one; else none)",
         0, 0},
    };
    cli_cmd cmd = {"predict",
                   "MODEL IMAGES.idx[.gz] [flags]",
                   "Prints the predicted class and the class probabilities of each image, from an\n"
                   "MLP: an int8 export (the integer engine), a QAT model (its simulated int8\n"
                   "forward pass) or an fp32 model.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   2,
                   2};
    const char *pos[2];
    int n_pos, rc = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    char derived[4096];
    bool guessed =
        !labels && labels_path_for(pos[1], derived, sizeof derived) && access(derived, F_OK) == 0;
    oct_image_set set;
    if (oct_image_set_load(&set, pos[1], guessed ? derived : labels)) {
        if (!guessed) return cli_fail(NULL);
        /* a labels file only guessed from the name that does not fit: the images alone */
        fprintf(stderr, "octet predict: note: no labels: %s (--labels FILE names the file)\n",
                oct_last_error());
        if (oct_image_set_load(&set, pos[1], NULL)) return cli_fail(NULL);
    }
    if (offset >= set.n) {
        fprintf(stderr, "octet: %s holds %lld images, --offset %d is past the end\n", pos[1],
                (long long)set.n, offset);
        oct_image_set_free(&set);
        return CLI_FAIL;
    }
    int n = (int)(set.n - offset < count ? set.n - offset : count), classes = 0;
    float *logits = malloc(sizeof(float) * (size_t)n * 256);
    oct_status s = !logits ? oct_fail(OCT_ENOMEM, "out of memory")
                   : int8_is_export(pos[0])
                       ? int8_logits(pos[0], &set, offset, n, logits, &classes)
                       : fp32_logits(pos[0], &set, offset, n, logits, &classes);
    if (s != OCT_OK) {
        rc = cli_fail(NULL);
    } else {
        for (int i = 0; i < n; i++)
            print_row(offset + i, set.labels ? set.labels[offset + i] : -1,
                      logits + (int64_t)i * classes, classes);
    }
    free(logits);
    oct_image_set_free(&set);
    return rc;
}
