/* The ThreadSanitizer canary: two OpenMP threads update one counter with no synchronization, a
 * data race that TSan must report. ctest expects this program to "fail" by its output (WILL_FAIL),
 * which proves that the tsan build and test preset still detect races and that a report fails a
 * test even when the program exits 0. */
#include <omp.h>
#include <stdio.h>

int main(void)
{
    /* volatile keeps the compiler from turning the loop into one store per thread. */
    volatile long counter = 0;
#pragma omp parallel num_threads(2)
    {
        for (int i = 0; i < 1000; i++)
            counter = counter + 1; /* the deliberate race */
    }
    printf("tsan_canary: counter %ld (a race: TSan must have reported it above)\n", counter);
    return 0;
}
