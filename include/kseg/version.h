/* kseg version macros.
 * The numbers are bumped by hand at release time; KSEG_VERSION_HEX allows compile-time comparisons. */
#ifndef KSEG_VERSION_H
#define KSEG_VERSION_H

#include "kseg/export.h"

#define KSEG_VERSION_MAJOR 0
#define KSEG_VERSION_MINOR 1
#define KSEG_VERSION_PATCH 0
#define KSEG_VERSION_STRING "0.1.0"
#define KSEG_VERSION_HEX \
    ((KSEG_VERSION_MAJOR << 16) | (KSEG_VERSION_MINOR << 8) | KSEG_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually linked, which may differ from the header's. */
KSEG_API const char *kseg_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
