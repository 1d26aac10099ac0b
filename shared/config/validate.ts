/** Validation: raw tree -> TrainConfig. Every check names its dotted key path and the config's source. */
import * as path from 'node:path';
import { nearSpelling } from '../closest.js';
import { modelNameProblem } from '../model_names.js';
import { ConfigError } from '../errors.js';
import { evalScale, isMap } from './literal.js';
import { describe } from './overrides.js';
import {
  BACKENDS,
  DATA_KEYS,
  DEFAULT_DECODE_CACHE_MB,
  DEFAULT_MAX_IMAGE_PIXELS,
  LR_PARAMS,
  MIX_OPERATORS,
  SCHEDULES,
  TOP_LEVEL_KEYS,
  type DataConfig,
  type LearningRateConfig,
  type LoadOptions,
  type MixOp,
  type OptimizerConfig,
  type TrainConfig,
  type TransformOp,
} from './schema.js';

class Checker {
  constructor(private readonly source: string) {}

  fail(keyPath: string, msg: string): never {
    throw new ConfigError(`${this.source}: config key ${keyPath}: ${msg}`, this.source, keyPath);
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
      const near = typeof v === 'string' ? nearSpelling(v, allowed) : undefined;
      this.fail(
        keyPath,
        `unknown ${what} ${typeof v === 'string' ? `'${v}'` : describe(v)}; expected one of ${allowed.join(', ')}` +
          (near ? ` (did you mean ${near}?)` : ''),
      );
    }
    return v as T;
  }

  onlyKeys(m: Record<string, unknown>, keyPath: string, allowed: readonly string[]): void {
    for (const k of Object.keys(m)) {
      if (!allowed.includes(k)) {
        const near = nearSpelling(k, allowed);
        this.fail(
          `${keyPath}.${k}`,
          `unknown parameter; expected ${allowed.join(', ')}` + (near ? ` (did you mean ${near}?)` : ''),
        );
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
    if (fn === 'CosineWarmup' && !(epochs > w))
      c.fail('LEARNING_RATE.params.warmup_epoch', `must be less than epochs (${epochs}), got ${w}`);
    return w;
  };
  switch (fn) {
    case 'Cosine':
      return { function: fn, params: { lr } };
    case 'CosineWarmup':
      return { function: fn, params: { lr, warmup_epoch: warmup() } };
    case 'Piecewise': {
      const de = p.decay_epochs;
      if (!Array.isArray(de) || de.length === 0)
        c.fail('LEARNING_RATE.params.decay_epochs', `must be a non-empty list of epochs, ${c.got(de)}`);
      const epochsList = de.map((e, i) => c.num(e, `LEARNING_RATE.params.decay_epochs.${i}`, { min: 0 }));
      epochsList.forEach((e, i) => {
        if (i > 0 && e <= epochsList[i - 1])
          c.fail(`LEARNING_RATE.params.decay_epochs.${i}`, `must be increasing, got ${epochsList.join(', ')}`);
      });
      return {
        function: fn,
        params: {
          lr,
          decay_epochs: epochsList,
          gamma: c.num(p.gamma, 'LEARNING_RATE.params.gamma', { def: 0.1, positive: true }),
        },
      };
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
  const out: OptimizerConfig = {
    function: fn,
    params: { momentum: c.num(p.momentum, 'OPTIMIZER.params.momentum', { min: 0 }) },
  };
  if (m.regularizer !== undefined && m.regularizer !== null) {
    const r = c.map(m.regularizer, 'OPTIMIZER.regularizer');
    const rf = c.oneOf(r.function, 'OPTIMIZER.regularizer.function', ['L2'] as const, 'regularizer');
    out.regularizer = { function: rf, factor: c.num(r.factor, 'OPTIMIZER.regularizer.factor', { min: 0 }) };
  }
  return out;
}

function checkOps<T>(c: Checker, raw: unknown, keyPath: string, allowedNames?: readonly string[]): T[] {
  if (!Array.isArray(raw) || raw.length === 0)
    c.fail(keyPath, `must be a non-empty list of {Name: params} entries, ${c.got(raw)}`);
  raw.forEach((entry, i) => {
    const p = `${keyPath}.${i}`;
    if (!isMap(entry) || Object.keys(entry).length !== 1)
      c.fail(p, `must be a map with exactly one op name, ${c.got(entry)}`);
    const [name] = Object.keys(entry);
    if (allowedNames) c.oneOf(name, p, allowedNames, 'operator');
    const params = entry[name];
    if (params !== null && !isMap(params))
      c.fail(`${p}.${name}`, `parameters must be a map or empty, ${c.got(params)}`);
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

function checkData(
  c: Checker,
  raw: unknown,
  section: 'TRAIN' | 'VALID',
  worldSize: number,
  warn: (m: string) => void,
  useMix: boolean,
): DataConfig {
  const m = c.map(raw, section);
  for (const k of Object.keys(m)) {
    if (!DATA_KEYS.includes(k)) {
      const near = nearSpelling(k, DATA_KEYS);
      warn(`config key ${section}.${k}: unknown key, ignored${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  const batch = c.int(m.batch_size, `${section}.batch_size`, 1);
  if (batch < worldSize)
    c.fail(
      `${section}.batch_size`,
      `the global batch ${batch} is smaller than the ${worldSize} workers (each takes batch_size // ${worldSize})`,
    );
  if (batch % worldSize !== 0) {
    warn(
      `config key ${section}.batch_size: ${batch} is not divisible by ${worldSize} workers; each takes ${Math.floor(batch / worldSize)}, ` +
        `so the effective global batch is ${Math.floor(batch / worldSize) * worldSize}`,
    );
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
  if (m.shuffle_seed !== undefined && m.shuffle_seed !== null)
    out.shuffle_seed = c.int(m.shuffle_seed, `${section}.shuffle_seed`, 0);
  if (m.mix !== undefined && m.mix !== null) {
    out.mix = checkOps<MixOp>(c, m.mix, `${section}.mix`, MIX_OPERATORS);
    out.mix.forEach((op, i) => {
      const [name] = Object.keys(op);
      const params = op[name] ?? {};
      c.onlyKeys(params, `${section}.mix.${i}.${name}`, ['alpha']);
      if (params.alpha !== undefined) c.num(params.alpha, `${section}.mix.${i}.${name}.alpha`, { positive: true });
    });
  }
  if (section === 'TRAIN' && useMix && !out.mix)
    c.fail('TRAIN.mix', 'use_mix is True, so TRAIN.mix must list a MixupOperator or CutmixOperator');
  return out;
}

export function validate(
  raw: Record<string, unknown>,
  source: string,
  opts: LoadOptions,
  added: Set<string>,
  warn: (m: string) => void,
): TrainConfig {
  const c: Checker = new Checker(source); // explicitly typed so c.fail(): never narrows
  const worldSize = opts.worldSize ?? 1;
  for (const k of Object.keys(raw)) {
    if (!TOP_LEVEL_KEYS.includes(k) && !added.has(k)) {
      const near = nearSpelling(k, TOP_LEVEL_KEYS);
      warn(`${source}: config key ${k}: unknown key, ignored${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  const mode = opts.mode ?? c.oneOf(raw.mode, 'mode', ['train', 'valid'] as const, 'mode', 'train');

  const arch = c.map(raw.ARCHITECTURE, 'ARCHITECTURE');
  const name = c.nonEmpty(arch.name, 'ARCHITECTURE.name');
  const unknownModel = modelNameProblem(name);
  if (unknownModel) c.fail('ARCHITECTURE.name', unknownModel);
  const archParams = arch.params === undefined || arch.params === null ? {} : c.map(arch.params, 'ARCHITECTURE.params');

  const classes = c.int(raw.classes_num, 'classes_num', 2);
  const epochs = c.int(raw.epochs, 'epochs', 1, 1);
  const useMix = c.bool(raw.use_mix, 'use_mix', false);
  const imageShape: unknown = raw.image_shape ?? [3, 224, 224];
  if (!Array.isArray(imageShape) || imageShape.length !== 3)
    c.fail('image_shape', `must be [3, height, width], ${c.got(imageShape)}`);
  imageShape.forEach((v, i) => {
    c.int(v, `image_shape.${i}`, 1);
  });
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
    allreduce_dtype: c.oneOf(
      raw.allreduce_dtype,
      'allreduce_dtype',
      ['float32', 'float16'] as const,
      'dtype',
      'float32',
    ),
    sharded_optimizer: c.bool(raw.sharded_optimizer, 'sharded_optimizer', false),
    manual_gc: c.bool(raw.manual_gc, 'manual_gc', true),
    collective_timeout_s: c.num(raw.collective_timeout_s, 'collective_timeout_s', { def: 300, positive: true }),
    metrics_file: c.str(raw.metrics_file, 'metrics_file', path.join(modelSaveDir, name, 'metrics.jsonl')),
    loss_temperature: c.num(raw.loss_temperature, 'loss_temperature', { def: 1, positive: true }),
    bn_virtual_batch_size: c.int(raw.bn_virtual_batch_size, 'bn_virtual_batch_size', 0, 0),
    max_image_pixels: c.int(raw.max_image_pixels, 'max_image_pixels', 1, DEFAULT_MAX_IMAGE_PIXELS),
  };
  if (cfg.topk > classes) c.fail('topk', `must be at most classes_num (${classes}), got ${cfg.topk}`);
  if (cfg.last_epoch >= epochs)
    c.fail('last_epoch', `resuming after epoch ${cfg.last_epoch} leaves nothing to train (epochs: ${epochs})`);

  if (mode === 'train') {
    if (raw.LEARNING_RATE === undefined) c.fail('LEARNING_RATE', 'is required in train mode');
    if (raw.OPTIMIZER === undefined) c.fail('OPTIMIZER', 'is required in train mode');
    if (raw.TRAIN === undefined) c.fail('TRAIN', 'is required in train mode');
    cfg.total_images = c.int(raw.total_images, 'total_images', 1);
    cfg.LEARNING_RATE = checkLearningRate(c, raw.LEARNING_RATE, epochs);
    cfg.OPTIMIZER = checkOptimizer(c, raw.OPTIMIZER);
    cfg.TRAIN = checkData(c, raw.TRAIN, 'TRAIN', worldSize, warn, useMix);
    if (cfg.total_images < cfg.TRAIN.batch_size) {
      c.fail(
        'total_images',
        `${cfg.total_images} is less than TRAIN.batch_size (${cfg.TRAIN.batch_size}): an epoch would have no iterations`,
      );
    }
    const perWorker = Math.floor(cfg.TRAIN.batch_size / worldSize);
    // a group of one image leaves BN one value per channel at the 1x1 last stage (PyTorch refuses that batch)
    if (cfg.bn_virtual_batch_size === 1) {
      c.fail(
        'bn_virtual_batch_size',
        'must be 0 (off) or at least 2: batch norm over a single image normalises every 1x1 feature map to its bias',
      );
    }
    if (cfg.bn_virtual_batch_size > 0 && perWorker % cfg.bn_virtual_batch_size !== 0) {
      c.fail(
        'bn_virtual_batch_size',
        `${cfg.bn_virtual_batch_size} does not divide the per-worker batch ` +
          `(TRAIN.batch_size ${cfg.TRAIN.batch_size} // ${worldSize} worker(s) = ${perWorker})`,
      );
    }
    if (worldSize > 1 && cfg.TRAIN.shuffle_seed === undefined) {
      c.fail(
        'TRAIN.shuffle_seed',
        `is required when training with ${worldSize} workers, so that every worker shuffles the file list identically`,
      );
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
