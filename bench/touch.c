/* Memory touched after a wake-up (`bench/run phases --touch-pages N`).
 *
 * Eight threads on the calling CPU at SCHED_FIFO 50 with a 20 ms period,
 * 0.5 ms apart in the period. After each wake-up, the odd threads read one
 * byte of each of N pages of their own buffer (resident, locked), the even
 * ones read nothing, and each times that from its first clock read to the
 * next. The even threads measure two clock reads back to back; if the odd
 * ones are held up more often, reading memory that is already there is
 * what holds them. Prints one line per thread:
 *   thread K phase_us P pages N samples S over50 A over100 B wake_over100 C
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PERIOD 20000000LL
#define THREADS 8
#define WARM 50 /* first ticks left out: buffers still being set up */

static long long t0;
static int loops, pages;
static long long *wake, *touch;
static volatile long sink;

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *run(void *arg) {
    int k = (int)(long)arg, n = (k % 2) ? pages : 0;
    struct sched_param sp = {.sched_priority = 50};
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0) {
        fprintf(stderr, "touch: SCHED_FIFO refused\n");
        exit(1);
    }
    volatile char *buf = malloc((size_t)(n + 1) * 4096);
    if (!buf) exit(1);
    for (long i = 0; i < (long)(n + 1) * 4096; i++) buf[i] = 1;
    long long d = t0 + k * 500000LL;
    for (int i = 0; i < loops; i++) {
        d += PERIOD;
        struct timespec ts = {d / 1000000000LL, d % 1000000000LL};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        long long w = now();
        long s = 0;
        for (int p = 0; p < n; p++) s += buf[(long)p * 4096];
        sink = s;
        touch[k * loops + i] = now() - w;
        wake[k * loops + i] = w - d;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || (loops = atoi(argv[1])) <= WARM || (pages = atoi(argv[2])) < 0) {
        fprintf(stderr, "usage: touch LOOPS(>%d) PAGES\n", WARM);
        return 2;
    }
    wake = calloc((size_t)THREADS * loops, sizeof *wake);
    touch = calloc((size_t)THREADS * loops, sizeof *touch);
    if (!wake || !touch) return 1;
    t0 = (now() / PERIOD + 25) * PERIOD; /* half a second on */
    pthread_t th[THREADS];
    for (int k = 0; k < THREADS; k++) pthread_create(&th[k], NULL, run, (void *)(long)k);
    sleep(1); /* buffers written by then: lock them */
    if (mlockall(MCL_CURRENT) != 0) fprintf(stderr, "touch: mlockall refused\n");
    for (int k = 0; k < THREADS; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < THREADS; k++) {
        int a = 0, b = 0, c = 0;
        for (int i = WARM; i < loops; i++) {
            a += touch[k * loops + i] > 50000;
            b += touch[k * loops + i] > 100000;
            c += wake[k * loops + i] > 100000;
        }
        printf("thread %d phase_us %d pages %d samples %d over50 %d over100 %d wake_over100 %d\n",
               k, k * 500, (k % 2) ? pages : 0, loops - WARM, a, b, c);
    }
    return 0;
}
