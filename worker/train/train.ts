/**
 * `launch train`: the whole training job of one worker, top to bottom.
 *
 * Every worker runs this file; the launcher's environment (shared/env.ts) says which rank it is. Workers differ
 * only in their data shard, their dropout/augmentation seeds and their BN statistics; gradients are averaged with
 * one fused all-reduce per step, so the weights stay identical on every rank. Rank 0 writes checkpoints.
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readWorkerEnv } from '../../shared/env.js';
import { loadConfig, formatConfig, saveConfig, type TrainConfig } from '../../shared/config.js';
import { createWorkerLogger, trainLine, validLine, endLine, bestLine } from '../../shared/log_format.js';
import { MetricsWriter } from '../../shared/metrics.js';
import { Mulberry32, mixSeed } from '../../shared/rng.js';
import { mixOperatorFromConfig } from '../data/mix.js';
import { selectBackend } from '../backend/select.js';
import { createProcessGroup } from '../collectives/index.js';
import { HarDNet } from '../model/hardnet.js';
import { loadPretrained } from '../checkpoint/pretrained.js';
import { createMomentum } from '../optim/momentum.js';
import { FlatParameters } from '../model/flat_params.js';
import { makeSchedule, stepsPerEpochOf } from '../optim/lr.js';
import { loadCheckpoint, saveCheckpoint, latestCheckpoint, type TrainState } from '../checkpoint/checkpoint.js';
import { computeGradients } from './step.js';
import { evaluate, validEndLine } from './evaluate.js';
import { RunningMean, since, topkCorrect } from './metrics.js';
import { buildLoader } from './data.js';

/**
 * The control bit of the gradients' all-reduce that says "stop": a worker asked to stop sets it, and the call
 * returns it to every worker, so all stop after the same step instead of one leaving the others waiting in the
 * next collective.
 */
const STOP_REQUESTED = 1;

export interface TrainOptions {
  config?: string;
  override: string[];
  resume?: string;
}

