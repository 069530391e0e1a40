/* A Criterion test that leaks on purpose. It is registered only in the AddressSanitizer build,
 * as a test that must fail: it proves that a leak fails the suite even when Criterion itself
 * reports the leaking test as passed (it does when ASan does not abort on error). */
#include <criterion/criterion.h>
#include <stdlib.h>

/* volatile: the compiler must not drop the allocation as dead code. */
static void *volatile leaked_pointer;

Test(canary, leaks_one_allocation)
{
    leaked_pointer = malloc(64);
    cr_assert_not_null(leaked_pointer);
    leaked_pointer = NULL;
}
