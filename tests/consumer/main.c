/* Clusters six points into two groups through the installed library and checks the answer. */
#include <kseg/kseg.h>
#include <stdio.h>

int main(void)
{
    float points[] = {0, 0, 0, 1, 1, 0, 10, 10, 10, 11, 11, 10};
    kseg_matrix data = {points, KSEG_FLOAT32, 6, 2};
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    options.n_clusters = 2;
    kseg_kmeans_result result;
    kseg_error error = {0};
    if (kseg_kmeans_fit(&data, &options, &result, &error) != 0) {
        fprintf(stderr, "consumer: %s\n", error.message);
        return 1;
    }
    int ok = result.labels[0] == result.labels[2] && result.labels[3] == result.labels[5] &&
             result.labels[0] != result.labels[3];
    printf("consumer: kseg %s, inertia %g, %s\n", kseg_version_string(), result.inertia,
           ok ? "ok" : "WRONG");
    kseg_kmeans_result_destroy(&result);
    return ok ? 0 : 1;
}