export async function train(o: TrainOptions): Promise<number> {
  // ---- who am I, what to run -------------------------------------------------------------------------------
  const env = readWorkerEnv();
  // every worker logs its own step lines to its workerlog.N (the launcher streams rank 0's to the terminal)
  const log = createWorkerLogger({ rank: env.rank, level: 'info' });
  const cfg: TrainConfig = loadConfig(o.config, o.override, { warn: (m) => log.warn(m), worldSize: env.worldSize });
  if (env.rank === 0) log.info(`effective config:\n${formatConfig(cfg)}`);
  const seed = mixSeed(cfg.seed, env.rank);
  // use_gpu: False runs on the CPU on purpose even with a GPU assigned (PaddleClas's switch)
  await selectBackend(cfg.backend, {
    gpuAssigned: env.selectedGpus !== '' && cfg.use_gpu,
    rank: env.rank,
    visibleDevices: process.env.CUDA_VISIBLE_DEVICES,
    log: (m) => log.info(m),
  });

  // ---- the process group (no sockets at all for a single worker) --------------------------------------------
  const group = await createProcessGroup(env, {
    timeoutMs: cfg.collective_timeout_s * 1000,
    wireDtype: cfg.allreduce_dtype,
    log: (level, m) => log.log(level, m),
  });
  log.info(`collectives: ${group.description}`);
  const cleanup: (() => void)[] = [];
  try {
    // ---- data: this worker's shard of the global batch ------------------------------------------------------
    const loaderCtx = {
      rank: env.rank,
      worldSize: env.worldSize,
      seed,
      log: (m: string) => log.warn(m),
      jobId: env.jobId,
      localWorldSize: env.localWorldSize,
    };
    const trainLoader = await buildLoader(cfg, 'train', loaderCtx);
    const validLoader = cfg.validate && cfg.VALID ? await buildLoader(cfg, 'valid', loaderCtx) : undefined;
    if (!cfg.TRAIN || !cfg.LEARNING_RATE || !cfg.OPTIMIZER)
      throw new Error('config: train mode needs TRAIN, LEARNING_RATE and OPTIMIZER');
    // the LR schedule counts S = total_images // global batch per epoch, as PaddleClas does
    const stepsPerEpoch = cfg.total_images > 0 ? stepsPerEpochOf(cfg) : trainLoader.length;
    if (stepsPerEpoch !== trainLoader.length && env.rank === 0) {
      log.warn(
        `total_images=${cfg.total_images} gives ${stepsPerEpoch} LR steps per epoch, but TRAIN.file_list gives ${trainLoader.length} ` +
          `batches per epoch; the schedule follows total_images, as PaddleClas does (set -o total_images=${trainLoader.samples.length} to match)`,
      );
    }

    // ---- model, optimizer, learning-rate schedule ------------------------------------------------------------
    const model = new HarDNet(cfg.ARCHITECTURE.name, cfg.classes_num, cfg.seed);
    const parameters = new FlatParameters(model.weights);
    const opt = createMomentum(parameters, {
      momentum: cfg.OPTIMIZER.params.momentum,
      l2Decay: cfg.OPTIMIZER.regularizer?.factor ?? 0,
    });
    const lrAt = makeSchedule(cfg.LEARNING_RATE, { stepsPerEpoch, epochs: cfg.epochs });
    const runDir = path.join(cfg.model_save_dir, model.variant.name);

    // ---- where to start: a checkpoint, pretrained weights, or rank 0's random init everywhere -------------
    let state: TrainState = {
      epoch: -1,
      iteration: 0,
      bestTop1: 0,
      bestEpoch: -1,
      model: model.variant.name,
      classesNum: cfg.classes_num,
    };
    const resumeDir = o.resume === 'auto' ? latestCheckpoint(runDir) : (o.resume ?? (cfg.checkpoints || undefined));
    if (resumeDir) {
      state = loadCheckpoint(resumeDir, model, opt);
      // PaddleClas resumes at last_epoch + 1; the checkpoint knows its epoch, so last_epoch only has to agree
      if (cfg.last_epoch >= 0 && cfg.last_epoch !== state.epoch) {
        throw new Error(
          `config key last_epoch=${cfg.last_epoch} but checkpoint ${resumeDir} was saved after epoch ${state.epoch}`,
        );
      }
      log.info(`resumed from ${resumeDir}: epoch ${state.epoch} done, iteration ${state.iteration}`);
    } else if (o.resume === 'auto') {
      log.info(`--resume auto: no complete checkpoint under ${runDir}, starting fresh`);
    } else if (cfg.pretrained_model) {
      await loadPretrained(model, cfg.pretrained_model);
      log.info(`loaded pretrained weights from ${cfg.pretrained_model}`);
    }
    parameters.packWeights();
    await group.broadcast(parameters.weights, 0);
    parameters.unpackWeights();
    // after this barrier every worker has opened the shared decode caches: drop their names, so nothing outlives the job
    await group.barrier();
    for (const l of [trainLoader, validLoader]) l?.decodeCache?.unlinkName?.();
    if (env.rank === 0) saveConfig(cfg, runDir);
    // a resumed run keeps the records up to its checkpoint and drops what the interrupted run wrote after it
    const metrics =
      env.rank === 0
        ? new MetricsWriter(
            cfg.metrics_file || path.join(runDir, 'metrics.jsonl'),
            resumeDir ? { append: true, keepUpToEpoch: state.epoch } : {},
          )
        : undefined;
    const mix = cfg.use_mix ? mixOperatorFromConfig(cfg.TRAIN.mix) : undefined;
    // the launcher's first Ctrl-C reaches the workers as SIGINT: finish the step, then stop together
    let stopRequested = false;
    let stopped = false; // after an all-reduce that carried some rank's stop request
    const onStop = (sig: NodeJS.Signals) => {
      stopRequested = true;
      log.warn(`${sig} received: stopping after this step`);
    };
    process.once('SIGINT', onStop);
    cleanup.push(() => process.off('SIGINT', onStop));
    const perWorkerBatch = Math.floor(cfg.TRAIN.batch_size / env.worldSize);
    // ZeRO stage 1 (sharded_optimizer): the segment of the parameters this rank updates
    const shard = cfg.sharded_optimizer ? group.ownedSegment(parameters.size) : undefined;

    // ---- the epochs -----------------------------------------------------------------------------------------
    for (let epoch = state.epoch + 1; epoch < cfg.epochs; epoch++) {
      trainLoader.setEpoch(epoch);
      const batchCost = new RunningMean();
      const readerCost = new RunningMean();
      const split = {
        data: new RunningMean(),
        compute: new RunningMean(),
        allreduce: new RunningMean(),
        optimizer: new RunningMean(),
      };
      const epochMeans = { top1: new RunningMean(), top5: new RunningMean(), loss: new RunningMean() };
      const epochStart = performance.now();
      let step = 0;
      let tBatch = performance.now();
      for await (const batch of trainLoader) {
        const lr = lrAt(state.iteration);
        // forward + backward
        let t = performance.now();
        const mixed = mix?.(batch.images, batch.labels, batch.shape, new Mulberry32(mixSeed(seed, state.iteration, 1)));
        const x = tf.tensor4d(mixed?.images ?? batch.images, batch.shape);
        const y = tf.tensor1d(batch.labels, 'int32');
        const yB = mixed && tf.tensor1d(mixed.labelsB, 'int32');
        const r = computeGradients(model, x, y, {
          labelSmoothing: cfg.ls_epsilon >= 0 && cfg.ls_epsilon <= 1 ? cfg.ls_epsilon : 0,
          seed: mixSeed(seed, state.iteration),
          mix: mixed && { labelsB: yB!, lam: mixed.lam },
          temperature: cfg.loss_temperature,
          bnGroupSize: cfg.bn_virtual_batch_size,
        });
        const [loss] = await r.loss.data();
        parameters.packGradients(r.grads);
        const computeS = since(t);
        // gradients averaged over all workers; while this worker waits for the others' data, it does the work that
        // does not need the averaged gradients (BN running statistics, accuracy), so a step's skew is not all idle
        t = performance.now();
        const control = stopRequested ? STOP_REQUESTED : 0;
        const averaging = shard
          ? group.reduceScatter(parameters.gradients, 'mean', control)
          : group.allReduce(parameters.gradients, 'mean', control);
        averaging.catch(() => {}); // its failure is thrown by the await below, not reported as unhandled meanwhile
        const tLocal = performance.now();
        model.updateBatchNormStats(r.batchStats);
        const correct = await topkCorrect(r.logits, batch.labels, cfg.topk);
        const localS = since(tLocal);
        stopped = ((await averaging) & STOP_REQUESTED) !== 0;
        let allreduceS = since(t) - localS;
        // the update
        t = performance.now();
        if (shard) opt.stepSegment(lr, shard[0], shard[1]);
        else opt.step(lr);
        tf.dispose([x, y, ...(yB ? [yB] : []), r.loss, r.logits, ...r.grads.values()]);
        batch.release(); // the loader reuses the buffer (the tensors that wrapped it are gone)
        let optimizerS = since(t) + localS;
        if (shard) {
          // every rank's updated segment to every rank (the all-reduce's second half), then assigned
          t = performance.now();
          await group.allGatherInPlace(parameters.weights);
          allreduceS += since(t);
          t = performance.now();
          parameters.unpackWeights();
          optimizerS += since(t);
        }

        // bookkeeping, as PaddleClas does it: running means reset after the first 10 steps
        if (step === 10) {
          batchCost.reset();
          readerCost.reset();
        }
        batchCost.add(since(tBatch));
        readerCost.add(batch.readerCost);
        split.data.add(batch.readerCost);
        split.compute.add(computeS);
        split.allreduce.add(allreduceS);
        split.optimizer.add(optimizerS);
        const n = batch.labels.length;
        // with mixup/cutmix the batch has two targets: PaddleClas logs no train accuracy then
        const figures = {
          epoch,
          step,
          top1: mix ? undefined : correct.top1 / n,
          top5: mix ? undefined : correct.topk / n,
          loss,
          lr,
          topk: cfg.topk,
          batchCost: batchCost.mean,
          readerCost: readerCost.mean,
          ips: n / Math.max(batchCost.mean, 1e-9),
        };
        epochMeans.top1.add(correct.top1 / n);
        epochMeans.top5.add(correct.topk / n);
        epochMeans.loss.add(loss);
        if (step % cfg.print_interval === 0) log.info(trainLine(figures));
        metrics?.write({
          mode: 'train',
          epoch,
          step,
          iteration: state.iteration,
          loss,
          top1: figures.top1,
          top5: figures.top5,
          lr,
          batch_cost: figures.batchCost,
          reader_cost: figures.readerCost,
          ips: figures.ips,
          data_s: batch.readerCost,
          compute_s: computeS,
          allreduce_s: allreduceS,
          optimizer_s: optimizerS,
        });
        state.iteration++;
        step++;
        if (stopped) break;
        // one turn of the event loop per step: with one worker and a warm decode cache nothing in a step does I/O,
        // every await above resolves as a microtask, and Node would never run the SIGINT handler (a Ctrl-C)
        await new Promise<void>((resolve) => setImmediate(resolve));
        tBatch = performance.now();
      }
      if (stopped) {
        const last = latestCheckpoint(runDir);
        log.warn(
          `stopped on request in epoch ${epoch} after iteration ${state.iteration}; ` +
            (last
              ? `resume from the last complete checkpoint with --resume auto (${last})`
              : 'no checkpoint was written yet'),
        );
        metrics?.close();
        return 130;
      }
      const epochS = since(epochStart);
      const trainEnd = {
        epoch,
        mode: 'train' as const,
        topk: cfg.topk,
        top1: mix ? undefined : epochMeans.top1.mean,
        top5: mix ? undefined : epochMeans.top5.mean,
        loss: epochMeans.loss.mean,
        batchCost: batchCost.mean,
        readerCost: readerCost.mean,
        batchCostSum: epochS,
        ips: (step * perWorkerBatch) / epochS,
      };
      log.info(endLine(trainEnd));
      metrics?.write({
        mode: 'train',
        end: true,
        epoch,
        step,
        loss: trainEnd.loss,
        top1: trainEnd.top1,
        top5: trainEnd.top5,
        lr: 0,
        batch_cost: trainEnd.batchCost,
        reader_cost: trainEnd.readerCost,
        ips: trainEnd.ips,
      });
      log.info(
        `epoch ${epoch} time split per step: data wait ${split.data.mean.toFixed(4)} s, forward+backward ${split.compute.mean.toFixed(4)} s, ` +
          `all-reduce ${split.allreduce.mean.toFixed(4)} s, optimizer ${split.optimizer.mean.toFixed(4)} s (epoch ${epochS.toFixed(1)} s)`,
      );
      const cache = trainLoader.decodeCache;
      if (cache) log.info(`epoch ${epoch} decode cache: ${cache.describe()}`);

      // ---- validation: metrics summed over all workers --------------------------------------------------
      state.epoch = epoch;
      let isBest = false;
      // PaddleClas validates and saves when epoch_id % interval == 0 (epochs 0, k, 2k, ...); the last epoch is
      // always saved too, so that a finished run can be resumed or evaluated
      if (validLoader && cfg.validate && epoch % cfg.valid_interval === 0) {
        validLoader.setEpoch(epoch);
        const v = await evaluate(model, validLoader, group, {
          topk: cfg.topk,
          printInterval: cfg.print_interval,
          temperature: cfg.loss_temperature,
          onStep: (s, m) => log.info(validLine({ epoch, step: s, ...m, topk: cfg.topk })),
        });
        log.info(validEndLine(epoch, v, cfg.topk, env.worldSize));
        metrics?.write({
          mode: 'valid',
          end: true,
          epoch,
          step: state.iteration,
          top1: v.top1,
          top5: v.top5,
          loss: v.loss,
          lr: 0,
          batch_cost: v.batchCost,
          reader_cost: v.readerCost,
          ips: v.samples / env.worldSize / v.seconds,
        });
        if (v.top1 > state.bestTop1) {
          state.bestTop1 = v.top1;
          state.bestEpoch = epoch;
          isBest = true;
        }
        log.info(bestLine(state.bestTop1, state.bestEpoch));
      }

      // ---- checkpoints (rank 0), then everyone moves on together ---------------------------------------
      // sharded, each rank's velocities are current in its own segment only: a checkpoint holds all of them
      const saving = isBest || epoch % cfg.save_interval === 0 || epoch === cfg.epochs - 1;
      if (shard && saving) await opt.gatherVelocities((v) => group.allGatherInPlace(v));
      if (env.rank === 0) {
        if (isBest) await saveCheckpoint(path.join(runDir, 'best_model'), model, opt, state);
        if (epoch % cfg.save_interval === 0 || epoch === cfg.epochs - 1)
          await saveCheckpoint(path.join(runDir, String(epoch)), model, opt, state);
      }
      await group.barrier();
    }
    metrics?.close();
    model.dispose();
    return 0;
  } finally {
    for (const f of cleanup) f();
    await group.close();
  }
}
