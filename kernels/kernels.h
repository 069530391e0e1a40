/* Kernel contracts: the hot loops of k-means behind a selection table (BLIS style). Each
 * optimized kernel has a plain reference kernel with the same contract, and a test against it.
 * Kernels never allocate, do I/O or keep global state; the caller provides all memory. */
#ifndef KSEG_KERNELS_H
#define KSEG_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kseg/matrix.h"

/* Per-block accumulation target of the fused pass. The caller zeroes sums, weights, inertia and
 * changed before a block; the kernel adds the block's rows in row order, so the result of a block
 * depends only on its rows, never on threads. */
typedef struct kseg_block_sums {
    double *sums;     /* [k x d]: sum of weight * row over the rows assigned to each center */
    double *weights;  /* [k]: sum of weights of the rows assigned to each center */
    double inertia;   /* sum of weight * squared distance to the assigned center */
    int64_t changed;  /* rows whose new label differs from the label passed in */
} kseg_block_sums;

/* An assignment kernel for one element type.
 *
 * Centers are given to the kernel in a layout of its own choosing: the driver calls pack() once
 * per iteration into a buffer of packed_size(k, d) bytes (64-byte aligned), and passes that buffer
 * to the other functions. pack() receives the centers in double [k x d] row-major and an optional
 * shift [d] (the data mean) that kernels using the expanded form |x|^2 - 2x.c + |c|^2 subtract from
 * both rows and centers for accuracy; direct-difference kernels ignore it.
 *
 * Rows x are [rows x d] row-major and contiguous, of the kernel's element type. Any rows >= 1,
 * d >= 1 and k >= 1 are valid: the kernel handles tails of d and k that are not multiples of its
 * vector width itself. Ties between equal distances go to the lowest center index. The squared
 * distance of a row is computed in the element type, summing over features in order with a fused
 * multiply-add (reference kernels use fmaf/fma), so direct kernels agree bitwise with the
 * reference; expanded-form kernels agree to rounding.
 *
 * scratch is a per-thread buffer of scratch_size(k, d) bytes (64-byte aligned, may be 0 bytes).
 */
typedef struct kseg_assign_kernel {
    const char *name;
    kseg_dtype dtype;
    /* Non-zero for kernels using the expanded form |x|^2 - 2x.c + |c|^2: their distances are only
       close to the reference's, so bound-based algorithms (which must reproduce a kernel's labels
       bitwise) cannot use them. Zero for direct-difference kernels. */
    int expanded_form;
    /* Non-zero if the kernel can run on this CPU (checked once at selection). */
    int (*cpu_supported)(void);
    /* Non-zero if the kernel is a good choice for this shape (used by automatic selection only;
       a kernel chosen by name must accept every shape). */
    int (*preferred)(size_t k, size_t d);
    size_t (*packed_size)(size_t k, size_t d);
    size_t (*scratch_size)(size_t k, size_t d);
    void (*pack)(const double *centers, size_t k, size_t d, const double *shift, void *packed);
    /* labels[i] := nearest center of row i; distances[i] (if not NULL) := its squared distance
       (as double, computed in the element type). */
    void (*assign)(const void *x, size_t rows, size_t d, const void *packed, size_t k,
                   int32_t *labels, double *distances, void *scratch);
    /* The fused pass: for each row in order, find the nearest center c, count a change if
       labels[i] != c, set labels[i] = c, and add weight * row to sums[c], weight to weights[c] and
       weight * distance to inertia. weights may be NULL (all ones). */
    void (*assign_accumulate)(const void *x, size_t rows, size_t d, const double *weights,
                              const void *packed, size_t k, int32_t *labels,
                              kseg_block_sums *sums, void *scratch);
} kseg_assign_kernel;

/* The kernel named name for dtype (NULL if unknown or unsupported by this CPU), or with name NULL
 * the preferred supported kernel for the shape. */
const kseg_assign_kernel *kseg_assign_kernel_select(kseg_dtype dtype, size_t k, size_t d,
                                                    const char *name);

/* The preferred supported direct-difference kernel for the shape (never an expanded-form one):
 * what bound-based algorithms use, since they must reproduce a kernel's distances bitwise. */
const kseg_assign_kernel *kseg_assign_kernel_select_direct(kseg_dtype dtype, size_t k, size_t d);

/* Every kernel in the table for dtype that this CPU supports, in table order; returns the count
 * written (at most capacity). For tests and benchmarks. */
size_t kseg_assign_kernel_list(kseg_dtype dtype, const kseg_assign_kernel **kernels,
                               size_t capacity);

/* The reference kernels: plain C, the oracle for every other kernel. */
extern const kseg_assign_kernel kseg_assign_reference_f32;
extern const kseg_assign_kernel kseg_assign_reference_f64;

#endif
