/* KSEG_API marks the public functions: the library is built with hidden visibility, so only these
 * leave a shared libkseg; everything else stays internal. */
#ifndef KSEG_EXPORT_H
#define KSEG_EXPORT_H

#if defined(__GNUC__)
#define KSEG_API __attribute__((visibility("default")))
#else
#define KSEG_API
#endif

#endif
