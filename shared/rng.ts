/**
 * Seeded random number generators.
 *
 * - `Mulberry32`: a tiny, fast 32-bit PRNG for augmentation and anything else that only needs to be reproducible
 *   within this project (same seed -> same numbers on every machine).
 * - `NumpyRandomState`: MT19937 seeded and consumed exactly like numpy's legacy `np.random.RandomState(seed)`.
 *   PaddleClas shuffles its file list with `RandomState(shuffle_seed).shuffle(lines)` and its distributed sampler
 *   with `RandomState(epoch).shuffle(indices)`; reproducing numpy bit for bit means a job sees the same sample
 *   order as under PaddleClas. No npm package implements numpy's bounded-integer draw (masked rejection), which is
 *   why it is written here.
 */

export interface Rng {
  /** uniform float in [0, 1) */
  random(): number;
  /** uniform float in [lo, hi) (Python's random.uniform) */
  uniform(lo: number, hi: number): number;
  /** uniform integer in [lo, hi] inclusive (Python's random.randint) */
  randint(lo: number, hi: number): number;
  /** one element of a non-empty array (Python's random.choice) */
  choice<T>(items: readonly T[]): T;
}

abstract class RngBase implements Rng {
  abstract nextUint32(): number;
  random(): number {
    return this.nextUint32() / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }
  randint(lo: number, hi: number): number {
    if (hi < lo) throw new RangeError(`randint: empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('choice: empty array');
    return items[Math.floor(this.random() * items.length)];
  }
}

/** mulberry32 (Tommy Ettinger): one 32-bit state word, passes gjrand/PractRand for this use. */
export class Mulberry32 extends RngBase {
  private state: number;
  constructor(seed: number) {
    super();
    this.state = seed >>> 0;
  }
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

/** Derive an independent 32-bit seed from several integers (e.g. base seed, epoch, sample index, rank). */
export function mixSeed(...parts: number[]): number {
  // splitmix-style avalanche over each part so that nearby inputs give unrelated seeds
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
    // fold in the high bits of non-32-bit integers
    const hi = Math.floor(p / 4294967296) >>> 0;
    if (hi) h = Math.imul(h ^ hi, 0x27d4eb2f) >>> 0;
  }
  return h >>> 0;
}

const N = 624;
const M = 397;

/** numpy.random.RandomState (legacy MT19937) for integer seeds 0 .. 2^32-1. */
export class NumpyRandomState extends RngBase {
  private readonly mt = new Uint32Array(N);
  private pos = N;

  constructor(seed: number) {
    super();
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`NumpyRandomState: seed must be an integer in [0, 2^32-1], got ${seed}`);
    }
    // numpy's mt19937_seed == Matsumoto & Nishimura's init_genrand
    let s = seed >>> 0;
    for (let i = 0; i < N; i++) {
      this.mt[i] = s;
      s = (Math.imul(1812433253, s ^ (s >>> 30)) + i + 1) >>> 0;
    }
  }

  private generate(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i] & 0x80000000) | (mt[(i + 1) % N] & 0x7fffffff);
      mt[i] = mt[(i + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.pos = 0;
  }

  nextUint32(): number {
    if (this.pos >= N) this.generate();
    let y = this.mt[this.pos++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** numpy's random_sample(): 53-bit double from two draws */
  override random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** numpy's legacy random_interval: uniform integer in [0, max] by masked rejection (max < 2^32). */
  interval(max: number): number {
    if (max === 0) return 0;
    if (max > 0xffffffff) throw new RangeError('NumpyRandomState.interval: max must be below 2^32');
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    let v: number;
    do v = (this.nextUint32() & mask) >>> 0;
    while (v > max);
    return v;
  }

  /** In-place Fisher-Yates exactly as RandomState.shuffle does it for 1-D arrays and lists. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.interval(i);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
  }
}

/**
 * The seed to give a tfjs random op (randomNormal, randomUniform, dropout) for our seed `n`. tfjs takes any falsy
 * seed, 0 included, as none and draws from Math.random, so a run with the default seed 0 initialised its first
 * convolution differently every time; 0 goes to a fixed non-zero value, every other seed is passed as it is.
 */
export function tfSeed(n: number): number {
  return n === 0 ? 0x5eed : n;
}
