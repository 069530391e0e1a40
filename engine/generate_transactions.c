/* Synthetic transaction logs for demos, tests and benchmarks: visits of customers drawn from a
 * heavy-tailed distribution, lognormal prices, weekly and yearly seasonality, returns. Every row
 * is a pure function of (seed, row index, total rows) through the counter-based RNG, so blocks
 * come out the same whichever thread or block size produces them, and rows are in time order
 * without sorting. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kseg/transactions.h"
#include "rng.h"

/* Random streams of this generator: "TX" in the top bits keeps them apart from every stream in
   rng.h (which counts up from 1), the low bits name the use. */
#define TX_STREAM(use) ((uint64_t)KSEG_STREAM_TRANSACTIONS | (uint64_t)(use))
enum {
    STREAM_ROW = 1,         /* per row: time jitter, product category, quantity */
    STREAM_ROW_PRICE = 2,   /* per row: price */
    STREAM_VISIT_START = 3, /* per row: does a new visit start here? */
    STREAM_VISIT = 4,       /* per visit (start row): channel, return */
    STREAM_CANDIDATE = 5,   /* per visit and attempt: candidate customer */
    STREAM_CUSTOMER = 6,    /* per customer rank (two blocks): lifetime, channel, country, spend */
    STREAM_PERMUTATION = 7  /* once: the rank -> id permutation */
};

/* Rows below this are generated on the calling thread: a parallel region costs more. */
#define PARALLEL_MIN_ROWS 4096
/* A visit (one invoice) starts at a row with this probability, so baskets have 1/p lines on
   average; every VISIT_MAX_LINES-th row starts one regardless, which bounds the backward search
   for the start of the visit a row belongs to. */
#define VISIT_START_PROBABILITY 0.3
#define VISIT_MAX_LINES 64
/* Candidates drawn per visit until one is active at the visit's time. */
#define CANDIDATE_ATTEMPTS 24
/* Customer ids are CUSTOMER_ID_BASE + a permutation of the rank, like `kseg generate customers`
   (ids 100000 + row index), so the two generators share an id space. */
#define CUSTOMER_ID_BASE 100000
#define INVOICE_BASE 1000000
#define MAX_DAYS 36525
#define MAX_TOTAL_ROWS ((uint64_t)1 << 50)
#define DEFAULT_START_TIME 1672531200 /* 2023-01-01T00:00:00Z */

/* Purchase concentration: the share of visits going to customers of rank below x*N is
   ((x + c)^beta - c^beta) / ((1 + c)^beta - c^beta). With beta = 1/4 and c = 1/1000 the top 1 %
   of customers make about 18 % of visits and the top 20 % about 60 % (the retail "80/20" picture),
   while c caps the single heaviest customer near 0.05 % and the tail keeps many one-time buyers. */
#define CONCENTRATION_BETA 0.25
#define CONCENTRATION_C 0.001

/* ---------------------------------------------------------------- categories */

static const char *const channel_names[] = {"web", "store", "phone"};
static const double channel_weights[] = {0.55, 0.30, 0.15};

static const char *const country_names[] = {"Germany", "France",  "United Kingdom",
                                            "Netherlands", "Spain", "Italy",
                                            "Austria", "Switzerland", "Belgium", "Poland"};
static const double country_weights[] = {0.32, 0.14, 0.13, 0.08, 0.08,
                                         0.08, 0.05, 0.04, 0.04, 0.04};

static const char *const product_names[] = {"electronics", "fashion", "home",  "beauty",
                                            "sports",      "books",   "toys",  "groceries"};
static const double product_weights[] = {0.10, 0.22, 0.18, 0.12, 0.09, 0.10, 0.08, 0.11};
/* Median unit price per product category; prices are lognormal around it. */
static const double product_price_median[] = {60.0, 25.0, 18.0, 12.0, 30.0, 11.0, 15.0, 4.5};
#define PRICE_SIGMA 0.6
#define SPEND_SIGMA 0.4

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const struct {
    const char *name;
    const char *const *values;
    size_t size;
} categories[] = {
    {"channel", channel_names, COUNT(channel_names)},
    {"country", country_names, COUNT(country_names)},
    {"category", product_names, COUNT(product_names)},
};

