/* CSV import: streams a transaction log (plain or gzip CSV, parsed by libcsv) into the layout of
 * kseg/transactions.h. Two passes over the file keep memory bounded by one block of rows plus the
 * dictionaries: the first validates every row and decides the id and invoice encodings, the second
 * writes fixed-size datasets block by block through the transaction writer. */
#define _GNU_SOURCE /* strptime, timegm, tm_gmtoff */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <csv.h>
#include <zlib.h>

#include "kseg/import.h"
#include "kseg/io.h"
#include "kseg/version.h"

#define DEFAULT_BLOCK_ROWS ((size_t)1 << 20)
#define READ_BUFFER_BYTES ((size_t)1 << 20)
/* Amounts beyond this magnitude are taken as garbage (a unit price typed into the quantity
   column, an overflowing product) rather than real money: the row is rejected. */
#define MAX_AMOUNT 1e15
/* Integral float ids beyond 2^53 cannot be told apart from their neighbours in a double. */
#define MAX_EXACT_DOUBLE_INTEGER 9007199254740992.0
/* Rejection reasons quote at most this much of the offending text. */
#define QUOTE_MAX 40
/* libcsv's parser states "between records" and "inside a field" (struct csv_parser.pstate; the
   values have been the same since libcsv 3.0, whose header exposes the struct). */
#define LIBCSV_ROW_NOT_BEGUN 0
#define LIBCSV_FIELD_BEGUN 2

/* ================================================================ text parsing */

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Strict integer syntax [+-]?[0-9]+ with overflow detection; 0 on success, -1 on bad syntax,
   1 on overflow. */
static int parse_int64_text(const char *s, int64_t *value)
{
    const char *p = s;
    int negative = 0;
    if (*p == '+' || *p == '-')
        negative = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return -1;
    uint64_t magnitude = 0;
    int overflow = 0;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (magnitude > (UINT64_MAX - digit) / 10)
            overflow = 1;
        else
            magnitude = magnitude * 10 + digit;
    }
    if (*p)
        return -1;
    if (overflow || magnitude > (uint64_t)INT64_MAX + (negative ? 1u : 0u))
        return 1;
    *value = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return 0;
}

/* Non-zero when s is a decimal number: [+-]?(digits[.digits]|.digits)([eE][+-]?digits)?. This
   keeps strtod's extras (hex, "inf", "nan", leading spaces) out. */
static int is_decimal_syntax(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, digits++;
    }
    if (digits == 0)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == '\0';
}

/* A finite decimal number; 0 on success. */
static int parse_number(const char *s, double *value)
{
    if (!is_decimal_syntax(s))
        return -1;
    errno = 0;
    double parsed = strtod(s, NULL);
    if (!isfinite(parsed))
        return -1;
    *value = parsed;
    return 0;
}

/* How a customer id or invoice text reads. */
typedef enum id_class {
    ID_EMPTY = 0,
    ID_INTEGER,     /* an integer, or integral float text such as 17850.0 */
    ID_NONINTEGRAL, /* float text with a fraction, such as 17850.5 */
    ID_TEXT         /* anything else (letters, or integers too long for int64) */
} id_class;

static id_class classify_id(const char *s, size_t length, int64_t *value)
{
    if (length == 0)
        return ID_EMPTY;
    int integer = parse_int64_text(s, value);
    if (integer == 0)
        return ID_INTEGER;
    if (integer == 1)
        return ID_TEXT; /* a long digit string is a key, not a number */
    if (!is_decimal_syntax(s))
        return ID_TEXT;
    double parsed = strtod(s, NULL);
    if (!isfinite(parsed) || fabs(parsed) > MAX_EXACT_DOUBLE_INTEGER)
        return ID_TEXT;
    if (parsed != floor(parsed))
        return ID_NONINTEGRAL;
    *value = (int64_t)parsed;
    return ID_INTEGER;
}

/* ---------------------------------------------------------------- times */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int64_t y, int64_t m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : days[m - 1];
}

/* Reads exactly n digits at *p; -1 when they are not all digits. */
static int64_t fixed_digits(const char **p, int n)
{
    int64_t value = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        value = value * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return value;
}

/* Unix seconds: [+-]?digits[.digits], fractions floored. */
static int parse_unix_seconds(const char *s, int64_t *seconds)
{
    const char *dot = strchr(s, '.');
    char integer_part[32];
    size_t length = dot ? (size_t)(dot - s) : strlen(s);
    if (length == 0 || length >= sizeof integer_part)
        return -1;
    memcpy(integer_part, s, length);
    integer_part[length] = '\0';
    int64_t value;
    if (parse_int64_text(integer_part, &value) != 0)
        return -1;
    if (dot) {
        const char *p = dot + 1;
        int nonzero = 0;
        if (!*p)
            return -1;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p))
                return -1;
            nonzero |= *p != '0';
        }
        if (nonzero && integer_part[0] == '-') {
            if (value == INT64_MIN)
                return -1;
            value--;
        }
    }
    *seconds = value;
    return 0;
}

/* ISO 8601 subset: YYYY-MM-DD, optionally followed by ' ' or 'T', HH:MM[:SS[.fff]], and a zone
   Z, +HH, +HHMM or +HH:MM (or -). Without a zone the time is UTC. */
static int parse_iso_time(const char *s, int64_t *seconds)
{
    const char *p = s;
    int64_t year = fixed_digits(&p, 4);
    /* Year 0000 is no calendar year of a transaction log: a zeroed or missing date. */
    if (year < 1 || *p++ != '-')
        return -1;
    int64_t month = fixed_digits(&p, 2);
    if (month < 1 || month > 12 || *p++ != '-')
        return -1;
    int64_t day = fixed_digits(&p, 2);
    if (day < 1 || day > days_in_month(year, month))
        return -1;
    int64_t hour = 0, minute = 0, second = 0, offset = 0;
    if (*p == ' ' || *p == 'T' || *p == 't') {
        p++;
        while (*p == ' ')
            p++;
        hour = fixed_digits(&p, 2);
        if (hour < 0 || hour > 23 || *p++ != ':')
            return -1;
        minute = fixed_digits(&p, 2);
        if (minute < 0 || minute > 59)
            return -1;
        if (*p == ':') {
            p++;
            second = fixed_digits(&p, 2);
            if (second < 0 || second > 60)
                return -1;
            if (*p == '.' || *p == ',') {
                p++;
                if (!isdigit((unsigned char)*p))
                    return -1;
                while (isdigit((unsigned char)*p))
                    p++; /* sub-second digits: the layout stores whole seconds */
            }
        }
        while (*p == ' ')
            p++;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int64_t offset_hours = fixed_digits(&p, 2), offset_minutes = 0;
            if (offset_hours < 0 || offset_hours > 23)
                return -1;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)*p)) {
                offset_minutes = fixed_digits(&p, 2);
                if (offset_minutes < 0 || offset_minutes > 59)
                    return -1;
            }
            offset = sign * (offset_hours * 3600 + offset_minutes * 60);
        }
    }
    if (*p)
        return -1;
    *seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
               offset;
    return 0;
}

