/**
 * glibc malloc settings for worker processes, passed as GLIBC_TUNABLES when the process is started (glibc reads
 * them once, at start-up; nothing can change them later from JavaScript).
 *
 * Why: libzmq mallocs a fresh buffer for every large received message (1 MiB ring chunks) and frees it when
 * V8's GC finalizes the Buffer. With glibc's defaults the freed memory at the top of the I/O thread's arena is
 * handed back to the kernel (madvise/munmap) after every GC, so the next messages are received into fresh pages
 * and every 4 KiB page faults inside the kernel's socket copy. Under virtualisation a page fault is expensive, and
 * perf showed a large share of a ZeroMQ transfer's CPU in them (bench:allreduce --profile prints the fault
 * counts, with and without these settings). Keeping allocations up to 32 MiB in the arenas (never mmapped one
 * by one) and never trimming them lets the same pages be reused message after message; the cost is that a worker's peak heap stays mapped.
 * In shared/ because the launcher puts them in each worker's environment; the collectives are the reason.
 */
export const COLLECTIVE_MALLOC_TUNABLES: Record<string, number> = {
  // the largest value glibc accepts on 64-bit (half its 64 MiB per-thread heap); 1 MiB chunks stay far below
  'glibc.malloc.mmap_threshold': 32 * 1024 * 1024,
  'glibc.malloc.trim_threshold': 1024 * 1024 * 1024,
};

/**
 * The GLIBC_TUNABLES value for a worker: the parent's tunables with ours added (a tunable the parent already
 * sets is left as the parent set it).
 */
export function withCollectiveMallocTunables(parent: string | undefined): string {
  const entries = (parent ?? '').split(':').filter((s) => s.length > 0);
  const present = new Set(entries.map((e) => e.split('=')[0]));
  for (const [k, v] of Object.entries(COLLECTIVE_MALLOC_TUNABLES)) if (!present.has(k)) entries.push(`${k}=${v}`);
  return entries.join(':');
}