size_t kseg_generated_category_count(void)
{
    return COUNT(categories);
}

const char *kseg_generated_category_name(size_t category)
{
    return category < COUNT(categories) ? categories[category].name : NULL;
}

size_t kseg_generated_category_size(size_t category)
{
    return category < COUNT(categories) ? categories[category].size : 0;
}

const char *kseg_generated_category_value(size_t category, size_t value)
{
    if (category >= COUNT(categories) || value >= categories[category].size)
        return NULL;
    return categories[category].values[value];
}

void kseg_transaction_options_defaults(kseg_transaction_options *options)
{
    memset(options, 0, sizeof *options);
    options->seed = 1;
    options->customers = 100000;
    options->start_time = DEFAULT_START_TIME;
    options->days = 730;
    options->return_rate = 0.02;
}

/* ---------------------------------------------------------------- random helpers */

/* Uniform in (0, 1) from 32 random bits: enough resolution for shapes and choices. */
static inline double uniform32(uint32_t bits)
{
    return ((double)bits + 0.5) * 0x1.0p-32;
}

/* Uniform in (0, 1) from 64 random bits (53 used): for the customer rank, where resolution
   matters for millions of customers. */
static inline double uniform64(uint32_t high, uint32_t low)
{
    uint64_t bits = ((uint64_t)high << 32) | low;
    return ((double)(bits >> 11) + 0.5) * 0x1.0p-53;
}

static inline size_t pick(const double *weights, size_t n, double u)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    double target = u * total, running = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        running += weights[i];
        if (target < running)
            return i;
    }
    return n - 1;
}

