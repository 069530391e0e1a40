/* The matrix view's element helpers: element sizes and a generic element accessor used by
 * tests, reports and other code paths that are not hot enough to specialize per dtype. */
#include "kseg/matrix.h"

size_t kseg_dtype_size(kseg_dtype dtype)
{
    switch (dtype) {
    case KSEG_FLOAT32:
        return sizeof(float);
    case KSEG_FLOAT64:
        return sizeof(double);
    default:
        return 0;
    }
}

double kseg_matrix_get(const kseg_matrix *matrix, size_t row, size_t col)
{
    size_t index = row * matrix->cols + col;
    if (matrix->dtype == KSEG_FLOAT32)
        return (double)((const float *)matrix->data)[index];
    return ((const double *)matrix->data)[index];
}
