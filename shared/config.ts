/**
 * PaddleClas 2.0 configs: YAML file + `-o KEY=VALUE` overrides -> one validated, typed TrainConfig.
 *
 * Semantics follow ppcls/utils/config.py (../shared/reference/paddleclas.md, "Config file and -o overrides"):
 * - the YAML is read as PyYAML's SafeLoader reads it (YAML 1.1: `True`, `yes`, `1_000`), then every string that
 *   is a Python literal becomes that value (ast.literal_eval: "0.1", "True", "[1, 2]"); anything else, like
 *   "1./255.", stays a string and is evaluated where it is used (evalScale);
 * - `-o a.b.1.c=v` walks maps by key and lists by index; a new leaf key is added with a warning, a missing
 *   intermediate key is an error.
 * Validation happens here, once, before any worker trains: every error names the key path (in `-o` syntax, so
 * the user can paste it into an override) and the config's source.
 */
import { byDistance, editDistance } from './closest.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, load, YAML11_SCHEMA } from 'js-yaml';
import { resolveVariant } from '../worker/model/variants.js';

export class ConfigError extends Error {}

export type Backend = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKENDS: readonly Backend[] = ['auto', 'tensorflow', 'wasm', 'cpu'];
export type AllreduceDtype = 'float32' | 'float16';
export type Mode = 'train' | 'valid';

