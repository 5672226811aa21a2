// Thread-to-core pinning for the CPU engine (Linux; elsewhere the calls report failure).
#ifndef HYBRIDPLANNER_AFFINITY_H
#define HYBRIDPLANNER_AFFINITY_H

/// Writes the ids of the cores the calling thread may run on into `cpus` (at most `capacity`);
/// returns how many there are, or -1 when they cannot be read.
int hp_allowed_cpus(int *cpus, int capacity);

/// Pins the calling thread to core `cpu`; returns 0 on success, -1 otherwise.
int hp_pin_current_thread(int cpu);

#endif
