/**
 * The training run's figures: one meter keeps the running means of an epoch and writes, from the same numbers,
 * PaddleClas's log lines (shared/log_format.ts) and rank 0's metrics.jsonl (shared/metrics.ts). Users tail and
 * parse both, so what each line and record holds, and in which order, is kept as it is.
 */
import { endLine, trainLine, validLine, type EndFields, type StepFields } from '../../shared/log_format.js';
import type { MetricsWriter } from '../../shared/metrics.js';
import { validEndFields, type EvalResult } from './evaluate.js';
import { RunningMean, since } from './metrics.js';
import type { StepResult } from './step.js';

export interface MeterSettings {
  /** the second accuracy is top-k */
  topk: number;
  /** a train line every this many steps */
  printInterval: number;
  /** false with mixup/cutmix: a batch with two targets has no accuracy, and PaddleClas logs none */
  showAccuracy: boolean;
  /** images per worker per step (the END line's ips counts whole batches) */
  perWorkerBatch: number;
  /** workers in the job: a validation pass's ips is per worker, as on the step lines */
  worldSize: number;
}

/** PaddleClas leaves the first steps of an epoch out of batch_cost and reader_cost: they are warm-up. */
const WARMUP_STEPS = 10;

/** The running means of one epoch. */
class EpochMeans {
  readonly batchCost = new RunningMean();
  readonly readerCost = new RunningMean();
  readonly top1 = new RunningMean();
  readonly top5 = new RunningMean();
  readonly loss = new RunningMean();
  /** the time split per step (StepSplit), over every step */
  readonly split = {
    data: new RunningMean(),
    compute: new RunningMean(),
    allreduce: new RunningMean(),
    optimizer: new RunningMean(),
  };
  readonly start = performance.now();
}

export class TrainMeter {
  private epoch = 0;
  /** steps so far in this epoch */
  private steps = 0;
  private means = new EpochMeans();
  private batchStart = performance.now();

  /** `log`: one line to the worker's log; `metrics`: rank 0's metrics.jsonl, absent on the other ranks */
  constructor(
    private readonly log: (line: string) => void,
    private readonly metrics: MetricsWriter | undefined,
    private readonly settings: MeterSettings,
  ) {}

  startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.steps = 0;
    this.means = new EpochMeans();
    this.batchStart = performance.now();
  }

  /** The next batch's time (batch_cost: waiting for it, the step, until the next recordStep) starts now. */
  startBatch(): void {
    this.batchStart = performance.now();
  }

  /** A step's figures: the running means, a train line every printInterval steps, a metrics record. */
  recordStep(result: StepResult, at: { lr: number; iteration: number }): void {
    const batchS = since(this.batchStart);
    const means = this.means;
    const step = this.steps;
    if (step === WARMUP_STEPS) {
      means.batchCost.reset();
      means.readerCost.reset();
    }
    means.batchCost.add(batchS);
    means.readerCost.add(result.split.data);
    means.split.data.add(result.split.data);
    means.split.compute.add(result.split.compute);
    means.split.allreduce.add(result.split.allreduce);
    means.split.optimizer.add(result.split.optimizer);
    const { n, correct, loss } = result;
    const figures: StepFields = {
      epoch: this.epoch,
      step,
      top1: this.settings.showAccuracy ? correct.top1 / n : undefined,
      top5: this.settings.showAccuracy ? correct.topk / n : undefined,
      loss,
      lr: at.lr,
      topk: this.settings.topk,
      batchCost: means.batchCost.mean,
      readerCost: means.readerCost.mean,
      ips: n / Math.max(means.batchCost.mean, 1e-9),
    };
    means.top1.add(correct.top1 / n);
    means.top5.add(correct.topk / n);
    means.loss.add(loss);
    if (step % this.settings.printInterval === 0) this.log(trainLine(figures));
    this.metrics?.write({
      mode: 'train',
      epoch: this.epoch,
      step,
      iteration: at.iteration,
      loss,
      top1: figures.top1,
      top5: figures.top5,
      lr: at.lr,
      batch_cost: figures.batchCost,
      reader_cost: figures.readerCost,
      ips: figures.ips,
      data_s: result.split.data,
      compute_s: result.split.compute,
      allreduce_s: result.split.allreduce,
      optimizer_s: result.split.optimizer,
    });
    this.steps++;
  }

  /** The epoch's END line and record, and where its steps' time went. */
  endEpoch(): void {
    const means = this.means;
    const epochS = since(means.start);
    const fields: EndFields = {
      epoch: this.epoch,
      mode: 'train',
      topk: this.settings.topk,
      top1: this.settings.showAccuracy ? means.top1.mean : undefined,
      top5: this.settings.showAccuracy ? means.top5.mean : undefined,
      loss: means.loss.mean,
      batchCost: means.batchCost.mean,
      readerCost: means.readerCost.mean,
      batchCostSum: epochS,
      ips: (this.steps * this.settings.perWorkerBatch) / epochS,
    };
    this.log(endLine(fields));
    this.metrics?.write({
      mode: 'train',
      end: true,
      epoch: this.epoch,
      step: this.steps,
      loss: fields.loss,
      top1: fields.top1,
      top5: fields.top5,
      lr: 0,
      batch_cost: fields.batchCost,
      reader_cost: fields.readerCost,
      ips: fields.ips,
    });
    const { data, compute, allreduce, optimizer } = means.split;
    this.log(
      `epoch ${this.epoch} time split per step: data wait ${data.mean.toFixed(4)} s, forward+backward ${compute.mean.toFixed(4)} s, ` +
        `all-reduce ${allreduce.mean.toFixed(4)} s, optimizer ${optimizer.mean.toFixed(4)} s (epoch ${epochS.toFixed(1)} s)`,
    );
  }

  /** evaluate()'s onStep: a valid line of the epoch's validation pass. */
  validStep(
    epoch: number,
    step: number,
    figures: { top1: number; top5: number; loss: number; batchCost: number; readerCost: number; ips: number },
  ): void {
    this.log(validLine({ epoch, step, ...figures, topk: this.settings.topk }));
  }

  /** A validation pass's END line and record; `iteration`: the global iteration it was run after. */
  endValidation(epoch: number, result: EvalResult, iteration: number): void {
    const fields = validEndFields(epoch, result, this.settings.topk, this.settings.worldSize);
    this.log(endLine(fields));
    this.metrics?.write({
      mode: 'valid',
      end: true,
      epoch,
      step: iteration,
      top1: fields.top1,
      top5: fields.top5,
      loss: fields.loss,
      lr: 0,
      batch_cost: fields.batchCost,
      reader_cost: fields.readerCost,
      ips: fields.ips,
    });
  }

  close(): void {
    this.metrics?.close();
  }
}
