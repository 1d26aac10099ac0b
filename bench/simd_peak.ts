/**
 * npm run bench:simd-peak [-- --seconds 1]
 *
 * The one-core WebAssembly SIMD arithmetic limit the kernels are read against: a tight loop of independent
 * f32x4 multiply+add chains (12 accumulators, enough to cover the latency; no memory traffic), in GFLOP/s
 * (a mul and an add on 4 lanes = 8 flops). Also the same with f32x4.relaxed_madd where this Node validates relaxed
 * SIMD (Node 20's V8 11.3 only behind --experimental-wasm-relaxed-simd; Node 22's by default). The module is
 * assembled here byte by byte so that the benchmark needs no compiler.
 */

const CHAINS = 12;

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const f32 = (x: number) => [...new Uint8Array(new Float32Array([x]).buffer)];
const SIMD = 0xfd;
const op = {
  f32x4Splat: [SIMD, ...uleb(0x13)],
  f32x4Add: [SIMD, ...uleb(0xe4)],
  f32x4Mul: [SIMD, ...uleb(0xe6)],
  f32x4Extract0: [SIMD, ...uleb(0x1f), 0],
  relaxedMadd: [SIMD, ...uleb(0x105)],
};

/** (iterations: i32) -> f32: each iteration updates CHAINS accumulators acc = acc * a + b. */
export function peakModule(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const body: number[] = [];
  const A = CHAINS + 1,
    B = CHAINS + 2; // local indices; 0 is the parameter
  const splat = (x: number, local: number) => body.push(0x43, ...f32(x), ...op.f32x4Splat, 0x21, local);
  for (let k = 1; k <= CHAINS; k++) splat(1 + k * 1e-3, k);
  splat(0.999999, A);
  splat(1e-6, B);
  body.push(0x02, 0x40, 0x03, 0x40); // block, loop
  for (let k = 1; k <= CHAINS; k++) {
    if (relaxed) body.push(0x20, k, 0x20, A, 0x20, B, ...op.relaxedMadd, 0x21, k);
    else body.push(0x20, k, 0x20, A, ...op.f32x4Mul, 0x20, B, ...op.f32x4Add, 0x21, k);
  }
  body.push(0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x0b); // i = i - 1; br_if loop; end; end
  body.push(0x20, 1);
  for (let k = 2; k <= CHAINS; k++) body.push(0x20, k, ...op.f32x4Add);
  body.push(...op.f32x4Extract0, 0x0b);
  const locals = [1, ...uleb(CHAINS + 2), 0x7b]; // one group of v128 locals
  const fn = [...locals, ...body];
  const code = [1, ...uleb(fn.length), ...fn];
  const section = (id: number, bytes: number[]) => [id, ...uleb(bytes.length), ...bytes];
  const name = [...Buffer.from('peak')];
  return new Uint8Array([
    0,
    0x61,
    0x73,
    0x6d,
    1,
    0,
    0,
    0,
    ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7d]), // type: (i32) -> f32
    ...section(3, [1, 0]),
    ...section(7, [1, name.length, ...name, 0, 0]),
    ...section(10, code),
  ]);
}

/** Best GFLOP/s of `repeats` timed calls of about `seconds` / repeats each; undefined if the module is refused. */
export function measurePeak(relaxed: boolean, seconds = 1, repeats = 5): number | undefined {
  const bytes = peakModule(relaxed);
  if (!WebAssembly.validate(bytes)) return undefined;
  const peak = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.peak as (n: number) => number;
  let iters = 1e5;
  peak(iters); // tier up
  for (;;) {
    // calibrate to about seconds / repeats per call
    const t0 = performance.now();
    peak(iters);
    const ms = performance.now() - t0;
    if (ms > 20) {
      iters = Math.max(1, Math.round((iters * ((seconds * 1000) / repeats)) / ms));
      break;
    }
    iters *= 4;
  }
  let best = 0;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    peak(iters);
    const ms = performance.now() - t0;
    best = Math.max(best, (iters * CHAINS * 8) / ms / 1e6);
  }
  return best;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const seconds = Number(args[args.indexOf('--seconds') + 1] ?? 1) || 1;
  const plain = measurePeak(false, seconds)!;
  const relaxed = measurePeak(true, seconds);
  console.log(`WebAssembly SIMD, one core, ${CHAINS} independent chains: f32x4 mul+add ${plain.toFixed(1)} GFLOP/s`);
  console.log(
    relaxed === undefined
      ? `f32x4.relaxed_madd: not available in Node ${process.versions.node} (V8 ${process.versions.v8}) without --experimental-wasm-relaxed-simd`
      : `f32x4.relaxed_madd ${relaxed.toFixed(1)} GFLOP/s`,
  );
}