export const SCHEDULES = ['Cosine', 'CosineWarmup', 'Piecewise', 'ExponentialWarmup'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

/** LEARNING_RATE with PaddleClas's parameter defaults filled in (ppcls/optimizer/learning_rate.py). */
export type LearningRateConfig =
  | { function: 'Cosine'; params: { lr: number } }
  | { function: 'CosineWarmup'; params: { lr: number; warmup_epoch: number } }
  | { function: 'Piecewise'; params: { lr: number; decay_epochs: number[]; gamma: number } }
  | { function: 'ExponentialWarmup'; params: { lr: number; warmup_epoch: number; decay_epochs: number; decay_rate: number } };

export interface OptimizerConfig {
  function: 'Momentum';
  params: { momentum: number };
  /** absent: no weight decay */
  regularizer?: { function: 'L2'; factor: number };
}

/** One entry of a transforms list: `{OpName: params | null}` (the same shape worker/data/transforms.ts takes). */
export type TransformOp = Record<string, Record<string, unknown> | null>;
/** One entry of TRAIN.mix: `{MixupOperator: {alpha: 0.2}}` or `{CutmixOperator: {alpha: 0.2}}`. */
export type MixOp = Record<string, { alpha?: number } | null>;
export const MIX_OPERATORS = ['MixupOperator', 'CutmixOperator'] as const;

export interface DataConfig {
  /** GLOBAL batch size: each of W workers takes batch_size // W */
  batch_size: number;
  num_workers: number;
  file_list: string;
  data_dir: string;
  /** shuffles the file list once, identically on every worker; required for multi-worker training */
  shuffle_seed?: number;
  delimiter: string;
  transforms: TransformOp[];
  mix?: MixOp[];
  /**
   * Not in PaddleClas: MiB of decoded images (after DecodeImage + ResizeImage/CropImage) each worker keeps
   * between epochs, so small images are decoded once per run instead of once per epoch. 0 turns it off.
   */
  decode_cache_mb: number;
}

/** Everything the training loop reads, with PaddleClas's key names and defaults applied. */
export interface TrainConfig {
  mode: Mode;
  ARCHITECTURE: { name: string; params: Record<string, unknown> };
  /** '' = none */
  pretrained_model: string;
  model_save_dir: string;
  classes_num: number;
  /** S = total_images // TRAIN.batch_size iterations per epoch for the LR schedule (0 when not training) */
  total_images: number;
  save_interval: number;
  validate: boolean;
  valid_interval: number;
  epochs: number;
  topk: number;
  image_shape: [number, number, number];
  use_mix: boolean;
  /** label smoothing iff 0 <= ls_epsilon <= 1 */
  ls_epsilon: number;
  /** checkpoint directory prefix to resume from; '' = none */
  checkpoints: string;
  /** resume: training restarts at last_epoch + 1; -1 = fresh run */
  last_epoch: number;
  print_interval: number;
  use_gpu: boolean;
  /** present in train mode */
  LEARNING_RATE?: LearningRateConfig;
  /** present in train mode */
  OPTIMIZER?: OptimizerConfig;
  /** present in train mode */
  TRAIN?: DataConfig;
  /** present when the file has it; required in valid mode and when validate is true */
  VALID?: DataConfig;
  // The project's own keys.
  backend: Backend;
  /** run seed (weight init, augmentation); the file-list shuffle uses TRAIN.shuffle_seed as PaddleClas does */
  seed: number;
  /** a sample that fails to load is an error instead of being replaced */
  strict_data: boolean;
  allreduce_dtype: AllreduceDtype;
  collective_timeout_s: number;
  metrics_file: string;
  /**
   * logits are divided by this before the cross-entropy. 1 is the official HarDNet; the PaddleClas reproduction
   * trained with 0.5 (its logged loss reflects that): set 0.5 to compare losses with its logs. Accuracy is unaffected.
   */
  loss_temperature: number;
  /**
   * BN normalises over groups of this many images of each worker's batch (ghost batch norm; 0: the worker's whole
   * batch). Set to the per-worker batch of a multi-worker run, it makes a run on fewer workers normalise the same way.
   */
  bn_virtual_batch_size: number;
}

export interface LoadOptions {
  warn?: (msg: string) => void;
  /** workers in the run; > 1 requires TRAIN.shuffle_seed in train mode */
  worldSize?: number;
  /** forces the mode (eval runs in 'valid' mode whatever the file says) */
  mode?: Mode;
}

const TOP_LEVEL_KEYS = [
  'mode', 'ARCHITECTURE', 'pretrained_model', 'model_save_dir', 'classes_num', 'total_images', 'save_interval',
  'validate', 'valid_interval', 'epochs', 'topk', 'image_shape', 'use_mix', 'ls_epsilon', 'checkpoints',
  'last_epoch', 'print_interval', 'use_gpu', 'LEARNING_RATE', 'OPTIMIZER', 'TRAIN', 'VALID',
  'backend', 'seed', 'strict_data', 'allreduce_dtype', 'collective_timeout_s', 'metrics_file', 'loss_temperature',
  'bn_virtual_batch_size',
];
const DATA_KEYS = ['batch_size', 'num_workers', 'file_list', 'data_dir', 'shuffle_seed', 'delimiter', 'transforms', 'mix', 'decode_cache_mb'];
/** default decode_cache_mb: Fashion-MNIST or CIFAR at 32x32 fit (184 / 154 MB); large images simply are not kept */
export const DEFAULT_DECODE_CACHE_MB = 256;
const LR_PARAMS: Record<ScheduleName, string[]> = {
  Cosine: ['lr'],
  CosineWarmup: ['lr', 'warmup_epoch'],
  Piecewise: ['lr', 'decay_epochs', 'gamma'],
  ExponentialWarmup: ['lr', 'warmup_epoch', 'decay_epochs', 'decay_rate'],
};

/** Dotted paths the project knows; `-o` adding one of these is not worth a warning (e.g. `-o last_epoch=3`). */
function isKnownPath(parts: string[]): boolean {
  if (parts.length === 1) return TOP_LEVEL_KEYS.includes(parts[0]);
  if (parts.length === 2 && (parts[0] === 'TRAIN' || parts[0] === 'VALID')) return DATA_KEYS.includes(parts[1]);
  if (parts.length === 2 && parts[0] === 'ARCHITECTURE') return parts[1] === 'name' || parts[1] === 'params';
  if (parts.length === 3 && parts[0] === 'LEARNING_RATE' && parts[1] === 'params') {
    return Object.values(LR_PARAMS).some((p) => p.includes(parts[2]));
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Python literals. PaddleClas runs ast.literal_eval on every string; no JS library parses Python literal syntax
// (single-quoted strings, True/False/None, tuples, 1_000, 0o17), so this small recursive-descent parser does.

const NUMBER_RE = new RegExp(
  '^(?:' +
    [
      '0[xX](?:_?[0-9a-fA-F])+',
      '0[oO](?:_?[0-7])+',
      '0[bB](?:_?[01])+',
      '(?:\\d(?:_?\\d)*)?\\.\\d(?:_?\\d)*(?:[eE][+-]?\\d(?:_?\\d)*)?',
      '\\d(?:_?\\d)*\\.(?:[eE][+-]?\\d(?:_?\\d)*)?',
      '\\d(?:_?\\d)*[eE][+-]?\\d(?:_?\\d)*',
      '[1-9](?:_?\\d)*',
      '0(?:_?0)*',
    ].join('|') +
    ')',
);

class LiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parseAll(): unknown {
    const v = this.value();
    this.ws();
    if (this.pos !== this.s.length) throw new SyntaxError('trailing characters');
    return v;
  }

  private ws(): void {
    while (this.pos < this.s.length && ' \t\n\r'.includes(this.s[this.pos])) this.pos++;
  }

  private value(): unknown {
    this.ws();
    const c = this.s[this.pos];
    if (c === '[') return this.sequence('[', ']');
    if (c === '(') return this.tuple();
    if (c === '{') return this.dict();
    if (c === "'" || c === '"') return this.string();
    return this.atom();
  }

  private sequence(open: string, close: string): unknown[] {
    this.pos++; // open
    const items: unknown[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.pos] === close) { this.pos++; return items; }
      items.push(this.value());
      this.ws();
      if (this.s[this.pos] === ',') { this.pos++; continue; }
      if (this.s[this.pos] === close) { this.pos++; return items; }
      throw new SyntaxError(`expected , or ${close} in ${open}${close}`);
    }
  }

  /** `()` and `(a, b)` are tuples (arrays here); `(a)` is just a parenthesised a. */
  private tuple(): unknown {
    const start = this.pos;
    const items = this.sequence('(', ')');
    const inner = this.s.slice(start + 1, this.pos - 1).trim();
    return items.length === 1 && !inner.endsWith(',') ? items[0] : items;
  }

  private dict(): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    for (;;) {
      this.ws();
      if (this.s[this.pos] === '}') { this.pos++; return out; }
      const key = this.value();
      if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'boolean') throw new SyntaxError('unhashable key');
      this.ws();
      if (this.s[this.pos] !== ':') throw new SyntaxError('expected :'); // a set literal, which config values never are
      this.pos++;
      out[String(key)] = this.value();
      this.ws();
      if (this.s[this.pos] === ',') { this.pos++; continue; }
      if (this.s[this.pos] === '}') { this.pos++; return out; }
      throw new SyntaxError('expected , or }');
    }
  }

  private string(): string {
    const q = this.s[this.pos++];
    let out = '';
    while (this.pos < this.s.length) {
      const c = this.s[this.pos++];
      if (c === q) return out;
      if (c === '\n') break;
      if (c !== '\\') { out += c; continue; }
      const e = this.s[this.pos++];
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
      if (e in simple) out += simple[e];
      else if (e === 'x' || e === 'u') {
        const n = e === 'x' ? 2 : 4;
        const hex = this.s.slice(this.pos, this.pos + n);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) throw new SyntaxError('bad escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += n;
      } else out += `\\${e}`; // Python keeps unknown escapes verbatim
    }
    throw new SyntaxError('unterminated string');
  }

  private atom(): unknown {
    const rest = this.s.slice(this.pos);
    const word = /^[A-Za-z_]\w*/.exec(rest);
    if (word) {
      const consts: Record<string, unknown> = { True: true, False: false, None: null };
      if (!(word[0] in consts)) throw new SyntaxError(`name ${word[0]}`);
      this.pos += word[0].length;
      return consts[word[0]];
    }
    let sign = 1;
    while (this.s[this.pos] === '-' || this.s[this.pos] === '+') {
      if (this.s[this.pos] === '-') sign = -sign;
      this.pos++;
      this.ws();
    }
    const m = NUMBER_RE.exec(this.s.slice(this.pos));
    if (!m) throw new SyntaxError('not a literal');
    this.pos += m[0].length;
    if (/^[\w.]/.test(this.s.slice(this.pos))) throw new SyntaxError('not a literal'); // 1j, 1.2.3, 010
    const t = m[0].replace(/_/g, '');
    const prefixed = /^0[xob]/i.exec(t);
    const v = prefixed ? parseInt(t.slice(2), { x: 16, o: 8, b: 2 }[t[1].toLowerCase() as 'x' | 'o' | 'b']) : Number(t);
    return sign * v;
  }
}

