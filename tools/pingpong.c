/* The round trip between the machine's first two CPUs: one thread on each hands a flag back and
 * forth through one cache line. About 55-80 ns when the host keeps this VM's two virtual cores
 * on one die, 330-380 ns when it puts them on two (two-thread times measured then are slower;
 * see README, "Two threads and the host").
 *
 *     cc -O2 -pthread tools/pingpong.c -o /tmp/pingpong && /tmp/pingpong
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define ROUNDS 200000

static _Atomic int flag __attribute__((aligned(64)));

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *unused) {
    (void)unused;
    pin(1);
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load(&flag) != 1) {
        }
        atomic_store(&flag, 0);
    }
    return NULL;
}

int main(void) {
    pthread_t other;
    struct timespec start, end;
    pin(0);
    pthread_create(&other, NULL, answer, NULL);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store(&flag, 1);
        while (atomic_load(&flag) != 0) {
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(other, NULL);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    printf("round trip %.0f ns\n", ns / ROUNDS);
    return 0;
}
