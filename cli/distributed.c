/* The CLI's view of a distributed run: rank, size, the per-dataset communicator and collective
 * agreement on failures. The serial build (and the MPI build started without mpirun, as one
 * rank) is rank 0 of 1 with the single-process communicator. */
#include "commands.h"

int cli_rank(void)
{
    return 0;
}

int cli_size(void)
{
    return 1;
}

void cli_comm_for_rows(kseg_comm *comm, size_t n_global, size_t *row_count)
{
    kseg_comm_serial(comm, n_global);
    *row_count = n_global;
}

int cli_any_failed(int failed)
{
    return failed != 0;
}