/** ast.literal_eval for the literals configs contain; `undefined` when s is not a literal (it stays a string). */
export function parsePythonLiteral(s: string): { value: unknown } | undefined {
  const trimmed = s.replace(/^[ \t]+/, ''); // literal_eval strips leading spaces and tabs
  if (trimmed.trim() === '') return undefined;
  try {
    return { value: new LiteralParser(trimmed).parseAll() };
  } catch {
    return undefined;
  }
}

/** Replace every string that is a Python literal by its value, in maps and lists alike. */
function typeLiterals(v: unknown): unknown {
  if (typeof v === 'string') {
    const lit = parsePythonLiteral(v);
    return lit ? lit.value : v;
  }
  if (Array.isArray(v)) return v.map(typeLiterals);
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeLiterals(x)]));
  return v;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * NormalizeImage.scale: a number, or a string PaddleClas eval()s, like "1./255." or "1.0/255.0". Only numbers
 * joined by * and / (left to right) are accepted: a config is not a place to run code.
 */
export function evalScale(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isFinite(s)) throw new ConfigError(`scale ${s} is not a finite number`);
    return s;
  }
  const num = '[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?';
  const re = new RegExp(`^\\s*(${num})((?:\\s*[*/]\\s*${num})*)\\s*$`);
  const m = re.exec(s);
  if (!m) throw new ConfigError(`scale ${JSON.stringify(s)} is not a number or a product/quotient of numbers like "1./255."`);
  let v = Number(m[1]);
  for (const [, op, x] of m[2].matchAll(new RegExp(`\\s*([*/])\\s*(${num})`, 'g'))) v = op === '*' ? v * Number(x) : v / Number(x);
  if (!Number.isFinite(v)) throw new ConfigError(`scale ${JSON.stringify(s)} is not finite`);
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// -o overrides

