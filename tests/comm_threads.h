/* A communicator that simulates R ranks with R threads of one process, for tests of the
 * distributed algorithms without MPI (and under the sanitizers): each collective publishes the
 * rank's contribution, meets the other ranks at a barrier, copies what it needs, and meets them
 * again before anyone may reuse its buffers. Header-only; include it in one test file. */
#ifndef KSEG_TESTS_COMM_THREADS_H
#define KSEG_TESTS_COMM_THREADS_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/comm.h"
#include "kseg/error.h"

#define THREAD_COMM_MAX_RANKS 8

typedef struct thread_comm_shared {
    int size;
    pthread_barrier_t barrier;
    const void *data[THREAD_COMM_MAX_RANKS];   /* each rank's published buffer */
    const size_t *sizes[THREAD_COMM_MAX_RANKS]; /* alltoallv: each rank's send lengths */
    size_t bytes[THREAD_COMM_MAX_RANKS];        /* each rank's published length */
} thread_comm_shared;

typedef struct thread_comm_rank {
    thread_comm_shared *shared;
    int rank;
} thread_comm_rank;

static inline thread_comm_shared *thread_comm_of(const kseg_comm *comm)
{
    return ((thread_comm_rank *)comm->impl)->shared;
}

static inline int thread_comm_reduce_i64(const kseg_comm *comm, int64_t *values, size_t count,
                                         int maximum)
{
    thread_comm_shared *shared = thread_comm_of(comm);
    int64_t *combined = malloc((count ? count : 1) * sizeof *combined);
    shared->data[comm->rank] = values;
    pthread_barrier_wait(&shared->barrier);
    for (size_t i = 0; combined && i < count; i++) {
        int64_t value = ((const int64_t *)shared->data[0])[i];
        for (int r = 1; r < shared->size; r++) {
            int64_t other = ((const int64_t *)shared->data[r])[i];
            value = maximum ? (other > value ? other : value) : value + other;
        }
        combined[i] = value;
    }
    pthread_barrier_wait(&shared->barrier);
    if (!combined)
        return KSEG_ENOMEM;
    memcpy(values, combined, count * sizeof *values);
    free(combined);
    return 0;
}

static inline int thread_comm_sum_i64(const kseg_comm *comm, int64_t *values, size_t count)
{
    return thread_comm_reduce_i64(comm, values, count, 0);
}

static inline int thread_comm_max_i64(const kseg_comm *comm, int64_t *values, size_t count)
{
    return thread_comm_reduce_i64(comm, values, count, 1);
}

static inline int thread_comm_allgatherv(const kseg_comm *comm, const void *send,
                                         size_t send_bytes, void *recv, size_t recv_capacity,
                                         size_t *recv_lengths)
{
    thread_comm_shared *shared = thread_comm_of(comm);
    shared->data[comm->rank] = send;
    shared->bytes[comm->rank] = send_bytes;
    pthread_barrier_wait(&shared->barrier);
    size_t total = 0;
    for (int r = 0; r < shared->size; r++)
        total += shared->bytes[r];
    int status = total > recv_capacity ? KSEG_EINTERNAL : 0;
    if (!status) {
        size_t offset = 0;
        for (int r = 0; r < shared->size; r++) {
            if (shared->bytes[r])
                memcpy((unsigned char *)recv + offset, shared->data[r], shared->bytes[r]);
            recv_lengths[r] = shared->bytes[r];
            offset += shared->bytes[r];
        }
    }
    pthread_barrier_wait(&shared->barrier);
    return status;
}

static inline int thread_comm_broadcast(const kseg_comm *comm, void *buffer, size_t bytes, int root)
{
    thread_comm_shared *shared = thread_comm_of(comm);
    if (comm->rank == root)
        shared->data[root] = buffer;
    pthread_barrier_wait(&shared->barrier);
    if (comm->rank != root && bytes)
        memcpy(buffer, shared->data[root], bytes);
    pthread_barrier_wait(&shared->barrier);
    return 0;
}

