/* A read-only view of a row-major matrix of float32 or float64 values: the engine's input.
 * kseg never converts float32 data to float64; kernels exist for both element types. */
#ifndef KSEG_MATRIX_H
#define KSEG_MATRIX_H

#include "kseg/export.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kseg_dtype {
    KSEG_FLOAT32 = 1,
    KSEG_FLOAT64 = 2
} kseg_dtype;

/* Rows are contiguous: element (i, j) is at data[i * cols + j]. The view does not own data. */
typedef struct kseg_matrix {
    const void *data;
    kseg_dtype dtype;
    size_t rows;
    size_t cols;
} kseg_matrix;

/* Size in bytes of one element of dtype (0 for an unknown dtype). */
KSEG_API size_t kseg_dtype_size(kseg_dtype dtype);

/* Element (row, col) as double; no bounds checks (the caller guarantees them). */
KSEG_API double kseg_matrix_get(const kseg_matrix *matrix, size_t row, size_t col);

#ifdef __cplusplus
}
#endif
#endif
