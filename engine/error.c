/* The error table's strings and the error context helpers shared by the whole library. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kseg/error.h"
#include "kseg/version.h"

const char *kseg_strerror(int code)
{
    switch (code) {
    case KSEG_OK:
        return "success";
#define KSEG_ERROR_TEXT_(name, value, text) \
    case KSEG_##name:                       \
        return text;
        KSEG_ERROR_TABLE(KSEG_ERROR_TEXT_)
#undef KSEG_ERROR_TEXT_
    default:
        return "unknown error";
    }
}

const char *kseg_err_name(int code)
{
    switch (code) {
    case KSEG_OK:
        return "KSEG_OK";
#define KSEG_ERROR_NAME_(name, value, text) \
    case KSEG_##name:                       \
        return "KSEG_" #name;
        KSEG_ERROR_TABLE(KSEG_ERROR_NAME_)
#undef KSEG_ERROR_NAME_
    default:
        return "KSEG_UNKNOWN";
    }
}

void kseg_error_clear(kseg_error *error)
{
    if (error) {
        error->code = 0;
        error->message[0] = '\0';
    }
}

int kseg_error_set(kseg_error *error, int code, const char *format, ...)
{
    if (error) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(error->message, sizeof error->message, format, arguments);
        va_end(arguments);
        /* Messages are one line: a newline from a file name or an HDF5 string would break
           line-oriented logs, so replace any. */
        for (char *c = error->message; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        error->code = code;
    }
    return code;
}

const char *kseg_version_string(void)
{
    return KSEG_VERSION_STRING;
}
