/**
 * PaddleClas learning-rate schedules, stepped every iteration, as closed forms of t = iterations completed
 * before this one (0 for the first step of a run). Closed forms (rather than paddle's stateful schedulers) make
 * resume trivial: the schedule position is just the global iteration.
 * Formulas: ../shared/reference/paddleclas.md, "Learning rate". S = steps per epoch, E = epochs.
 */
import { ConfigError } from '../../shared/errors.js';
import type { LearningRateConfig, TrainConfig } from '../../shared/config.js';

export interface ScheduleShape {
  /** S = total_images // TRAIN.batch_size (global batch) */
  stepsPerEpoch: number;
  /** E = epochs */
  epochs: number;
}

export type Schedule = (iteration: number) => number;

/** S as PaddleClas computes it: total_images // global batch size. */
export function stepsPerEpochOf(cfg: Pick<TrainConfig, 'total_images' | 'TRAIN'>): number {
  if (!cfg.TRAIN) throw new ConfigError('stepsPerEpochOf: the config has no TRAIN section');
  return Math.floor(cfg.total_images / cfg.TRAIN.batch_size);
}

function cosine(lr: number, t: number, period: number): number {
  return lr * 0.5 * (1 + Math.cos((Math.PI * t) / period));
}

export function makeSchedule(lrCfg: LearningRateConfig, shape: ScheduleShape): Schedule {
  const S = shape.stepsPerEpoch;
  const E = shape.epochs;
  if (!(Number.isInteger(S) && S >= 1))
    throw new ConfigError(`LEARNING_RATE: steps per epoch must be a positive integer, got ${S}`);
  if (!(Number.isInteger(E) && E >= 1))
    throw new ConfigError(`LEARNING_RATE: epochs must be a positive integer, got ${E}`);
  const check = (t: number): void => {
    if (!(Number.isInteger(t) && t >= 0))
      throw new RangeError(`learning-rate schedule: iteration must be an integer >= 0, got ${t}`);
  };
  switch (lrCfg.function) {
    case 'Cosine': {
      const { lr } = lrCfg.params;
      return (t) => {
        check(t);
        return cosine(lr, t, S * E);
      };
    }
    case 'Piecewise': {
      const { lr, decay_epochs, gamma } = lrCfg.params;
      const boundaries = decay_epochs.map((e) => S * e);
      return (t) => {
        check(t);
        const reached = boundaries.filter((b) => t >= b).length;
        return lr * gamma ** reached;
      };
    }
    case 'CosineWarmup': {
      const { lr, warmup_epoch } = lrCfg.params;
      if (!(E > warmup_epoch))
        throw new ConfigError(`LEARNING_RATE.params.warmup_epoch (${warmup_epoch}) must be less than epochs (${E})`);
      const W = warmup_epoch * S;
      return (t) => {
        check(t);
        return t < W ? (lr * t) / W : cosine(lr, t - W, S * (E - warmup_epoch));
      };
    }
    case 'ExponentialWarmup': {
      const { lr, warmup_epoch, decay_epochs, decay_rate } = lrCfg.params;
      const W = warmup_epoch * S;
      const interval = Math.floor(decay_epochs * S); // int(decay_epochs * S) in PaddleClas
      if (interval < 1)
        throw new ConfigError(
          `LEARNING_RATE.params.decay_epochs (${decay_epochs}) * ${S} steps per epoch is less than one iteration`,
        );
      return (t) => {
        check(t);
        return t < W ? (lr * t) / W : lr * decay_rate ** Math.floor((t - W) / interval);
      };
    }
  }
}
