/* octet status codes and the thread-local last-error message.
 *
 * Functions that can fail return an oct_status: 0 (OCT_OK) on success, a negative code on
 * failure. On failure they also leave a one-line message naming the file, tensor or flag and
 * what was expected; read it with oct_last_error(). The library never prints and never exits.
 */
#ifndef OCTET_STATUS_H
#define OCTET_STATUS_H

#include <stdio.h>
#include <stdlib.h>

/* X(name, value, description): one list generates the enum and oct_strerror(). */
#define OCT_STATUS_MAP(X)                                                                          \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EFORMAT, -4, "malformed file")                                                               \
    X(ESHAPE, -5, "shape mismatch")                                                                \
    X(ENOTFOUND, -6, "not found")                                                                  \
    X(EUNSUPPORTED, -7, "unsupported")

typedef enum {
#define OCT__STATUS_ENUM(name, value, desc) OCT_##name = value,
    OCT_STATUS_MAP(OCT__STATUS_ENUM)
#undef OCT__STATUS_ENUM
} oct_status;

/* A short description of a status code ("malformed file"). Never NULL. */
const char *oct_strerror(oct_status status);

/* The message left by the last failing call on this thread ("" if none): one line, control
 * characters (say, a newline in a tensor name read from a file) shown as '?'. */
const char *oct_last_error(void);

/* Records a printf-style message as the last error and returns status, so that failing code
 * can write `return oct_fail(OCT_EFORMAT, "%s: truncated header", path);`. */
oct_status oct_fail(oct_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears the last-error message. */
void oct_clear_error(void);

/* Internal invariants: always on, also in release builds. A failure is a bug in octet or a
 * misuse of the API (for example mismatched shapes passed to an op), never bad input data. */
#define OCT_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) oct__assert_fail(#cond, __FILE__, __LINE__);                                  \
    } while (0)

_Noreturn void oct__assert_fail(const char *expr, const char *file, int line);

/* Running out of memory where octet cannot fail softly (a block of an arena: tensors,
 * activations, gradients; the bookkeeping of graphs, parameter lists, optimizers, safetensors
 * files and quantized layers) calls the handler set here with the size it could not allocate. A
 * program may report it and exit; the handler must not return. Without one (the default), or
 * if it returns, octet prints "octet: out of memory: ..." to stderr and aborts. Process-wide;
 * returns the previous handler (NULL: none). */
typedef void (*oct_oom_handler)(size_t bytes);
oct_oom_handler oct_set_oom_handler(oct_oom_handler handler);

/* Calls the out-of-memory handler, then aborts. */
_Noreturn void oct__out_of_memory(size_t bytes, const char *file, int line);
/* oct__out_of_memory unless ok (an allocation of about bytes succeeded). */
#define OCT_ALLOC_CHECK(ok, bytes)                                                                 \
    do {                                                                                           \
        if (!(ok)) oct__out_of_memory((size_t)(bytes), __FILE__, __LINE__);                        \
    } while (0)

#endif
