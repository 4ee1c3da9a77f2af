/* How long the gradient exchange of one data-parallel step takes, per gradient size: nnl's
 * all-gather of every rank's f32 gradient sums followed by their sum in rank order (what
 * `mpirun -np N nnlc run` does each step), next to MPI_Allreduce of the same buffer (a ring or
 * tree reduction whose order MPI chooses). Prints one line per size: floats, bytes, the median
 * microseconds of each. Built and run by tools/allreduce_time.sh. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, n, sizeof *t, compare);
    return t[n / 2];
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const int repeats = 50;
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        float *local = malloc(n * sizeof *local);
        float *all = malloc((size_t)n * size * sizeof *all);
        float *sum = malloc(n * sizeof *sum);
        for (long i = 0; i < n; i++) local[i] = (float)(rank + 1) / (float)(i + 1);
        double gather[repeats], reduce[repeats];
        for (int r = -5; r < repeats; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allgather(local, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
            memcpy(sum, all, n * sizeof *sum);
            for (int k = 1; k < size; k++)
                for (long i = 0; i < n; i++) sum[i] += all[(size_t)k * n + i];
            double t1 = MPI_Wtime();
            MPI_Barrier(MPI_COMM_WORLD);
            double t2 = MPI_Wtime();
            MPI_Allreduce(local, sum, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double t3 = MPI_Wtime();
            if (r >= 0) {
                gather[r] = (t1 - t0) * 1e6;
                reduce[r] = (t3 - t2) * 1e6;
            }
        }
        if (rank == 0)
            printf("%ld floats (%.2f MB): all-gather + sum %.0f us, MPI_Allreduce %.0f us\n", n,
                   n * 4.0 / 1e6, median(gather, repeats), median(reduce, repeats));
        free(local);
        free(all);
        free(sum);
    }
    MPI_Finalize();
    return 0;
}
