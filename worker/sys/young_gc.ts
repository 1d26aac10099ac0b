/**
 * A scavenge (V8's young-generation collection) at a moment the training loop picks, instead of wherever the
 * allocation that fills the young generation happens to fall.
 *
 * Why: a step allocates several MB of short-lived JS objects (tfjs's tensors, tape and kernel records), so V8
 * scavenges every few steps, in the middle of a forward or backward pass, for some milliseconds with the tape still
 * alive. In a data-parallel job each rank's pauses fall on different steps and every pause on one rank stalls all
 * of them at the next all-reduce. Collected once per step after the pass, the young generation is nearly all
 * garbage (cheap to scavenge) and every rank pauses at the same point, while the all-reduce is in flight.
 *
 * Node only hands out `gc` to processes started with --expose-gc, which a worker started by hand or by another
 * launcher does not have; setting the flag at run time makes V8 install `gc` in contexts created after it, so one
 * new context hands the function over, and the flag is cleared again (the same two lines the `expose-gc` package
 * is made of, written here rather than added as a dependency).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => void;

let gc: GcFunction | undefined;

function gcFunction(): GcFunction {
  if (gc) return gc;
  const exposed = (globalThis as { gc?: GcFunction }).gc;
  if (exposed) {
    gc = exposed;
    return gc;
  }
  v8.setFlagsFromString('--expose-gc');
  try {
    gc = vm.runInNewContext('gc') as GcFunction;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return gc;
}

/** Run a young-generation collection now (synchronously). */
export function youngGc(): void {
  gcFunction()({ type: 'minor' });
}
