/* A Criterion test with undefined behaviour on purpose (signed overflow). It is registered only
 * in the UndefinedBehaviorSanitizer build, as a test that must fail: it proves that a UBSan
 * report fails the suite whatever the test's own assertions say. */
#include <criterion/criterion.h>
#include <limits.h>

/* volatile: the compiler must not fold the overflow away at compile time. */
static volatile int large_value = INT_MAX;

Test(canary, overflows_a_signed_int)
{
    int sum = large_value + 1;
    cr_assert(sum != 0);
}
