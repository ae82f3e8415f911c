/* Internal helpers shared by the safetensors reader and writer. */
#ifndef OCTET_IO_INTERNAL_H
#define OCTET_IO_INTERNAL_H

#include <stdbool.h>

#include "octet/io.h"

/* The metadata key holding the crc32 of the data buffer. */
#define OCT__ST_CRC_KEY "octet.crc32"
/* The header key holding the metadata map. */
#define OCT__ST_META_KEY "__metadata__"

/* Element count and byte size of a tensor; false if a dimension is negative or they overflow. */
bool oct__st_nbytes(oct_dtype dt, int ndim, const int *shape, int64_t *numel, size_t *nbytes);

#endif
