/* Error codes and the error context used by every fallible kseg function.
 * Functions return 0 or a negative KSEG_E* code and, when given a kseg_error, fill it with a
 * one-line message naming the file, dataset, row or column and what was expected. */
#ifndef KSEG_ERROR_H
#define KSEG_ERROR_H

#include "kseg/export.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One table for all codes: X(name, value, description). The description is what kseg_strerror
 * returns; the message in kseg_error says where and why. */
#define KSEG_ERROR_TABLE(X)                                                       \
    X(EINVAL, -1, "invalid argument")                                             \
    X(ENOMEM, -2, "out of memory")                                                \
    X(EIO, -3, "input/output error")                                              \
    X(ENOENT, -4, "no such file, dataset or column")                              \
    X(ETYPE, -5, "unsupported data type")                                         \
    X(ESHAPE, -6, "unexpected shape")                                             \
    X(ENONFINITE, -7, "value is NaN or infinite")                                 \
    X(EEMPTY, -8, "no data")                                                      \
    X(EFORMAT, -9, "malformed file")                                              \
    X(ECANCELED, -10, "canceled by the caller")                                   \
    X(ENOTSUP, -11, "operation not supported")                                    \
    X(EEXIST, -12, "refusing to overwrite")                                       \
    X(ETOOBIG, -13, "size exceeds the limits")                                    \
    X(EINTERNAL, -14, "internal error")                                          \
    X(EINTERRUPTED, -15, "interrupted; a checkpoint was taken")                   \
    X(EMISMATCH, -16, "the checkpoint belongs to other data or options")          \
    X(ERESTART, -17, "add the input again from its first block")

enum kseg_error_code {
    KSEG_OK = 0,
#define KSEG_ERROR_ENUM_(name, value, text) KSEG_##name = value,
    KSEG_ERROR_TABLE(KSEG_ERROR_ENUM_)
#undef KSEG_ERROR_ENUM_
};

/* The length of kseg_error.message including the terminating NUL; longer messages are cut. */
#define KSEG_ERROR_MESSAGE_MAX 512

/* A caller-owned error context. Zero it (or call kseg_error_clear) before use. A function that
 * fails writes the code and a one-line message; a function that succeeds leaves it unchanged. */
typedef struct kseg_error {
    int code;
    char message[KSEG_ERROR_MESSAGE_MAX];
} kseg_error;

/* The static description of an error code ("unknown error" for codes outside the table). */
KSEG_API const char *kseg_strerror(int code);

/* The symbolic name of an error code, e.g. "KSEG_EINVAL". */
KSEG_API const char *kseg_err_name(int code);

KSEG_API void kseg_error_clear(kseg_error *error);

/* Records code and a printf-style message in error (which may be NULL) and returns code, so that
 * a failing path can say `return kseg_error_set(error, KSEG_EINVAL, "...", ...);`. */
KSEG_API int kseg_error_set(kseg_error *error, int code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
