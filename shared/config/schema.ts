/** The config's shape: the typed TrainConfig the loop reads, its key names and PaddleClas's defaults. */
import { ConfigError } from '../errors.js';

export { ConfigError };

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
  | {
      function: 'ExponentialWarmup';
      params: { lr: number; warmup_epoch: number; decay_epochs: number; decay_rate: number };
    };

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
  /**
   * ZeRO stage 1: the gradients are reduce-scattered, each worker updates only the segment of the parameters it
   * holds reduced (and keeps only that segment's velocities current), and the weights are all-gathered; results
   * are bit-identical to the unsharded update, checkpoints hold all velocities.
   */
  sharded_optimizer: boolean;
  /**
   * One young-generation collection per step, while the gradients' all-reduce is in flight (Megatron-LM's
   * --manual-gc): every rank pauses for it at the same moment instead of in the middle of its own forward and
   * backward pass, where a pause on one rank stalls all of them at the next all-reduce.
   */
  manual_gc: boolean;
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
  /** images with more pixels are bad samples, refused before decoding (sharp's limitInputPixels; PIL's MAX_IMAGE_PIXELS) */
  max_image_pixels: number;
}

/**
 * A config loaded for training (loadConfig with `mode: 'train'`): validate() requires these sections in train
 * mode, so the training loop reads them without checking again.
 */
export type TrainingConfig = TrainConfig & {
  mode: 'train';
  LEARNING_RATE: LearningRateConfig;
  OPTIMIZER: OptimizerConfig;
  TRAIN: DataConfig;
};

/** default max_image_pixels: 50 megapixels, 150 MB as RGB; ImageNet's largest photos are well below */
export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;

export interface LoadOptions {
  warn?: (msg: string) => void;
  /** workers in the run; > 1 requires TRAIN.shuffle_seed in train mode */
  worldSize?: number;
  /** forces the mode whatever the file says: train loads in 'train' mode, eval in 'valid' mode */
  mode?: Mode;
}

export const TOP_LEVEL_KEYS = [
  'mode',
  'ARCHITECTURE',
  'pretrained_model',
  'model_save_dir',
  'classes_num',
  'total_images',
  'save_interval',
  'validate',
  'valid_interval',
  'epochs',
  'topk',
  'image_shape',
  'use_mix',
  'ls_epsilon',
  'checkpoints',
  'last_epoch',
  'print_interval',
  'use_gpu',
  'LEARNING_RATE',
  'OPTIMIZER',
  'TRAIN',
  'VALID',
  'backend',
  'seed',
  'strict_data',
  'allreduce_dtype',
  'sharded_optimizer',
  'manual_gc',
  'collective_timeout_s',
  'metrics_file',
  'loss_temperature',
  'bn_virtual_batch_size',
  'max_image_pixels',
];
export const DATA_KEYS = [
  'batch_size',
  'num_workers',
  'file_list',
  'data_dir',
  'shuffle_seed',
  'delimiter',
  'transforms',
  'mix',
  'decode_cache_mb',
];
/** default decode_cache_mb: Fashion-MNIST or CIFAR at 32x32 fit (184 / 154 MB); large images simply are not kept */
export const DEFAULT_DECODE_CACHE_MB = 256;
export const LR_PARAMS: Record<ScheduleName, string[]> = {
  Cosine: ['lr'],
  CosineWarmup: ['lr', 'warmup_epoch'],
  Piecewise: ['lr', 'decay_epochs', 'gamma'],
  ExponentialWarmup: ['lr', 'warmup_epoch', 'decay_epochs', 'decay_rate'],
};

/** Dotted paths the project knows; `-o` adding one of these is not worth a warning (e.g. `-o last_epoch=3`). */
export function isKnownPath(parts: string[]): boolean {
  if (parts.length === 1) return TOP_LEVEL_KEYS.includes(parts[0]);
  if (parts.length === 2 && (parts[0] === 'TRAIN' || parts[0] === 'VALID')) return DATA_KEYS.includes(parts[1]);
  if (parts.length === 2 && parts[0] === 'ARCHITECTURE') return parts[1] === 'name' || parts[1] === 'params';
  if (parts.length === 3 && parts[0] === 'LEARNING_RATE' && parts[1] === 'params') {
    return Object.values(LR_PARAMS).some((p) => p.includes(parts[2]));
  }
  return false;
}

/** Whether a data section points at the project's bundled Fashion-MNIST subset (the loop materializes it). */
export const BUILTIN_PREFIX = 'builtin:';
export function isBuiltinDataset(data: Pick<DataConfig, 'data_dir' | 'file_list'> | undefined): boolean {
  return !!data && (data.data_dir.startsWith(BUILTIN_PREFIX) || data.file_list.startsWith(BUILTIN_PREFIX));
}
