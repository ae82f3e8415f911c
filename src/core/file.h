/* Opening input files without hanging: shared by the safetensors reader (src/io) and the
 * dataset readers (datasets/). Internal to octet. */
#ifndef OCTET_CORE_FILE_H
#define OCTET_CORE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "octet/status.h"

/* Opens path for reading if it is a regular file: *fd (blocking, close-on-exec) and its size in
 * bytes (when size is not NULL). A FIFO, device, socket or directory is refused without blocking
 * (a plain open() of a FIFO waits for a writer, forever if none comes). Fails with OCT_EIO and
 * one line, "<path>: cannot open: <reason>" or "<path>: not a regular file (a FIFO)"; *fd is
 * then -1. */
oct_status oct__open_regular(const char *path, int *fd, int64_t *size);

/* Reads exactly n bytes at offset off of the file fd opened from path (pread, so the file
 * offset does not move). Fails with OCT_EIO and "<path>: read failed: <reason>" ("unexpected
 * end of file" when the file is shorter, as when it shrank since it was opened). */
oct_status oct__read_at(const char *path, int fd, void *buf, size_t n, int64_t off);

#endif