function listIndex(key: string, list: unknown[], keyPath: string): number {
  if (!/^-?\d+$/.test(key)) throw new ConfigError(`config key ${keyPath}: a list index must be an integer, got '${key}'`);
  const i = Number(key) < 0 ? list.length + Number(key) : Number(key); // Python's negative indexes
  if (i < 0 || i >= list.length) throw new ConfigError(`config key ${keyPath}: index ${key} out of range (the list has ${list.length} entries)`);
  return i;
}

/**
 * Apply one `KEY=VALUE` to the raw tree. Returns the leaf's dotted path when it created a new key.
 * The value is split at the first '=' (PaddleClas rejects a second one; paths in values may contain it).
 */
export function applyOverride(tree: Record<string, unknown>, spec: string, warn: (m: string) => void): string | undefined {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new ConfigError(`override '${spec}': expected KEY=VALUE (e.g. -o TRAIN.batch_size=128)`);
  const parts = spec.slice(0, eq).trim().split('.');
  if (parts.some((p) => p === '')) throw new ConfigError(`override '${spec}': empty key segment in '${spec.slice(0, eq)}'`);
  const raw = spec.slice(eq + 1);
  const lit = parsePythonLiteral(raw);
  const value = lit ? lit.value : raw;
  try {
    let node: unknown = tree;
    for (let i = 0; i < parts.length; i++) {
      const keyPath = parts.slice(0, i + 1).join('.');
      const last = i === parts.length - 1;
      if (Array.isArray(node)) {
        const idx = listIndex(parts[i], node, keyPath);
        if (last) { node[idx] = value; return undefined; }
        if (node[idx] === null) node[idx] = {};
        node = node[idx];
      } else if (isMap(node)) {
        const k = parts[i];
        if (last) {
          const isNew = !(k in node);
          node[k] = value;
          if (isNew && !isKnownPath(parts)) {
            // PaddleClas adds a new leaf with a warning; a top-level one that nothing here reads is most often a typo
            const near = parts.length === 1 ? closest(k, TOP_LEVEL_KEYS) : undefined;
            warn(`override '${spec}': config key ${keyPath} is new; adding it` + (near ? ` (no key of this trainer is called that; did you mean ${near}?)` : ''));
          }
          return isNew ? keyPath : undefined;
        }
        if (!(k in node)) {
          throw new ConfigError(`config key ${keyPath} does not exist, and a new map key is not allowed` +
            ` (${i === 0 ? 'top level' : parts.slice(0, i).join('.')} has: ${Object.keys(node).join(', ') || 'nothing'})`);
        }
        // `- ToCHWImage:` has null params; walking into it makes them a map so `-o ...ToCHWImage.x=1` works
        if (node[k] === null) node[k] = {};
        node = node[k];
      } else {
        throw new ConfigError(`config key ${parts.slice(0, i).join('.')} is a ${describe(node)}, not a map or list`);
      }
    }
  } catch (e) {
    if (e instanceof ConfigError && !e.message.startsWith('override')) throw new ConfigError(`override '${spec}': ${e.message}`);
    throw e;
  }
  return undefined;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'list';
  if (isMap(v)) return 'map';
  return `${typeof v} (${JSON.stringify(v)})`;
}

// ---------------------------------------------------------------------------------------------------------------
// Validation: raw tree -> TrainConfig. Every check names its dotted key path.

function closest(name: string, candidates: readonly string[]): string | undefined {
  const best = byDistance(name, candidates)[0];
  return best !== undefined && editDistance(name.toLowerCase(), best.toLowerCase()) <= Math.max(2, name.length / 3) ? best : undefined;
}

class Checker {
  constructor(private readonly source: string) {}

  fail(keyPath: string, msg: string): never {
    throw new ConfigError(`${this.source}: config key ${keyPath}: ${msg}`);
  }

  got(v: unknown): string {
    return v === undefined ? 'missing' : `got ${describe(v)}`;
  }

  map(v: unknown, keyPath: string): Record<string, unknown> {
    if (!isMap(v)) this.fail(keyPath, `must be a map, ${this.got(v)}`);
    return v;
  }

