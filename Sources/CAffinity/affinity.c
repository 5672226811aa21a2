#define _GNU_SOURCE
#include "affinity.h"

#ifdef __linux__
#include <sched.h>

int hp_allowed_cpus(int *cpus, int capacity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &set)) {
            if (n < capacity) cpus[n] = c;
            n++;
        }
    }
    return n;
}

int hp_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -1;
}
#else
int hp_allowed_cpus(int *cpus, int capacity) { (void)cpus; (void)capacity; return -1; }
int hp_pin_current_thread(int cpu) { (void)cpu; return -1; }
#endif