static inline int thread_comm_alltoallv(const kseg_comm *comm, const void *send,
                                        const size_t *send_bytes, void **recv, size_t *recv_bytes)
{
    thread_comm_shared *shared = thread_comm_of(comm);
    int me = comm->rank;
    shared->data[me] = send;
    shared->sizes[me] = send_bytes;
    pthread_barrier_wait(&shared->barrier);
    size_t total = 0;
    for (int source = 0; source < shared->size; source++) {
        recv_bytes[source] = shared->sizes[source][me];
        total += recv_bytes[source];
    }
    *recv = total ? malloc(total) : NULL;
    if (*recv) {
        size_t cursor = 0;
        for (int source = 0; source < shared->size; source++) {
            size_t offset = 0; /* where the message for `me` starts in source's buffer */
            for (int destination = 0; destination < me; destination++)
                offset += shared->sizes[source][destination];
            if (recv_bytes[source])
                memcpy((unsigned char *)*recv + cursor,
                       (const unsigned char *)shared->data[source] + offset, recv_bytes[source]);
            cursor += recv_bytes[source];
        }
    }
    pthread_barrier_wait(&shared->barrier);
    return total && !*recv ? KSEG_ENOMEM : 0;
}

static inline int thread_comm_reduce_ordered(const kseg_comm *comm, void **buffer, size_t *bytes,
                                             size_t *capacity, kseg_comm_merge_fn merge,
                                             void *merge_context)
{
    thread_comm_shared *shared = thread_comm_of(comm);
    int me = comm->rank, status = 0, failed = 0;
    for (int step = 1; step < shared->size; step *= 2) {
        /* Publish the current string: a merge in an earlier round may have moved it. */
        shared->data[me] = *buffer;
        shared->bytes[me] = *bytes;
        pthread_barrier_wait(&shared->barrier);
        if (!failed && me % (2 * step) == 0 && me + step < shared->size) {
            status = merge(merge_context, buffer, bytes, capacity, shared->data[me + step],
                           shared->bytes[me + step]);
            failed = status != 0;
        }
        pthread_barrier_wait(&shared->barrier);
    }
    return status;
}

static const kseg_comm_ops thread_comm_ops = {
    .allreduce_sum_i64 = thread_comm_sum_i64,
    .allgatherv = thread_comm_allgatherv,
    .broadcast = thread_comm_broadcast,
    .allreduce_max_i64 = thread_comm_max_i64,
    .alltoallv = thread_comm_alltoallv,
    .reduce_ordered = thread_comm_reduce_ordered,
};

/* What each simulated rank runs: comm is set up for n_global rows split by kseg_comm_split_rows
 * (row_offset and the rank's row count in *rows). */
typedef void (*thread_comm_body)(const kseg_comm *comm, size_t rows, void *argument);

typedef struct thread_comm_start {
    thread_comm_rank rank;
    kseg_comm comm;
    size_t rows;
    thread_comm_body body;
    void *argument;
} thread_comm_start;

static inline void *thread_comm_main(void *opaque)
{
    thread_comm_start *start = opaque;
    start->body(&start->comm, start->rows, start->argument);
    return NULL;
}

/* Runs body on `size` simulated ranks (1..THREAD_COMM_MAX_RANKS) over n_global rows and waits for
 * all of them. arguments[r] is rank r's argument. Returns 0, or -1 if the threads could not start. */
static inline int thread_comm_run(int size, size_t n_global, thread_comm_body body,
                                  void **arguments)
{
    if (size < 1 || size > THREAD_COMM_MAX_RANKS)
        return -1;
    thread_comm_shared shared;
    memset(&shared, 0, sizeof shared);
    shared.size = size;
    if (pthread_barrier_init(&shared.barrier, NULL, (unsigned)size))
        return -1;
    thread_comm_start starts[THREAD_COMM_MAX_RANKS];
    pthread_t threads[THREAD_COMM_MAX_RANKS];
    int started = 0, status = 0;
    for (int r = 0; r < size; r++) {
        thread_comm_start *start = &starts[r];
        memset(start, 0, sizeof *start);
        start->rank.shared = &shared;
        start->rank.rank = r;
        start->comm.rank = r;
        start->comm.size = size;
        start->comm.n_global = n_global;
        kseg_comm_split_rows(n_global, size, r, &start->comm.row_offset, &start->rows);
        start->comm.ops = &thread_comm_ops;
        start->comm.impl = &start->rank;
        start->body = body;
        start->argument = arguments[r];
    }
    for (int r = 0; r < size; r++) {
        if (pthread_create(&threads[r], NULL, thread_comm_main, &starts[r])) {
            status = -1;
            break;
        }
        started++;
    }
    /* A rank that failed to start would leave the others waiting at the barrier forever; the
       caller's test then times out, which is the failure we want to see. */
    for (int r = 0; r < started; r++)
        pthread_join(threads[r], NULL);
    pthread_barrier_destroy(&shared.barrier);
    return status;
}

#endif