  int(v: unknown, keyPath: string, min: number, def?: number): number {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(keyPath, `must be an integer, ${this.got(v)}`);
    if (v < min) this.fail(keyPath, `must be >= ${min}, got ${v}`);
    return v;
  }

  num(v: unknown, keyPath: string, opts: { def?: number; min?: number; positive?: boolean } = {}): number {
    if (v === undefined && opts.def !== undefined) return opts.def;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(keyPath, `must be a number, ${this.got(v)}`);
    if (opts.positive && !(v > 0)) this.fail(keyPath, `must be > 0, got ${v}`);
    if (opts.min !== undefined && v < opts.min) this.fail(keyPath, `must be >= ${opts.min}, got ${v}`);
    return v;
  }

  bool(v: unknown, keyPath: string, def: boolean): boolean {
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(keyPath, `must be True or False, ${this.got(v)}`);
    return v;
  }

  str(v: unknown, keyPath: string, def?: string): string {
    if ((v === undefined || v === null) && def !== undefined) return def;
    if (typeof v !== 'string') this.fail(keyPath, `must be a string, ${this.got(v)}`);
    return v;
  }

  nonEmpty(v: unknown, keyPath: string): string {
    const s = this.str(v, keyPath);
    if (s === '') this.fail(keyPath, 'must not be empty');
    return s;
  }

  oneOf<T extends string>(v: unknown, keyPath: string, allowed: readonly T[], what: string, def?: T): T {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      const near = typeof v === 'string' ? closest(v, allowed) : undefined;
      this.fail(keyPath, `unknown ${what} ${typeof v === 'string' ? `'${v}'` : describe(v)}; expected one of ${allowed.join(', ')}` +
        (near ? ` (did you mean ${near}?)` : ''));
    }
    return v as T;
  }

  onlyKeys(m: Record<string, unknown>, keyPath: string, allowed: readonly string[]): void {
    for (const k of Object.keys(m)) {
      if (!allowed.includes(k)) {
        const near = closest(k, allowed);
        this.fail(`${keyPath}.${k}`, `unknown parameter; expected ${allowed.join(', ')}` + (near ? ` (did you mean ${near}?)` : ''));
      }
    }
  }
}

function checkLearningRate(c: Checker, raw: unknown, epochs: number): LearningRateConfig {
  const m = c.map(raw, 'LEARNING_RATE');
  const fn = c.oneOf(m.function, 'LEARNING_RATE.function', SCHEDULES, 'schedule');
  const p = c.map(m.params ?? {}, 'LEARNING_RATE.params');
  c.onlyKeys(p, 'LEARNING_RATE.params', LR_PARAMS[fn]);
  const lr = c.num(p.lr, 'LEARNING_RATE.params.lr', { positive: true });
  const warmup = (): number => {
    const w = c.num(p.warmup_epoch, 'LEARNING_RATE.params.warmup_epoch', { def: 5, min: 0 });
    // PaddleClas asserts epochs > warmup_epoch: the cosine after warmup would divide by zero
    if (fn === 'CosineWarmup' && !(epochs > w)) c.fail('LEARNING_RATE.params.warmup_epoch', `must be less than epochs (${epochs}), got ${w}`);
    return w;
  };
  switch (fn) {
    case 'Cosine':
      return { function: fn, params: { lr } };
    case 'CosineWarmup':
      return { function: fn, params: { lr, warmup_epoch: warmup() } };
    case 'Piecewise': {
      const de = p.decay_epochs;
      if (!Array.isArray(de) || de.length === 0) c.fail('LEARNING_RATE.params.decay_epochs', `must be a non-empty list of epochs, ${c.got(de)}`);
      const epochsList = de.map((e, i) => c.num(e, `LEARNING_RATE.params.decay_epochs.${i}`, { min: 0 }));
      epochsList.forEach((e, i) => {
        if (i > 0 && e <= epochsList[i - 1]) c.fail(`LEARNING_RATE.params.decay_epochs.${i}`, `must be increasing, got ${epochsList.join(', ')}`);
      });
      return { function: fn, params: { lr, decay_epochs: epochsList, gamma: c.num(p.gamma, 'LEARNING_RATE.params.gamma', { def: 0.1, positive: true }) } };
    }
    case 'ExponentialWarmup':
      return {
        function: fn,
        params: {
          lr,
          warmup_epoch: warmup(),
          decay_epochs: c.num(p.decay_epochs, 'LEARNING_RATE.params.decay_epochs', { def: 2.4, positive: true }),
          decay_rate: c.num(p.decay_rate, 'LEARNING_RATE.params.decay_rate', { def: 0.97, positive: true }),
        },
      };
  }
}