/* strptime(3) with the text read as UTC: %z offsets are applied, and dates strptime accepts but
   that do not exist (2011-02-30) are refused by a round trip through timegm/gmtime. */
static int parse_strptime(const char *s, const char *format, int64_t *seconds)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_mday = 1;
    const char *end = strptime(s, format, &tm);
    if (!end)
        return -1;
    while (is_blank((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    long offset = tm.tm_gmtoff;
    struct tm wanted = tm;
    time_t value = timegm(&tm);
    struct tm check;
    if (!gmtime_r(&value, &check) || check.tm_year != wanted.tm_year ||
        check.tm_mon != wanted.tm_mon || check.tm_mday != wanted.tm_mday ||
        check.tm_hour != wanted.tm_hour || check.tm_min != wanted.tm_min)
        return -1;
    *seconds = (int64_t)value - offset;
    return 0;
}

/* Parses a trimmed, NUL-terminated time text. */
static int parse_time_text_unchecked(const char *s, const char *format, int64_t *seconds)
{
    if (!*s)
        return -1;
    /* glibc's %s goes through the local time zone; a format of just %s means Unix seconds. */
    if (format && strcmp(format, "%s") != 0)
        return parse_strptime(s, format, seconds);
    if (format || !(strlen(s) > 4 && isdigit((unsigned char)s[0]) && s[4] == '-'))
        if (parse_unix_seconds(s, seconds) == 0)
            return 0;
    if (format)
        return -1;
    return parse_iso_time(s, seconds);
}

/* As above, and inside years 0 to 9999: Unix seconds can be any int64, and a time near its
   limits (garbage in a time column) would overflow RFM's day arithmetic downstream. */
static int parse_time_text(const char *s, const char *format, int64_t *seconds)
{
    int64_t parsed;
    if (parse_time_text_unchecked(s, format, &parsed) != 0 || parsed < KSEG_TIME_MIN ||
        parsed > KSEG_TIME_MAX)
        return -1;
    *seconds = parsed;
    return 0;
}

int kseg_import_parse_time(const char *text, const char *format, int64_t *seconds)
{
    if (!text || !seconds)
        return KSEG_EINVAL;
    size_t length = strlen(text);
    while (length > 0 && is_blank((unsigned char)text[length - 1]))
        length--;
    while (length > 0 && is_blank((unsigned char)*text))
        text++, length--;
    char *copy = malloc(length + 1);
    if (!copy)
        return KSEG_ENOMEM;
    memcpy(copy, text, length);
    copy[length] = '\0';
    int result = parse_time_text(copy, format, seconds);
    free(copy);
    return result == 0 ? 0 : KSEG_EINVAL;
}

/* ================================================================ dictionaries and sets */

/* 64-bit FNV-1a with a final avalanche: simple, and good enough for short keys. */
static uint64_t hash_bytes(const char *text, size_t length)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < length; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_int64(int64_t value)
{
    uint64_t x = (uint64_t)value + 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Texts live in large arena blocks so that a dictionary of millions of ids costs a few mallocs. */
#define ARENA_BLOCK_BYTES ((size_t)1 << 20)

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    char data[];
} arena_block;

/* A text -> code map: codes are given in first-seen order; texts[code] is the text. */
typedef struct dictionary {
    char **texts;
    size_t count, texts_capacity;
    int64_t *slots;     /* code + 1, 0 = empty; capacity is a power of two */
    size_t capacity;
    arena_block *arena;
} dictionary;

static void dictionary_free(dictionary *d)
{
    for (arena_block *block = d->arena; block;) {
        arena_block *next = block->next;
        free(block);
        block = next;
    }
    free(d->texts);
    free(d->slots);
    memset(d, 0, sizeof *d);
}

static char *arena_copy(dictionary *d, const char *text, size_t length)
{
    arena_block *block = d->arena;
    if (!block || block->size - block->used < length + 1) {
        size_t size = length + 1 > ARENA_BLOCK_BYTES ? length + 1 : ARENA_BLOCK_BYTES;
        block = malloc(sizeof *block + size);
        if (!block)
            return NULL;
        block->next = d->arena;
        block->used = 0;
        block->size = size;
        d->arena = block;
    }
    char *copy = block->data + block->used;
    memcpy(copy, text, length);
    copy[length] = '\0';
    block->used += length + 1;
    return copy;
}

static int dictionary_grow(dictionary *d)
{
    size_t capacity = d->capacity ? 2 * d->capacity : 1024;
    int64_t *slots = calloc(capacity, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t code = 0; code < d->count; code++) {
        size_t i = hash_bytes(d->texts[code], strlen(d->texts[code])) & (capacity - 1);
        while (slots[i])
            i = (i + 1) & (capacity - 1);
        slots[i] = (int64_t)code + 1;
    }
    free(d->slots);
    d->slots = slots;
    d->capacity = capacity;
    return 0;
}

/* The code of text, adding it when new; -1 when out of memory. */
static int64_t dictionary_code(dictionary *d, const char *text, size_t length)
{
    if ((d->count + 1) * 2 > d->capacity && dictionary_grow(d) != 0)
        return -1;
    size_t i = hash_bytes(text, length) & (d->capacity - 1);
    while (d->slots[i]) {
        const char *existing = d->texts[d->slots[i] - 1];
        if (strncmp(existing, text, length) == 0 && existing[length] == '\0')
            return d->slots[i] - 1;
        i = (i + 1) & (d->capacity - 1);
    }
    if (d->count == d->texts_capacity) {
        size_t capacity = d->texts_capacity ? 2 * d->texts_capacity : 1024;
        char **texts = realloc(d->texts, capacity * sizeof *texts);
        if (!texts)
            return -1;
        d->texts = texts;
        d->texts_capacity = capacity;
    }
    char *copy = arena_copy(d, text, length);
    if (!copy)
        return -1;
    d->texts[d->count] = copy;
    d->slots[i] = (int64_t)d->count + 1;
    return (int64_t)d->count++;
}

/* A set of int64 values (distinct integer ids and invoices). */
typedef struct int64_set {
    int64_t *values;
    unsigned char *used;
    size_t count, capacity;
} int64_set;

static void int64_set_free(int64_set *s)
{
    free(s->values);
    free(s->used);
    memset(s, 0, sizeof *s);
}

static int int64_set_add(int64_set *s, int64_t value)
{
    if ((s->count + 1) * 2 > s->capacity) {
        size_t capacity = s->capacity ? 2 * s->capacity : 1024;
        int64_t *values = malloc(capacity * sizeof *values);
        unsigned char *used = calloc(capacity, 1);
        if (!values || !used) {
            free(values);
            free(used);
            return -1;
        }
        for (size_t j = 0; j < s->capacity; j++) {
            if (!s->used[j])
                continue;
            size_t i = hash_int64(s->values[j]) & (capacity - 1);
            while (used[i])
                i = (i + 1) & (capacity - 1);
            used[i] = 1;
            values[i] = s->values[j];
        }
        free(s->values);
        free(s->used);
        s->values = values;
        s->used = used;
        s->capacity = capacity;
    }
    size_t i = hash_int64(value) & (s->capacity - 1);
    while (s->used[i]) {
        if (s->values[i] == value)
            return 0;
        i = (i + 1) & (s->capacity - 1);
    }
    s->used[i] = 1;
    s->values[i] = value;
    s->count++;
    return 0;
}

/* ================================================================ the import */

/* The mapped fields of the current record: one growable text buffer per mapping. */
typedef struct slot {
    char *text;
    size_t length, capacity;
} slot;

enum { SLOT_CUSTOMER, SLOT_TIME, SLOT_AMOUNT, SLOT_QUANTITY, SLOT_PRICE, SLOT_INVOICE,
       SLOT_CATEGORY0 };

/* One parsed record. */
typedef struct parsed_row {
    id_class customer_class;
    int64_t customer;
    int64_t time;
    double amount, quantity, price;
    id_class invoice_class;
    int64_t invoice;
    int invoice_cancelled; /* invoice text starts with 'C' */
} parsed_row;

/* What pass 1 learns for each candidate customer-id encoding. */
typedef struct pass1_mode {
    uint64_t accepted;
    uint64_t rejected;
    uint64_t lines[KSEG_IMPORT_SAMPLE_LINES];
    size_t n_lines;
    char first_reason[256];
    int invoice_text;
} pass1_mode;

typedef struct importer {
    const char *path;
    const char *output;
    const kseg_import_options *options;
    kseg_error *error;
    int status;          /* first failure inside a callback; later callbacks do nothing */
    int pass;

    /* Input position. */
    uint64_t line;        /* physical line of the bytes being fed, 1-based */
    uint64_t row_newlines;/* newlines inside the current record's quoted fields */
    int record_open;      /* a record continues past the line fed last */
    uint64_t record_start;/* ... and began on this line */
    size_t field;         /* index of the next field of the current record */
    uint64_t records;     /* records seen (header included) in this pass */
    uint64_t lines;

    /* Header and mapping. */
    int header_done;
    char **header;
    size_t n_header, header_capacity;
    int *slot_of_column;  /* [n_header]: slot index or -1 */
    const char *slot_names[SLOT_CATEGORY0 + KSEG_IMPORT_MAX_CATEGORIES];
    size_t n_slots;
    slot slots[SLOT_CATEGORY0 + KSEG_IMPORT_MAX_CATEGORIES];

    /* Pass 1. */
    pass1_mode modes[2]; /* [0]: integer ids, [1]: text ids */
    int any_text_id;
    uint64_t rows_read;

    /* Pass 2. */
    int text_ids, text_invoices;
    uint64_t expected_rows, written;
    size_t block_rows, fill;
    kseg_transaction_writer *writer;
    int64_t *customer_id;
    uint8_t *customer_valid;
    int64_t *time;
    double *amount, *quantity, *price;
    int64_t *invoice;
    uint8_t *cancelled;
    int32_t *codes[KSEG_IMPORT_MAX_CATEGORIES];
    dictionary customer_dictionary, invoice_dictionary;
    dictionary category_dictionaries[KSEG_IMPORT_MAX_CATEGORIES];
    int64_set customer_set, invoice_set;
    kseg_import_stats stats;
} importer;

static int importer_fail(importer *im, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int importer_fail(importer *im, int code, const char *format, ...)
{
    if (im->status)
        return im->status;
    char message[KSEG_ERROR_MESSAGE_MAX];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, sizeof message, format, arguments);
    va_end(arguments);
    im->status = kseg_error_set(im->error, code, "%s", message);
    return im->status;
}

/* Quotes text for a message: at most QUOTE_MAX bytes, "..." when cut. */
static const char *quoted(const char *text, size_t length, char *buffer, size_t size)
{
    if (length > QUOTE_MAX)
        snprintf(buffer, size, "'%.*s...'", QUOTE_MAX, text);
    else
        snprintf(buffer, size, "'%.*s'", (int)length, text);
    return buffer;
}

static int slot_store(importer *im, slot *s, const char *text, size_t length)
{
    /* Surrounding blanks never belong to a value: "  12" is 12 and "UK " is "UK". */
    while (length > 0 && is_blank((unsigned char)*text))
        text++, length--;
    while (length > 0 && is_blank((unsigned char)text[length - 1]))
        length--;
    if (length + 1 > s->capacity) {
        size_t capacity = s->capacity ? s->capacity : 64;
        while (capacity < length + 1)
            capacity *= 2;
        char *grown = realloc(s->text, capacity);
        if (!grown)
            return importer_fail(im, KSEG_ENOMEM, "out of memory for a field of %zu bytes",
                                 length);
        s->text = grown;
        s->capacity = capacity;
    }
    memcpy(s->text, text, length);
    s->text[length] = '\0';
    s->length = length;
    return 0;
}

static int header_append(importer *im, const char *text, size_t length)
{
    while (length > 0 && is_blank((unsigned char)*text))
        text++, length--;
    while (length > 0 && is_blank((unsigned char)text[length - 1]))
        length--;
    if (im->n_header == im->header_capacity) {
        size_t capacity = im->header_capacity ? 2 * im->header_capacity : 32;
        char **grown = realloc(im->header, capacity * sizeof *grown);
        if (!grown)
            return importer_fail(im, KSEG_ENOMEM, "out of memory reading the header");
        im->header = grown;
        im->header_capacity = capacity;
    }
    char *name = malloc(length + 1);
    if (!name)
        return importer_fail(im, KSEG_ENOMEM, "out of memory reading the header");
    memcpy(name, text, length);
    name[length] = '\0';
    im->header[im->n_header++] = name;
    return 0;
}

/* libcsv's field callback. */
static void on_field(void *field, size_t length, void *data)
{
    importer *im = data;
    if (im->status)
        return;
    const char *text = field ? field : "";
    /* A quoted field may span lines; count them so that the record's first line is known. */
    for (const char *p = text, *end = text + length;
         (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        im->row_newlines++;
    if (!im->header_done) {
        if (im->pass == 1)
            header_append(im, text, length);
    } else if (im->field < im->n_header && im->slot_of_column[im->field] >= 0) {
        slot_store(im, &im->slots[im->slot_of_column[im->field]], text, length);
    }
    im->field++;
}

/* The header's column names as "a, b, c" (cut after about 300 bytes) for messages. */
static void header_listing(const importer *im, char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t i = 0; i < im->n_header && used + 8 < size; i++) {
        if (used > 300) {
            snprintf(buffer + used, size - used, ", ... (%zu in all)", im->n_header);
            return;
        }
        int written = snprintf(buffer + used, size - used, "%s%s", i ? ", " : "", im->header[i]);
        if (written < 0)
            return;
        used += (size_t)written < size - used ? (size_t)written : size - used - 1;
    }
}

static void process_header(importer *im)
{
    im->slot_of_column = malloc((im->n_header ? im->n_header : 1) * sizeof *im->slot_of_column);
    if (!im->slot_of_column) {
        importer_fail(im, KSEG_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < im->n_header; i++)
        im->slot_of_column[i] = -1;
    static const char *const roles[SLOT_CATEGORY0] = {"customer", "time",  "amount",
                                                      "quantity", "price", "invoice"};
    for (size_t s = 0; s < im->n_slots; s++) {
        const char *name = im->slot_names[s];
        if (!name)
            continue;
        const char *role = s < SLOT_CATEGORY0 ? roles[s] : "category";
        size_t found = im->n_header, matches = 0;
        for (size_t i = 0; i < im->n_header; i++)
            if (strcmp(im->header[i], name) == 0) {
                if (matches++ == 0)
                    found = i;
            }
        if (matches == 0) {
            char listing[400];
            header_listing(im, listing, sizeof listing);
            importer_fail(im, KSEG_ENOENT, "%s: %s column '%s' is not in the header (columns: %s)",
                          im->path, role, name, listing);
            return;
        }
        if (matches > 1) {
            importer_fail(im, KSEG_EFORMAT, "%s: %s column '%s' appears %zu times in the header",
                          im->path, role, name, matches);
            return;
        }
        if (im->slot_of_column[found] >= 0) {
            importer_fail(im, KSEG_EINVAL, "%s: column '%s' is mapped twice (as %s and as %s)",
                          im->path, name,
                          im->slot_of_column[found] < SLOT_CATEGORY0
                              ? roles[im->slot_of_column[found]]
                              : "category",
                          role);
            return;
        }
        im->slot_of_column[found] = (int)s;
    }
}

/* Parses the mapped fields of the current record. Returns 0, or -1 with reason filled (when
   reason is not NULL) for a record that cannot be imported. Customer ids are only classified:
   whether a fractional id rejects the row depends on the encoding, decided after pass 1. */
static int parse_row(importer *im, parsed_row *row, char *reason, size_t reason_size)
{
    const kseg_import_options *o = im->options;
    char quote[QUOTE_MAX + 8];
    memset(row, 0, sizeof *row);
    if (im->field != im->n_header) {
        if (reason)
            snprintf(reason, reason_size, "%zu fields, the header has %zu", im->field,
                     im->n_header);
        return -1;
    }
    /* Every text is used as a C string from here on (numbers, ids, dictionary entries): a NUL
       byte inside one would cut it short, so "12<NUL>x" would read as id 12 and two different
       categories "A<NUL>x" and "A<NUL>y" would both be stored as "A" (found by
       fuzz_csv_import). Such a record is malformed. */
    for (size_t k = 0; k < im->n_slots; k++)
        if (im->slots[k].length && memchr(im->slots[k].text, '\0', im->slots[k].length)) {
            if (reason)
                snprintf(reason, reason_size, "%s: contains a NUL byte", im->slot_names[k]);
            return -1;
        }
    slot *s = &im->slots[SLOT_CUSTOMER];
    row->customer_class = classify_id(s->text, s->length, &row->customer);

    s = &im->slots[SLOT_TIME];
    if (s->length == 0 || parse_time_text(s->text, o->time_format, &row->time) != 0) {
        if (reason && s->length)
            snprintf(reason, reason_size, "%s: not a time: %s", o->time,
                     quoted(s->text, s->length, quote, sizeof quote));
        else if (reason)
            snprintf(reason, reason_size, "%s: empty", o->time);
        return -1;
    }
    static const int number_slots[3] = {SLOT_AMOUNT, SLOT_QUANTITY, SLOT_PRICE};
    const char *number_names[3] = {o->amount, o->quantity, o->price};
    double *number_values[3] = {&row->amount, &row->quantity, &row->price};
    for (int k = 0; k < 3; k++) {
        if (!number_names[k])
            continue;
        s = &im->slots[number_slots[k]];
        if (s->length == 0 || parse_number(s->text, number_values[k]) != 0) {
            if (reason && s->length)
                snprintf(reason, reason_size, "%s: not a number: %s", number_names[k],
                         quoted(s->text, s->length, quote, sizeof quote));
            else if (reason)
                snprintf(reason, reason_size, "%s: empty", number_names[k]);
            return -1;
        }
    }
    if (!o->amount)
        row->amount = row->quantity * row->price;
    if (!isfinite(row->amount) || fabs(row->amount) > MAX_AMOUNT) {
        if (reason)
            snprintf(reason, reason_size, "amount %g is out of range (|amount| <= %g)",
                     row->amount, MAX_AMOUNT);
        return -1;
    }
    if (o->invoice) {
        s = &im->slots[SLOT_INVOICE];
        row->invoice_class = classify_id(s->text, s->length, &row->invoice);
        if (row->invoice_class == ID_NONINTEGRAL)
            row->invoice_class = ID_TEXT;
        row->invoice_cancelled = s->length > 0 && s->text[0] == 'C';
    }
    return 0;
}

static void remember_rejection(pass1_mode *mode, uint64_t line, const char *reason)
{
    if (mode->rejected == 0)
        snprintf(mode->first_reason, sizeof mode->first_reason, "line %llu: %s",
                 (unsigned long long)line, reason);
    if (mode->n_lines < KSEG_IMPORT_SAMPLE_LINES)
        mode->lines[mode->n_lines++] = line;
    mode->rejected++;
}

/* Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms,
   no surrogates, nothing above U+10FFFF), or -1 when the whole text is. */
static ptrdiff_t invalid_utf8_offset(const unsigned char *text, size_t length)
{
    size_t i = 0;
    while (i < length) {
        const unsigned char c = text[i];
        size_t more;
        unsigned char low = 0x80, high = 0xBF; /* the allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            low = c == 0xE0 ? 0xA0 : 0x80;
            high = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            low = c == 0xF0 ? 0x90 : 0x80;
            high = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return (ptrdiff_t)i;
        }
        if (length - i - 1 < more || text[i + 1] < low || text[i + 1] > high)
            return (ptrdiff_t)i;
        for (size_t k = 2; k <= more; k++)
            if ((text[i + k] & 0xC0) != 0x80)
                return (ptrdiff_t)i;
        i += more + 1;
    }
    return -1;
}

/* The text columns (customer id, invoice, categories) are stored as UTF-8 dictionaries, which
   h5py, pandas and the JSON report decode. A file in another encoding (Latin-1 exports) fails
   at its first such field, naming line, column and byte, rather than store undecodable text or
   drop its rows one by one. Returns non-zero (with im->status set) on such a field. */
static int check_text_fields(importer *im, uint64_t line)
{
    for (size_t s = 0; s < im->n_slots; s++) {
        if (!im->slot_names[s] || (s != SLOT_CUSTOMER && s != SLOT_INVOICE && s < SLOT_CATEGORY0))
            continue;
        const slot *field = &im->slots[s];
        ptrdiff_t bad = invalid_utf8_offset((const unsigned char *)field->text, field->length);
        if (bad >= 0)
            return importer_fail(im, KSEG_EFORMAT,
                                 "%s: line %llu: column '%s' is not UTF-8 (byte 0x%02X at offset "
                                 "%td of the value); convert the file to UTF-8 first (e.g. iconv "
                                 "-f latin1 -t utf-8)",
                                 im->path, (unsigned long long)line, im->slot_names[s],
                                 (unsigned)(unsigned char)field->text[bad], bad);
    }
    return 0;
}

static void pass1_row(importer *im, uint64_t line)
{
    parsed_row row;
    char reason[200];
    if (check_text_fields(im, line))
        return;
    im->rows_read++;
    if (parse_row(im, &row, reason, sizeof reason) != 0) {
        remember_rejection(&im->modes[0], line, reason);
        remember_rejection(&im->modes[1], line, reason);
        return;
    }
    if (row.customer_class == ID_NONINTEGRAL) {
        char quote[QUOTE_MAX + 8];
        const slot *s = &im->slots[SLOT_CUSTOMER];
        snprintf(reason, sizeof reason, "%s: not an integral id: %s", im->options->customer,
                 quoted(s->text, s->length, quote, sizeof quote));
        remember_rejection(&im->modes[0], line, reason);
    } else {
        im->modes[0].accepted++;
        im->modes[0].invoice_text |= row.invoice_class == ID_TEXT;
    }
    im->modes[1].accepted++;
    im->modes[1].invoice_text |= row.invoice_class == ID_TEXT;
    im->any_text_id |= row.customer_class == ID_TEXT;
}

/* Writes the buffered block. */
static void flush_block(importer *im)
{
    if (im->status || im->fill == 0)
        return;
    kseg_category_column views[KSEG_IMPORT_MAX_CATEGORIES];
    const size_t n_categories = im->options->n_categories;
    for (size_t c = 0; c < n_categories; c++) {
        views[c].name = im->options->categories[c];
        views[c].codes = im->codes[c];
        views[c].names = NULL;
        views[c].n_names = 0;
    }
    kseg_transactions block = {
        .rows = im->fill,
        .customer_id = im->customer_id,
        .customer_valid = im->customer_valid,
        .time = im->time,
        .amount = im->amount,
        .quantity = im->quantity,
        .price = im->price,
        .invoice = im->invoice,
        .cancelled = im->cancelled,
        .categories = n_categories ? views : NULL,
        .n_categories = n_categories,
    };
    int status = kseg_transaction_writer_write(im->writer, (size_t)im->written, &block, im->error);
    if (status) {
        im->status = status;
        return;
    }
    im->written += im->fill;
    im->fill = 0;
}

static void pass2_row(importer *im)
{
    parsed_row row;
    const kseg_import_options *o = im->options;
    if (parse_row(im, &row, NULL, 0) != 0)
        return;
    if (row.customer_class == ID_NONINTEGRAL && !im->text_ids)
        return;
    if (im->written + im->fill >= im->expected_rows) {
        importer_fail(im, KSEG_EIO, "%s: the file changed while it was imported (more rows in "
                      "the second pass than in the first)",
                      im->path);
        return;
    }
    kseg_import_stats *st = &im->stats;
    const size_t i = im->fill;

    /* Customer. */
    int64_t customer = -1;
    if (row.customer_class == ID_EMPTY) {
        st->rows_without_customer++;
    } else if (im->text_ids) {
        const slot *s = &im->slots[SLOT_CUSTOMER];
        customer = dictionary_code(&im->customer_dictionary, s->text, s->length);
        if (customer < 0) {
            importer_fail(im, KSEG_ENOMEM, "out of memory for the customer id dictionary");
            return;
        }
    } else {
        customer = row.customer;
        if (int64_set_add(&im->customer_set, customer) != 0) {
            importer_fail(im, KSEG_ENOMEM, "out of memory counting distinct customers");
            return;
        }
    }
    im->customer_id[i] = customer;
    im->customer_valid[i] = row.customer_class != ID_EMPTY;

    /* Time and money. */
    im->time[i] = row.time;
    if (im->written + i == 0 || row.time < st->time_min)
        st->time_min = row.time;
    if (im->written + i == 0 || row.time > st->time_max)
        st->time_max = row.time;
    im->amount[i] = row.amount;
    if (im->quantity)
        im->quantity[i] = row.quantity;
    if (im->price)
        im->price[i] = row.price;

    /* Invoice and cancellation. */
    if (im->invoice) {
        int64_t invoice = -1;
        if (row.invoice_class == ID_EMPTY) {
            st->rows_without_invoice++;
        } else if (im->text_invoices) {
            const slot *s = &im->slots[SLOT_INVOICE];
            invoice = dictionary_code(&im->invoice_dictionary, s->text, s->length);
            if (invoice < 0) {
                importer_fail(im, KSEG_ENOMEM, "out of memory for the invoice dictionary");
                return;
            }
        } else {
            invoice = row.invoice;
            if (int64_set_add(&im->invoice_set, invoice) != 0) {
                importer_fail(im, KSEG_ENOMEM, "out of memory counting distinct invoices");
                return;
            }
        }
        im->invoice[i] = invoice;
    }
    const int negative_quantity = o->quantity && row.quantity < 0;
    st->cancelled_invoice_rows += row.invoice_cancelled;
    st->negative_quantity_rows += negative_quantity;
    if (im->cancelled) {
        im->cancelled[i] = row.invoice_cancelled || negative_quantity;
        st->cancelled_rows += im->cancelled[i];
    }

    /* Categories. */
    for (size_t c = 0; c < o->n_categories; c++) {
        const slot *s = &im->slots[SLOT_CATEGORY0 + c];
        int64_t code = dictionary_code(&im->category_dictionaries[c], s->text, s->length);
        if (code < 0 || code > INT32_MAX) {
            importer_fail(im, code < 0 ? KSEG_ENOMEM : KSEG_ETOOBIG,
                          "%s: category column %s has more than 2^31 distinct values", im->path,
                          o->categories[c]);
            return;
        }
        im->codes[c][i] = (int32_t)code;
    }
    if (++im->fill == im->block_rows)
        flush_block(im);
}

/* libcsv's record callback. */
static void on_record(int terminator, void *data)
{
    (void)terminator;
    importer *im = data;
    if (im->status)
        return;
    const uint64_t line = im->line - im->row_newlines;
    im->records++;
    if (!im->header_done) {
        im->header_done = 1;
        if (im->pass == 1)
            process_header(im);
    } else if (im->pass == 1) {
        pass1_row(im, line);
    } else {
        pass2_row(im);
    }
    for (size_t s = 0; s < im->n_slots; s++) {
        im->slots[s].length = 0;
        if (im->slots[s].text)
            im->slots[s].text[0] = '\0';
    }
    im->field = 0;
    im->row_newlines = 0;
    im->record_open = 0;
}

/* No blank is a "space" to libcsv: values are trimmed here instead, the same way whether or not
   they were quoted. */
static int never_space(unsigned char c)
{
    (void)c;
    return 0;
}

/* Reads the whole file once, feeding libcsv a line at a time so that the line number of every
   record is known. */
static int run_pass(importer *im, int pass, uint64_t file_size)
{
    struct csv_parser parser;
    int parser_ready = 0;
    gzFile gz = NULL;
    unsigned char *buffer = NULL;
    int status = 0;

    im->pass = pass;
    im->line = 1;
    im->row_newlines = 0;
    im->record_open = 0;
    im->field = 0;
    im->records = 0;
    im->header_done = 0;

    buffer = malloc(READ_BUFFER_BYTES);
    if (!buffer)
        return importer_fail(im, KSEG_ENOMEM, "out of memory");
    errno = 0;
    gz = gzopen(im->path, "rb");
    if (!gz) {
        status = importer_fail(im, errno == ENOENT ? KSEG_ENOENT : KSEG_EIO, "cannot open %s: %s",
                               im->path, errno ? strerror(errno) : "out of memory");
        goto done;
    }
    gzbuffer(gz, 256 * 1024);
    if (csv_init(&parser, 0) != 0) {
        status = importer_fail(im, KSEG_ENOMEM, "out of memory");
        goto done;
    }
    parser_ready = 1;
    csv_set_delim(&parser, (unsigned char)im->options->delimiter);
    csv_set_space_func(&parser, never_space);

    int first = 1, partial_line = 0;
    for (;;) {
        int got = gzread(gz, buffer, (unsigned)READ_BUFFER_BYTES);
        if (got < 0) {
            int code;
            const char *message = gzerror(gz, &code);
            status = importer_fail(im, KSEG_EIO, "%s: cannot read: %s", im->path,
                                   code == Z_ERRNO ? strerror(errno) : message);
            goto done;
        }
        if (got == 0)
            break;
        size_t at = 0, length = (size_t)got;
        if (first) {
            first = 0;
            if (length >= 3 && buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF)
                at = 3;
        }
        while (at < length && !im->status) {
            unsigned char *newline = memchr(buffer + at, '\n', length - at);
            size_t piece = newline ? (size_t)(newline - (buffer + at)) + 1 : length - at;
            if (csv_parse(&parser, buffer + at, piece, on_field, on_record, im) != piece &&
                !im->status) {
                status = importer_fail(im, KSEG_EFORMAT, "%s: line %llu: %s", im->path,
                                       (unsigned long long)im->line,
                                       csv_strerror(csv_error(&parser)));
                goto done;
            }
            /* A record still open after this line began on it, unless it began earlier. */
            if (parser.pstate != LIBCSV_ROW_NOT_BEGUN && !im->record_open) {
                im->record_open = 1;
                im->record_start = im->line;
            }
            at += piece;
            partial_line = !newline;
            if (newline)
                im->line++;
        }
        if (im->status) {
            status = im->status;
            goto done;
        }
        if (im->options->progress) {
            z_off_t offset = gzoffset(gz);
            double fraction = file_size > 0 && offset > 0 ? (double)offset / (double)file_size : 0;
            if (im->options->progress(im->options->progress_data, pass,
                                      fraction > 1 ? 1 : fraction)) {
                status = importer_fail(im, KSEG_ECANCELED, "import of %s canceled", im->path);
                goto done;
            }
        }
    }
    /* A truncated gzip stream reads as a short file; zlib says so only through gzerror. */
    int code = Z_OK;
    const char *message = gzerror(gz, &code);
    if (code != Z_OK && code != Z_STREAM_END) {
        status = importer_fail(im, KSEG_EIO, "%s: cannot read: %s", im->path,
                               code == Z_BUF_ERROR ? "unexpected end of the compressed data "
                                                     "(truncated .gz file?)"
                                                   : message);
        goto done;
    }
    /* libcsv reports an unclosed quote only in its strict mode, which would also refuse stray
       quotes inside unquoted fields (12" pizza) that pandas and most tools accept. So the state is
       checked here: a quoted field still open at the end of the input swallowed the rest of the
       file. */
    if (parser.pstate == LIBCSV_FIELD_BEGUN && parser.quoted && !im->status) {
        status = importer_fail(im, KSEG_EFORMAT,
                               "%s: line %llu: a quoted field is not closed before the end of "
                               "the file",
                               im->path, (unsigned long long)im->record_start);
        goto done;
    }
    if (csv_fini(&parser, on_field, on_record, im) != 0 && !im->status) {
        status = importer_fail(im, KSEG_EFORMAT, "%s: line %llu: %s", im->path,
                               (unsigned long long)im->line, csv_strerror(csv_error(&parser)));
        goto done;
    }
    status = im->status;
    /* A last line without a newline still counts as a line. */
    im->lines = im->line - 1 + (partial_line ? 1 : 0);

done:
    if (status == 0 && im->status)
        status = im->status;
    if (parser_ready)
        csv_free(&parser);
    if (gz)
        gzclose(gz);
    free(buffer);
    return status;
}

void kseg_import_options_defaults(kseg_import_options *options)
{
    memset(options, 0, sizeof *options);
    options->delimiter = ',';
    options->block_rows = DEFAULT_BLOCK_ROWS;
    options->chunk_rows = (size_t)1 << 16;
    options->gzip_level = 4;
}

static int check_options(const kseg_import_options *o, kseg_error *error)
{
    if (!o->customer || !*o->customer)
        return kseg_error_set(error, KSEG_EINVAL, "no customer id column given");
    if (!o->time || !*o->time)
        return kseg_error_set(error, KSEG_EINVAL, "no time column given");
    if (!o->amount && (!o->quantity || !o->price))
        return kseg_error_set(error, KSEG_EINVAL,
                              "no amount: give an amount column, or quantity and price columns");
    if (o->n_categories > KSEG_IMPORT_MAX_CATEGORIES)
        return kseg_error_set(error, KSEG_EINVAL, "%zu category columns (at most %d)",
                              o->n_categories, KSEG_IMPORT_MAX_CATEGORIES);
    if (o->n_categories > 0 && !o->categories)
        return kseg_error_set(error, KSEG_EINVAL, "category column names missing");
    for (size_t c = 0; c < o->n_categories; c++)
        if (!o->categories[c] || !*o->categories[c])
            return kseg_error_set(error, KSEG_EINVAL, "empty category column name");
    if (o->delimiter == '"' || o->delimiter == '\n' || o->delimiter == '\r' ||
        o->delimiter == '\0')
        return kseg_error_set(error, KSEG_EINVAL,
                              "delimiter must be a single character other than a quote or a "
                              "line break");
    if (o->gzip_level < 0 || o->gzip_level > 9)
        return kseg_error_set(error, KSEG_EINVAL, "gzip level %d (expected 0 to 9)",
                              o->gzip_level);
    if (o->time_format && !*o->time_format)
        return kseg_error_set(error, KSEG_EINVAL, "empty time format");
    return 0;
}

/* The atomic writer checks the destination thoroughly, but only once the first pass is done;
   an output directory that cannot be written is worth saying before reading a large file. */
static int check_output_directory(const char *output_path, kseg_error *error)
{
    struct stat info;
    if (stat(output_path, &info) == 0 && S_ISDIR(info.st_mode))
        return kseg_error_set(error, KSEG_EINVAL,
                              "cannot write %s: is a directory (expected a file name)",
                              output_path);
    const char *slash = strrchr(output_path, '/');
    char directory[4096];
    if (!slash)
        snprintf(directory, sizeof directory, ".");
    else
        snprintf(directory, sizeof directory, "%.*s",
                 slash == output_path ? 1 : (int)(slash - output_path), output_path);
    if (stat(directory, &info) != 0)
        return kseg_error_set(error, KSEG_ENOENT, "cannot write %s: directory %s does not exist",
                              output_path, directory);
    if (!S_ISDIR(info.st_mode))
        return kseg_error_set(error, KSEG_ENOENT, "cannot write %s: %s is not a directory",
                              output_path, directory);
    if (access(directory, W_OK | X_OK) != 0)
        return kseg_error_set(error, KSEG_EIO, "cannot write %s: directory %s is not writable (%s)",
                              output_path, directory, strerror(errno));
    return 0;
}

/* The mapping as "customer=CustomerID, time=InvoiceDate, ..." for the file's attributes. */
static void mapping_text(const kseg_import_options *o, char *buffer, size_t size)
{
    size_t used = 0;
    const char *roles[6] = {"customer", "time", "amount", "quantity", "price", "invoice"};
    const char *names[6] = {o->customer, o->time, o->amount, o->quantity, o->price, o->invoice};
    buffer[0] = '\0';
    for (int k = 0; k < 6 && used < size; k++)
        if (names[k])
            used += (size_t)snprintf(buffer + used, size - used, "%s%s=%s", used ? ", " : "",
                                     roles[k], names[k]);
    for (size_t c = 0; c < o->n_categories && used < size; c++)
        used += (size_t)snprintf(buffer + used, size - used, "%scategory=%s", used ? ", " : "",
                                 o->categories[c]);
}

static int write_dictionary(importer *im, const char *column, const dictionary *d)
{
    return kseg_transaction_writer_dictionary(im->writer, column, (const char *const *)d->texts,
                                              d->count, im->error);
}

static int finish_file(importer *im, const pass1_mode *mode)
{
    const kseg_import_options *o = im->options;
    kseg_import_stats *st = &im->stats;
    int status;
    if (im->text_ids &&
        (status = write_dictionary(im, "customer_id", &im->customer_dictionary)))
        return status;
    if (o->invoice && im->text_invoices &&
        (status = write_dictionary(im, "invoice", &im->invoice_dictionary)))
        return status;
    for (size_t c = 0; c < o->n_categories; c++)
        if ((status = write_dictionary(im, o->categories[c], &im->category_dictionaries[c])))
            return status;
    int64_t sample[KSEG_IMPORT_SAMPLE_LINES];
    for (size_t k = 0; k < mode->n_lines; k++)
        sample[k] = (int64_t)mode->lines[k];
    char mapping[1024];
    mapping_text(o, mapping, sizeof mapping);
    kseg_transaction_writer *w = im->writer;
    kseg_error *e = im->error;
    if ((status = kseg_transaction_writer_attribute_string(w, "source", im->path, e)) ||
        (status = kseg_transaction_writer_attribute_string(w, "importer",
                                                           "kseg import transactions", e)) ||
        (status = kseg_transaction_writer_attribute_string(w, "kseg_version",
                                                           kseg_version_string(), e)) ||
        (status = kseg_transaction_writer_attribute_string(w, "mapping", mapping, e)) ||
        (status = kseg_transaction_writer_attribute_string(
             w, "time_format", o->time_format ? o->time_format : "auto", e)) ||
        (status = kseg_transaction_writer_attribute_string(
             w, "customer_id_encoding", im->text_ids ? "dictionary" : "integer", e)) ||
        (o->invoice && (status = kseg_transaction_writer_attribute_string(
                            w, "invoice_encoding", im->text_invoices ? "dictionary" : "integer",
                            e))) ||
        (status = kseg_transaction_writer_attribute_int64(w, "rows_read",
                                                          (int64_t)st->rows_read, e)) ||
        (status = kseg_transaction_writer_attribute_int64(w, "rejected_rows",
                                                          (int64_t)st->rows_rejected, e)) ||
        (status = kseg_transaction_writer_attribute_int64s(w, "rejected_lines_sample", sample,
                                                           mode->n_lines, e)) ||
        (st->rows_rejected &&
         (status = kseg_transaction_writer_attribute_string(w, "first_rejection",
                                                            st->first_rejection, e))) ||
        (status = kseg_transaction_writer_attribute_int64(
             w, "rows_without_customer", (int64_t)st->rows_without_customer, e)) ||
        (status = kseg_transaction_writer_attribute_int64(w, "cancelled_rows",
                                                          (int64_t)st->cancelled_rows, e)))
        return status;
    kseg_transaction_writer *committing = im->writer;
    im->writer = NULL;
    return kseg_transaction_writer_commit(committing, im->error);
}

static void importer_free(importer *im)
{
    kseg_transaction_writer_abort(im->writer);
    for (size_t i = 0; i < im->n_header; i++)
        free(im->header[i]);
    free(im->header);
    free(im->slot_of_column);
    for (size_t s = 0; s < sizeof im->slots / sizeof im->slots[0]; s++)
        free(im->slots[s].text);
    free(im->customer_id);
    free(im->customer_valid);
    free(im->time);
    free(im->amount);
    free(im->quantity);
    free(im->price);
    free(im->invoice);
    free(im->cancelled);
    for (size_t c = 0; c < KSEG_IMPORT_MAX_CATEGORIES; c++) {
        free(im->codes[c]);
        dictionary_free(&im->category_dictionaries[c]);
    }
    dictionary_free(&im->customer_dictionary);
    dictionary_free(&im->invoice_dictionary);
    int64_set_free(&im->customer_set);
    int64_set_free(&im->invoice_set);
}

int kseg_import_transactions(const char *csv_path, const char *output_path,
                             const kseg_import_options *options, kseg_import_stats *stats,
                             kseg_error *error)
{
    importer im;
    memset(&im, 0, sizeof im);
    int status;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!options)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_import_transactions: options is NULL");
    if (!csv_path || !*csv_path)
        return kseg_error_set(error, KSEG_EINVAL, "no input file given (expected FILE.csv[.gz])");
    if (!output_path || !*output_path)
        return kseg_error_set(error, KSEG_EINVAL, "no output file given (expected FILE.h5)");
    if ((status = check_options(options, error)))
        return status;
    struct stat info;
    if (stat(csv_path, &info) != 0)
        return kseg_error_set(error, errno == ENOENT || errno == ENOTDIR ? KSEG_ENOENT : KSEG_EIO,
                              "cannot open %s: %s", csv_path,
                              errno == ENOENT || errno == ENOTDIR ? "no such file"
                                                                  : strerror(errno));
    if (S_ISDIR(info.st_mode))
        return kseg_error_set(error, KSEG_EINVAL,
                              "cannot open %s: is a directory (expected a CSV file)", csv_path);
    if ((status = check_output_directory(output_path, error)))
        return status;
    if (kseg_same_file(csv_path, output_path))
        return kseg_error_set(error, KSEG_EINVAL,
                              "refusing to write %s: it is the input file", output_path);

    im.path = csv_path;
    im.output = output_path;
    im.options = options;
    im.error = error;
    im.slot_names[SLOT_CUSTOMER] = options->customer;
    im.slot_names[SLOT_TIME] = options->time;
    im.slot_names[SLOT_AMOUNT] = options->amount;
    im.slot_names[SLOT_QUANTITY] = options->quantity;
    im.slot_names[SLOT_PRICE] = options->price;
    im.slot_names[SLOT_INVOICE] = options->invoice;
    for (size_t c = 0; c < options->n_categories; c++)
        im.slot_names[SLOT_CATEGORY0 + c] = options->categories[c];
    im.n_slots = SLOT_CATEGORY0 + options->n_categories;

    /* Pass 1: validate every row, classify ids and invoices. */
    if ((status = run_pass(&im, 1, (uint64_t)info.st_size)))
        goto done;
    if (im.records == 0) {
        status = kseg_error_set(error, KSEG_EEMPTY,
                                "%s: empty file (expected a header line naming the columns)",
                                csv_path);
        goto done;
    }
    if (im.rows_read == 0) {
        status = kseg_error_set(error, KSEG_EEMPTY, "%s: no data rows (only a header)", csv_path);
        goto done;
    }
    im.text_ids = im.any_text_id;
    const pass1_mode *mode = &im.modes[im.text_ids];
    im.text_invoices = mode->invoice_text;
    kseg_import_stats *st = &im.stats;
    st->lines = im.lines;
    st->rows_read = im.rows_read;
    st->rows_rejected = mode->rejected;
    memcpy(st->rejected_lines, mode->lines, sizeof st->rejected_lines);
    st->n_rejected_lines = mode->n_lines;
    snprintf(st->first_rejection, sizeof st->first_rejection, "%s", mode->first_reason);
    st->customer_ids_text = im.text_ids;
    st->invoices_text = options->invoice ? im.text_invoices : 0;
    st->n_categories = options->n_categories;
    if (mode->accepted == 0) {
        status = kseg_error_set(error, KSEG_EEMPTY,
                                "%s: none of the %llu data rows could be imported (%s)", csv_path,
                                (unsigned long long)im.rows_read, mode->first_reason);
        goto done;
    }

    /* Pass 2: the datasets have their final size; fill them block by block. */
    im.expected_rows = mode->accepted;
    im.block_rows = options->block_rows ? options->block_rows : DEFAULT_BLOCK_ROWS;
    if (im.block_rows > im.expected_rows)
        im.block_rows = (size_t)im.expected_rows;
    const size_t b = im.block_rows;
    im.customer_id = malloc(b * sizeof *im.customer_id);
    im.customer_valid = malloc(b);
    im.time = malloc(b * sizeof *im.time);
    im.amount = malloc(b * sizeof *im.amount);
    int missing = !im.customer_id || !im.customer_valid || !im.time || !im.amount;
    if (options->quantity)
        missing |= !(im.quantity = malloc(b * sizeof *im.quantity));
    if (options->price)
        missing |= !(im.price = malloc(b * sizeof *im.price));
    if (options->invoice)
        missing |= !(im.invoice = malloc(b * sizeof *im.invoice));
    if (options->invoice || options->quantity)
        missing |= !(im.cancelled = malloc(b));
    for (size_t c = 0; c < options->n_categories; c++)
        missing |= !(im.codes[c] = malloc(b * sizeof *im.codes[c]));
    if (missing) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for a block of %zu rows", b);
        goto done;
    }

    kseg_transaction_file_options file;
    kseg_transaction_file_options_defaults(&file);
    file.rows = (size_t)im.expected_rows;
    file.customer_valid = 1;
    file.quantity = options->quantity != NULL;
    file.price = options->price != NULL;
    file.invoice = options->invoice != NULL;
    file.cancelled = im.cancelled != NULL;
    file.categories = options->categories;
    file.n_categories = options->n_categories;
    if (options->chunk_rows)
        file.chunk_rows = options->chunk_rows;
    file.gzip_level = options->gzip_level;
    if ((status = kseg_transaction_writer_open(&im.writer, output_path, &file, error)))
        goto done;
    if ((status = run_pass(&im, 2, (uint64_t)info.st_size)))
        goto done;
    flush_block(&im);
    if ((status = im.status))
        goto done;
    if (im.written != im.expected_rows) {
        status = kseg_error_set(error, KSEG_EIO,
                                "%s: the file changed while it was imported (%llu rows in the "
                                "second pass, %llu in the first)",
                                csv_path, (unsigned long long)im.written,
                                (unsigned long long)im.expected_rows);
        goto done;
    }
    st->rows_written = im.written;
    st->distinct_customers = im.text_ids ? im.customer_dictionary.count : im.customer_set.count;
    if (options->invoice)
        st->distinct_invoices =
            im.text_invoices ? im.invoice_dictionary.count : im.invoice_set.count;
    for (size_t c = 0; c < options->n_categories; c++)
        st->category_levels[c] = im.category_dictionaries[c].count;
    if ((status = finish_file(&im, mode)))
        goto done;
    if (stats)
        *stats = im.stats;

done:
    if (status && stats && im.rows_read) {
        /* On failure the caller still learns what pass 1 saw. */
        *stats = im.stats;
    }
    importer_free(&im);
    return status;
}