/* Standard normal from two uniforms in (0, 1) (Box-Muller). */
static inline double normal(double u1, double u2)
{
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---------------------------------------------------------------- the model */

typedef struct model {
    uint64_t seed;
    uint64_t customers;
    uint64_t total_rows;
    int64_t start_time;
    uint64_t hours;
    double return_rate;
    double *cumulative;       /* [hours + 1]: integrated intensity at the start of each hour */
    uint64_t perm_a, perm_b;  /* rank -> id: (a * rank + b) mod customers */
    double concentration_low, concentration_span;
} model;

/* Relative purchase intensity of the hour starting at t (seconds since the epoch): time of day,
   day of week, the pre-Christmas peak and a summer dip, and slow growth over the period. */
static double intensity(int64_t t, double progress)
{
    static const double hourly[24] = {0.15, 0.08, 0.05, 0.04, 0.04, 0.07, 0.20, 0.45,
                                      0.75, 0.95, 1.05, 1.15, 1.25, 1.20, 1.10, 1.05,
                                      1.05, 1.15, 1.30, 1.40, 1.35, 1.10, 0.70, 0.35};
    /* Sunday first: 1970-01-01 was a Thursday, so (days + 4) % 7 is 0 on Sundays. */
    static const double weekday[7] = {0.90, 1.05, 1.00, 1.00, 1.00, 1.10, 1.20};
    const double mid = (double)t + 1800.0;
    const int64_t days = (int64_t)floor(mid / 86400.0);
    const int hour = (int)floor((mid - (double)days * 86400.0) / 3600.0);
    const int dow = (int)(((days + 4) % 7 + 7) % 7);
    double year_phase = fmod((double)days / 365.2425, 1.0);
    if (year_phase < 0)
        year_phase += 1.0;
    const double peak = (year_phase - 0.93) / 0.025;
    const double yearly = 1.0 + 0.12 * cos(2.0 * M_PI * (year_phase - 0.96)) +
                          0.6 * exp(-peak * peak);
    return hourly[hour] * weekday[dow] * yearly * (1.0 + 0.15 * progress);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int model_init(model *m, const kseg_transaction_options *o, uint64_t total_rows)
{
    m->seed = o->seed;
    m->customers = o->customers;
    m->total_rows = total_rows;
    m->start_time = o->start_time;
    m->hours = (uint64_t)o->days * 24;
    m->return_rate = o->return_rate;
    m->cumulative = malloc((m->hours + 1) * sizeof *m->cumulative);
    if (!m->cumulative)
        return -1;
    /* Summed in hour order on one thread: the table, and so every time, is the same bitwise on
       every call. */
    m->cumulative[0] = 0.0;
    for (uint64_t h = 0; h < m->hours; h++)
        m->cumulative[h + 1] =
            m->cumulative[h] + intensity(m->start_time + (int64_t)h * 3600,
                                         (double)h / (double)m->hours);
    /* An affine permutation of the ranks: the heaviest customers get ids spread over the range
       rather than the first ones. */
    const uint64_t n = m->customers;
    m->perm_a = 1;
    m->perm_b = 0;
    if (n > 1) {
        m->perm_a = kseg_rng_u64(m->seed, TX_STREAM(STREAM_PERMUTATION), 0) % n;
        if (m->perm_a == 0)
            m->perm_a = 1;
        while (gcd(m->perm_a, n) != 1)
            m->perm_a = m->perm_a + 1 < n ? m->perm_a + 1 : 1;
        m->perm_b = kseg_rng_u64(m->seed, TX_STREAM(STREAM_PERMUTATION), 1) % n;
    }
    m->concentration_low = pow(CONCENTRATION_C, CONCENTRATION_BETA);
    m->concentration_span = pow(1.0 + CONCENTRATION_C, CONCENTRATION_BETA) - m->concentration_low;
    return 0;
}

/* The time of row i: the inverse of the integrated intensity at (i + jitter) / total_rows. The
   argument grows with i, so times never decrease and the log is in time order. */
static int64_t row_time(const model *m, uint64_t i, double jitter)
{
    double position = ((double)i + jitter) / (double)m->total_rows;
    if (position > 1.0)
        position = 1.0;
    const double target = position * m->cumulative[m->hours];
    uint64_t low = 0, high = m->hours; /* find the last hour whose start is <= target */
    while (high - low > 1) {
        uint64_t middle = low + (high - low) / 2;
        if (m->cumulative[middle] <= target)
            low = middle;
        else
            high = middle;
    }
    const double width = m->cumulative[low + 1] - m->cumulative[low];
    double fraction = width > 0 ? (target - m->cumulative[low]) / width : 0.0;
    if (fraction < 0)
        fraction = 0;
    if (fraction > 0x1.fffffffffffffp-1)
        fraction = 0x1.fffffffffffffp-1;
    return m->start_time + (int64_t)low * 3600 + (int64_t)floor(fraction * 3600.0);
}

static int visit_starts(const model *m, uint64_t i)
{
    if (i % VISIT_MAX_LINES == 0)
        return 1;
    kseg_rng_block b = kseg_rng_philox(m->seed, TX_STREAM(STREAM_VISIT_START), i);
    return uniform32(b.v[0]) < VISIT_START_PROBABILITY;
}

/* What is fixed per customer rank. */
typedef struct customer {
    uint64_t rank;
    int64_t id;
    double join, leave;   /* active between these shares of the row range */
    int32_t channel;      /* preferred channel */
    int32_t country;
    double spend;         /* price multiplier */
} customer;

static customer customer_of(const model *m, uint64_t rank)
{
    customer c;
    kseg_rng_block a = kseg_rng_philox(m->seed, TX_STREAM(STREAM_CUSTOMER), 2 * rank);
    kseg_rng_block b = kseg_rng_philox(m->seed, TX_STREAM(STREAM_CUSTOMER), 2 * rank + 1);
    c.rank = rank;
    c.id = CUSTOMER_ID_BASE +
           (int64_t)(((unsigned __int128)m->perm_a * rank + m->perm_b) % m->customers);
    /* About 40 % are customers already at the start; the others join during the period. Each
       stays for an exponential lifetime (mean 1.2 periods), so some churn before the end. */
    double join = -0.6 + 1.6 * uniform32(a.v[0]);
    c.join = join < 0 ? 0 : join;
    c.leave = c.join - 1.2 * log(uniform32(a.v[1]));
    c.channel = (int32_t)pick(channel_weights, COUNT(channel_weights), uniform32(a.v[2]));
    c.country = (int32_t)pick(country_weights, COUNT(country_weights), uniform32(a.v[3]));
    c.spend = exp(SPEND_SIGMA * normal(uniform32(b.v[0]), uniform32(b.v[1])));
    return c;
}

/* What is fixed per visit (one invoice). */
typedef struct visit {
    uint64_t start;
    customer buyer;
    int32_t channel;
    int is_return;
} visit;

static visit visit_of(const model *m, uint64_t start)
{
    visit v;
    v.start = start;
    const double share = ((double)start + 0.5) / (double)m->total_rows;
    /* Candidates come from the concentration distribution; the first one active at this point
       of the period is the buyer (the last candidate when none is, which is rare). */
    for (int attempt = 0; attempt < CANDIDATE_ATTEMPTS; attempt++) {
        kseg_rng_block b = kseg_rng_philox(m->seed, TX_STREAM(STREAM_CANDIDATE),
                                           start * 32 + (uint64_t)attempt);
        double u = uniform64(b.v[0], b.v[1]);
        double x = pow(m->concentration_low + u * m->concentration_span,
                       1.0 / CONCENTRATION_BETA) -
                   CONCENTRATION_C;
        double scaled = x * (double)m->customers;
        uint64_t rank = scaled <= 0 ? 0 : (uint64_t)scaled;
        if (rank >= m->customers)
            rank = m->customers - 1;
        v.buyer = customer_of(m, rank);
        if (share >= v.buyer.join && share <= v.buyer.leave)
            break;
    }
    kseg_rng_block b = kseg_rng_philox(m->seed, TX_STREAM(STREAM_VISIT), start);
    v.channel = uniform32(b.v[0]) < 0.8
                    ? v.buyer.channel
                    : (int32_t)pick(channel_weights, COUNT(channel_weights), uniform32(b.v[1]));
    v.is_return = uniform32(b.v[2]) < m->return_rate;
    return v;
}

/* Rows [begin, end) of the log (global indices), out[k] for row begin + k - offset. */
typedef struct outputs {
    int64_t *customer_id, *time, *invoice;
    double *amount, *quantity, *price;
    uint8_t *cancelled;
    int32_t *channel, *country, *category;
} outputs;

static void generate_range(const model *m, uint64_t begin, uint64_t end, uint64_t offset,
                           const outputs *out)
{
    if (begin >= end)
        return;
    /* The visit of the first row is found by walking back to its start; after that the visit
       is carried forward, which gives the same result as recomputing it per row. */
    uint64_t start = begin;
    while (!visit_starts(m, start))
        start--;
    visit v = visit_of(m, start);
    for (uint64_t i = begin; i < end; i++) {
        if (i != begin && visit_starts(m, i))
            v = visit_of(m, i);
        const size_t k = (size_t)(i - offset);
        kseg_rng_block a = kseg_rng_philox(m->seed, TX_STREAM(STREAM_ROW), i);
        kseg_rng_block b = kseg_rng_philox(m->seed, TX_STREAM(STREAM_ROW_PRICE), i);
        const size_t product =
            pick(product_weights, COUNT(product_weights), uniform32(a.v[2]));
        /* Quantity: 1 + geometric (mostly 1 to 3), and now and then a bulk purchase. */
        double quantity = 1.0 + floor(log(uniform32(a.v[3])) / log(0.45));
        if (uniform32(b.v[2]) < 0.03)
            quantity *= 6.0;
        if (quantity > 1000.0)
            quantity = 1000.0;
        double price = product_price_median[product] * v.buyer.spend *
                       exp(PRICE_SIGMA * normal(uniform32(b.v[0]), uniform32(b.v[1])));
        price = round(price * 100.0) / 100.0;
        if (price < 0.01)
            price = 0.01;
        if (v.is_return)
            quantity = -quantity;
        if (out->customer_id)
            out->customer_id[k] = v.buyer.id;
        if (out->time)
            out->time[k] = row_time(m, i, uniform64(a.v[0], a.v[1]));
        if (out->amount)
            out->amount[k] = quantity * price;
        if (out->quantity)
            out->quantity[k] = quantity;
        if (out->price)
            out->price[k] = price;
        if (out->invoice)
            out->invoice[k] = INVOICE_BASE + (int64_t)v.start;
        if (out->cancelled)
            out->cancelled[k] = (uint8_t)v.is_return;
        if (out->channel)
            out->channel[k] = v.channel;
        if (out->country)
            out->country[k] = v.buyer.country;
        if (out->category)
            out->category[k] = (int32_t)product;
    }
}

int kseg_generate_transactions(const kseg_transaction_options *options, uint64_t total_rows,
                               uint64_t row_begin, size_t rows, int64_t *customer_id,
                               int64_t *time, double *amount, double *quantity, double *price,
                               int64_t *invoice, uint8_t *cancelled,
                               int32_t *const *category_codes, kseg_error *error)
{
    if (!options)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_generate_transactions: options is NULL");
    if (options->customers < 1 || options->customers > MAX_TOTAL_ROWS)
        return kseg_error_set(error, KSEG_EINVAL, "customers %llu (expected 1 to 2^50)",
                              (unsigned long long)options->customers);
    if (options->days < 1 || options->days > MAX_DAYS)
        return kseg_error_set(error, KSEG_EINVAL, "days %lld (expected 1 to %d)",
                              (long long)options->days, MAX_DAYS);
    if (!(options->return_rate >= 0.0 && options->return_rate <= 0.5))
        return kseg_error_set(error, KSEG_EINVAL, "return rate %g (expected 0 to 0.5)",
                              options->return_rate);
    if (total_rows < 1 || total_rows > MAX_TOTAL_ROWS)
        return kseg_error_set(error, KSEG_EINVAL, "total rows %llu (expected 1 to 2^50)",
                              (unsigned long long)total_rows);
    if (row_begin > total_rows || rows > total_rows - row_begin)
        return kseg_error_set(error, KSEG_EINVAL,
                              "rows [%llu, %llu) are outside the log's %llu rows",
                              (unsigned long long)row_begin,
                              (unsigned long long)(row_begin + rows),
                              (unsigned long long)total_rows);
    if (rows == 0)
        return 0;
    model m;
    if (model_init(&m, options, total_rows) != 0)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for the time table of %lld days",
                              (long long)options->days);
    outputs out = {customer_id, time,     invoice,
                   amount,      quantity, price,
                   cancelled,
                   category_codes ? category_codes[0] : NULL,
                   category_codes ? category_codes[1] : NULL,
                   category_codes ? category_codes[2] : NULL};

    /* Contiguous ranges per thread: each carries its visit forward, and the result is the same
       for any number of threads. */
#pragma omp parallel if (rows >= PARALLEL_MIN_ROWS)
    {
        const uint64_t threads = (uint64_t)omp_get_num_threads();
        const uint64_t thread = (uint64_t)omp_get_thread_num();
        const uint64_t begin = row_begin + rows * thread / threads;
        const uint64_t end = row_begin + rows * (thread + 1) / threads;
        generate_range(&m, begin, end, row_begin, &out);
    }
    free(m.cumulative);
    return 0;
}