function checkOptimizer(c: Checker, raw: unknown): OptimizerConfig {
  const m = c.map(raw, 'OPTIMIZER');
  const fn = c.oneOf(m.function, 'OPTIMIZER.function', ['Momentum'] as const, 'optimizer');
  const p = c.map(m.params ?? {}, 'OPTIMIZER.params');
  c.onlyKeys(p, 'OPTIMIZER.params', ['momentum']);
  const out: OptimizerConfig = { function: fn, params: { momentum: c.num(p.momentum, 'OPTIMIZER.params.momentum', { min: 0 }) } };
  if (m.regularizer !== undefined && m.regularizer !== null) {
    const r = c.map(m.regularizer, 'OPTIMIZER.regularizer');
    const rf = c.oneOf(r.function, 'OPTIMIZER.regularizer.function', ['L2'] as const, 'regularizer');
    out.regularizer = { function: rf, factor: c.num(r.factor, 'OPTIMIZER.regularizer.factor', { min: 0 }) };
  }
  return out;
}

function checkOps<T>(c: Checker, raw: unknown, keyPath: string, allowedNames?: readonly string[]): T[] {
  if (!Array.isArray(raw) || raw.length === 0) c.fail(keyPath, `must be a non-empty list of {Name: params} entries, ${c.got(raw)}`);
  raw.forEach((entry, i) => {
    const p = `${keyPath}.${i}`;
    if (!isMap(entry) || Object.keys(entry).length !== 1) c.fail(p, `must be a map with exactly one op name, ${c.got(entry)}`);
    const [name] = Object.keys(entry);
    if (allowedNames) c.oneOf(name, p, allowedNames, 'operator');
    const params = entry[name];
    if (params !== null && !isMap(params)) c.fail(`${p}.${name}`, `parameters must be a map or empty, ${c.got(params)}`);
    if (name === 'NormalizeImage' && params && params.scale !== undefined) {
      try {
        evalScale(params.scale as string | number);
      } catch (e) {
        c.fail(`${p}.${name}.scale`, (e as Error).message);
      }
    }
  });
  return raw as T[];
}

function checkData(c: Checker, raw: unknown, section: 'TRAIN' | 'VALID', worldSize: number, warn: (m: string) => void, useMix: boolean): DataConfig {
  const m = c.map(raw, section);
  for (const k of Object.keys(m)) {
    if (!DATA_KEYS.includes(k)) {
      const near = closest(k, DATA_KEYS);
      warn(`config key ${section}.${k}: unknown key, ignored${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  const batch = c.int(m.batch_size, `${section}.batch_size`, 1);
  if (batch < worldSize) c.fail(`${section}.batch_size`, `the global batch ${batch} is smaller than the ${worldSize} workers (each takes batch_size // ${worldSize})`);
  if (batch % worldSize !== 0) {
    warn(`config key ${section}.batch_size: ${batch} is not divisible by ${worldSize} workers; each takes ${Math.floor(batch / worldSize)}, ` +
      `so the effective global batch is ${Math.floor(batch / worldSize) * worldSize}`);
  }
  const out: DataConfig = {
    batch_size: batch,
    num_workers: c.int(m.num_workers, `${section}.num_workers`, 0, 0),
    file_list: c.nonEmpty(m.file_list, `${section}.file_list`),
    data_dir: c.str(m.data_dir, `${section}.data_dir`, ''),
    delimiter: c.str(m.delimiter, `${section}.delimiter`, ' '),
    transforms: checkOps<TransformOp>(c, m.transforms, `${section}.transforms`),
    decode_cache_mb: c.num(m.decode_cache_mb, `${section}.decode_cache_mb`, { def: DEFAULT_DECODE_CACHE_MB, min: 0 }),
  };
  if (out.delimiter === '') c.fail(`${section}.delimiter`, 'must not be empty');
  if (m.shuffle_seed !== undefined && m.shuffle_seed !== null) out.shuffle_seed = c.int(m.shuffle_seed, `${section}.shuffle_seed`, 0);
  if (m.mix !== undefined && m.mix !== null) {
    out.mix = checkOps<MixOp>(c, m.mix, `${section}.mix`, MIX_OPERATORS);
    out.mix.forEach((op, i) => {
      const [name] = Object.keys(op);
      const params = op[name] ?? {};
      c.onlyKeys(params, `${section}.mix.${i}.${name}`, ['alpha']);
      if (params.alpha !== undefined) c.num(params.alpha, `${section}.mix.${i}.${name}.alpha`, { positive: true });
    });
  }
  if (section === 'TRAIN' && useMix && !out.mix) c.fail('TRAIN.mix', 'use_mix is True, so TRAIN.mix must list a MixupOperator or CutmixOperator');
  return out;
}

function validate(raw: Record<string, unknown>, source: string, opts: LoadOptions, added: Set<string>, warn: (m: string) => void): TrainConfig {
  const c: Checker = new Checker(source); // explicitly typed so c.fail(): never narrows
  const worldSize = opts.worldSize ?? 1;
  for (const k of Object.keys(raw)) {
    if (!TOP_LEVEL_KEYS.includes(k) && !added.has(k)) {
      const near = closest(k, TOP_LEVEL_KEYS);
      warn(`${source}: config key ${k}: unknown key, ignored${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  const mode = opts.mode ?? c.oneOf(raw.mode, 'mode', ['train', 'valid'] as const, 'mode', 'train');

  const arch = c.map(raw.ARCHITECTURE, 'ARCHITECTURE');
  const name = c.nonEmpty(arch.name, 'ARCHITECTURE.name');
  try {
    resolveVariant(name);
  } catch (e) {
    c.fail('ARCHITECTURE.name', (e as Error).message);
  }
  const archParams = arch.params === undefined || arch.params === null ? {} : c.map(arch.params, 'ARCHITECTURE.params');

  const classes = c.int(raw.classes_num, 'classes_num', 2);
  const epochs = c.int(raw.epochs, 'epochs', 1, 1);
  const useMix = c.bool(raw.use_mix, 'use_mix', false);
  const imageShape: unknown = raw.image_shape ?? [3, 224, 224];
  if (!Array.isArray(imageShape) || imageShape.length !== 3) c.fail('image_shape', `must be [3, height, width], ${c.got(imageShape)}`);
  imageShape.forEach((v, i) => c.int(v, `image_shape.${i}`, 1));
  if (imageShape[0] !== 3) c.fail('image_shape.0', `must be 3 (RGB channels), got ${imageShape[0]}`);
  const modelSaveDir = c.str(raw.model_save_dir, 'model_save_dir', './output/');
  const validateFlag = c.bool(raw.validate, 'validate', true);

  const cfg: TrainConfig = {
    mode,
    ARCHITECTURE: { name, params: archParams },
    pretrained_model: c.str(raw.pretrained_model, 'pretrained_model', ''),
    model_save_dir: modelSaveDir,
    classes_num: classes,
    total_images: 0,
    save_interval: c.int(raw.save_interval, 'save_interval', 1, 1),
    validate: validateFlag,
    valid_interval: c.int(raw.valid_interval, 'valid_interval', 1, 1),
    epochs,
    topk: c.int(raw.topk, 'topk', 1, 5),
    image_shape: imageShape as [number, number, number],
    use_mix: useMix,
    ls_epsilon: c.num(raw.ls_epsilon, 'ls_epsilon', { def: -1 }),
    checkpoints: c.str(raw.checkpoints, 'checkpoints', ''),
    last_epoch: c.int(raw.last_epoch, 'last_epoch', -1, -1),
    print_interval: c.int(raw.print_interval, 'print_interval', 1, 10),
    use_gpu: c.bool(raw.use_gpu, 'use_gpu', true),
    backend: c.oneOf(raw.backend, 'backend', BACKENDS, 'backend', 'auto'),
    seed: c.int(raw.seed, 'seed', 0, 0),
    strict_data: c.bool(raw.strict_data, 'strict_data', false),
    allreduce_dtype: c.oneOf(raw.allreduce_dtype, 'allreduce_dtype', ['float32', 'float16'] as const, 'dtype', 'float32'),
    collective_timeout_s: c.num(raw.collective_timeout_s, 'collective_timeout_s', { def: 300, positive: true }),
    metrics_file: c.str(raw.metrics_file, 'metrics_file', path.join(modelSaveDir, name, 'metrics.jsonl')),
    loss_temperature: c.num(raw.loss_temperature, 'loss_temperature', { def: 1, positive: true }),
    bn_virtual_batch_size: c.int(raw.bn_virtual_batch_size, 'bn_virtual_batch_size', 0, 0),
  };
  if (cfg.topk > classes) c.fail('topk', `must be at most classes_num (${classes}), got ${cfg.topk}`);
  if (cfg.last_epoch >= epochs) c.fail('last_epoch', `resuming after epoch ${cfg.last_epoch} leaves nothing to train (epochs: ${epochs})`);

  if (mode === 'train') {
    if (raw.LEARNING_RATE === undefined) c.fail('LEARNING_RATE', 'is required in train mode');
    if (raw.OPTIMIZER === undefined) c.fail('OPTIMIZER', 'is required in train mode');
    if (raw.TRAIN === undefined) c.fail('TRAIN', 'is required in train mode');
    cfg.total_images = c.int(raw.total_images, 'total_images', 1);
    cfg.LEARNING_RATE = checkLearningRate(c, raw.LEARNING_RATE, epochs);
    cfg.OPTIMIZER = checkOptimizer(c, raw.OPTIMIZER);
    cfg.TRAIN = checkData(c, raw.TRAIN, 'TRAIN', worldSize, warn, useMix);
    if (cfg.total_images < cfg.TRAIN.batch_size) {
      c.fail('total_images', `${cfg.total_images} is less than TRAIN.batch_size (${cfg.TRAIN.batch_size}): an epoch would have no iterations`);
    }
    const perWorker = Math.floor(cfg.TRAIN.batch_size / worldSize);
    // a group of one image leaves BN one value per channel at the 1x1 last stage (PyTorch refuses that batch)
    if (cfg.bn_virtual_batch_size === 1) {
      c.fail('bn_virtual_batch_size', 'must be 0 (off) or at least 2: batch norm over a single image normalises every 1x1 feature map to its bias');
    }
    if (cfg.bn_virtual_batch_size > 0 && perWorker % cfg.bn_virtual_batch_size !== 0) {
      c.fail('bn_virtual_batch_size', `${cfg.bn_virtual_batch_size} does not divide the per-worker batch ` +
        `(TRAIN.batch_size ${cfg.TRAIN.batch_size} // ${worldSize} worker(s) = ${perWorker})`);
    }
    if (worldSize > 1 && cfg.TRAIN.shuffle_seed === undefined) {
      c.fail('TRAIN.shuffle_seed', `is required when training with ${worldSize} workers, so that every worker shuffles the file list identically`);
    }
  } else if (raw.total_images !== undefined) {
    cfg.total_images = c.int(raw.total_images, 'total_images', 1);
  }
  if ((mode === 'valid' || validateFlag) && raw.VALID === undefined) {
    c.fail('VALID', mode === 'valid' ? 'is required in valid mode' : 'is required when validate is True');
  }
  if (raw.VALID !== undefined) cfg.VALID = checkData(c, raw.VALID, 'VALID', worldSize, warn, false);
  return cfg;
}

// ---------------------------------------------------------------------------------------------------------------

/** configs/quickstart.yaml of this package, found from both the source tree and dist/. */
export function quickstartConfigPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['..', '../..']) {
    const p = path.resolve(here, up, 'configs', 'quickstart.yaml');
    if (fs.existsSync(p)) return p;
  }
  throw new ConfigError(`the built-in quickstart config configs/quickstart.yaml is missing from the package (looked next to ${here})`);
}

/**
 * Load a PaddleClas YAML config (undefined: the built-in quickstart), apply `-o KEY=VALUE` overrides, validate.
 * Throws ConfigError naming the source and the key path.
 */
export function loadConfig(file: string | undefined, overrides: string[], opts: LoadOptions = {}): TrainConfig {
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const source = file ?? quickstartConfigPath();
  let text: string;
  try {
    text = fs.readFileSync(source, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = load(text, { schema: YAML11_SCHEMA, filename: source });
  } catch (e) {
    throw new ConfigError(`config ${source} is not valid YAML: ${(e as Error).message}`);
  }
  if (!isMap(doc)) throw new ConfigError(`config ${source} must be a YAML map of keys, got ${describe(doc)}`);
  const tree = typeLiterals(doc) as Record<string, unknown>;
  const added = new Set<string>();
  for (const o of overrides) {
    try {
      const created = applyOverride(tree, o, warn);
      if (created) added.add(created);
    } catch (e) {
      throw e instanceof ConfigError ? new ConfigError(`${source}: ${e.message}`) : e;
    }
  }
  return validate(tree, source, opts, added, warn);
}

/** Whether a data section points at the project's bundled Fashion-MNIST subset (the loop materializes it). */
export const BUILTIN_PREFIX = 'builtin:';
export function isBuiltinDataset(data: Pick<DataConfig, 'data_dir' | 'file_list'> | undefined): boolean {
  return !!data && (data.data_dir.startsWith(BUILTIN_PREFIX) || data.file_list.startsWith(BUILTIN_PREFIX));
}

/** The effective config as YAML, printed once at the start of a run. */
export function formatConfig(cfg: TrainConfig): string {
  return dump(cfg, { schema: YAML11_SCHEMA, noRefs: true, lineWidth: 120 });
}

/** Write the effective config to `<dir>/config.yaml` (loadable again with loadConfig); returns the path. */
export function saveConfig(cfg: TrainConfig, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, formatConfig(cfg));
  return file;
}
