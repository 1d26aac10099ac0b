/**
 * `launch train`: the whole training job of one worker, top to bottom.
 *
 * Every worker runs this file; the launcher's environment (shared/env.ts) says which rank it is. Workers differ
 * only in their data shard, their dropout/augmentation seeds and their BN statistics; gradients are averaged with
 * one fused all-reduce per step, so the weights stay identical on every rank. Rank 0 writes checkpoints.
 * A step is step.ts's trainStep; its figures go to meter.ts, which writes the log lines and metrics.jsonl.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import path from 'node:path';
import type winston from 'winston';
import { readWorkerEnv } from '../../shared/env.js';
import { ConfigError } from '../../shared/errors.js';
import { loadConfig, formatConfig, saveConfig, type TrainingConfig } from '../../shared/config.js';
import { createWorkerLogger, bestLine } from '../../shared/log_format.js';
import { MetricsWriter } from '../../shared/metrics.js';
import { mixSeed } from '../../shared/rng.js';
import { mixOperatorFromConfig } from '../data/mix.js';
import { selectBackend } from '../backend/select.js';
import { createProcessGroup } from '../collectives/index.js';
import { HarDNet } from '../model/hardnet.js';
import { loadPretrained } from '../checkpoint/pretrained.js';
import { createMomentum, type Optimizer } from '../optim/momentum.js';
import { FlatParameters } from '../model/flat_params.js';
import { makeSchedule, stepsPerEpochOf } from '../optim/lr.js';
import { loadCheckpoint, saveCheckpoint, latestCheckpoint, type TrainState } from '../checkpoint/checkpoint.js';
import { trainStep, type StepParts } from './step.js';
import { evaluate } from './evaluate.js';
import { TrainMeter } from './meter.js';
import { buildLoader } from './data.js';
import { jpegDecoderDescription } from '../data/jpeg_turbo.js';

export interface TrainOptions {
  config?: string;
  override: string[];
  resume?: string;
}

export async function train(options: TrainOptions): Promise<number> {
  // ---- who am I, what to run -------------------------------------------------------------------------------
  const env = readWorkerEnv();
  // every worker logs its own step lines to its workerlog.N (the launcher streams rank 0's to the terminal)
  const log = createWorkerLogger({ rank: env.rank, level: 'info' });
  const cfg = loadConfig(options.config, options.override, {
    warn: (m) => log.warn(m),
    worldSize: env.worldSize,
    mode: 'train',
  });
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
    const loaderContext = {
      rank: env.rank,
      worldSize: env.worldSize,
      seed,
      log: (m: string) => log.warn(m),
      jobId: env.jobId,
      localWorldSize: env.localWorldSize,
    };
    const trainLoader = await buildLoader(cfg, 'train', loaderContext);
    const validLoader = cfg.validate && cfg.VALID ? await buildLoader(cfg, 'valid', loaderContext) : undefined;
    log.info(`data: ${jpegDecoderDescription()}`);
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
    const { state, resumedFrom } = await startingPoint(model, opt, cfg, options.resume, runDir, log);
    parameters.packWeights();
    await group.broadcast(parameters.weights, 0);
    parameters.unpackWeights();
    // after this barrier every worker has opened the shared decode caches: drop their names, so nothing outlives the job
    await group.barrier();
    for (const loader of [trainLoader, validLoader]) loader?.decodeCache?.unlinkName?.();
    if (env.rank === 0) saveConfig(cfg, runDir);
    // a resumed run keeps the records up to its checkpoint and drops what the interrupted run wrote after it
    const metrics =
      env.rank === 0
        ? new MetricsWriter(
            cfg.metrics_file || path.join(runDir, 'metrics.jsonl'),
            resumedFrom ? { append: true, keepUpToEpoch: state.epoch } : {},
          )
        : undefined;
    const mix = cfg.use_mix ? mixOperatorFromConfig(cfg.TRAIN.mix) : undefined;
    const meter = new TrainMeter((line) => log.info(line), metrics, {
      topk: cfg.topk,
      printInterval: cfg.print_interval,
      showAccuracy: !mix, // with mixup/cutmix the batch has two targets: PaddleClas logs no train accuracy then
      perWorkerBatch: Math.floor(cfg.TRAIN.batch_size / env.worldSize),
      worldSize: env.worldSize,
    });
    const stepParts: StepParts = {
      model,
      optimizer: opt,
      parameters,
      // ZeRO stage 1 (sharded_optimizer): the segment of the parameters this rank updates
      shard: cfg.sharded_optimizer ? group.ownedSegment(parameters.size) : undefined,
      group,
      mix,
      seed,
      labelSmoothing: cfg.ls_epsilon >= 0 && cfg.ls_epsilon <= 1 ? cfg.ls_epsilon : 0,
      temperature: cfg.loss_temperature,
      bnGroupSize: cfg.bn_virtual_batch_size,
      topk: cfg.topk,
      manualGc: cfg.manual_gc,
    };
    const interrupt = stopOnSigint(log, cleanup);

    // ---- the epochs -----------------------------------------------------------------------------------------
    for (let epoch = state.epoch + 1; epoch < cfg.epochs; epoch++) {
      trainLoader.setEpoch(epoch);
      meter.startEpoch(epoch);
      let stopped = false;
      for await (const batch of trainLoader) {
        const lr = lrAt(state.iteration);
        const at = { iteration: state.iteration, lr, stopRequested: interrupt.requested };
        const result = await trainStep(stepParts, batch, at);
        meter.recordStep(result, at);
        state.iteration++;
        stopped = result.stop;
        if (stopped) break;
        // one turn of the event loop per step: with one worker and a warm decode cache nothing in a step does I/O,
        // every await above resolves as a microtask, and Node would never run the SIGINT handler (a Ctrl-C)
        await nextTurn();
        meter.startBatch();
      }
      if (stopped) {
        // The bit can come back before this rank's own SIGINT handler ran: the launcher signals every worker at
        // once, and the stop travels in the all-reduce, whose reply may be read in the same turn of the event loop
        // as the signal. One more turn runs a pending handler before `cleanup` removes it (which would drop the
        // signal unseen); a rank that then still got none was stopped by another (a Ctrl-C on one node only).
        if (!interrupt.requested) await nextTurn();
        if (!interrupt.requested) log.warn('another worker was asked to stop: stopping after this step with it');
        const last = latestCheckpoint(runDir);
        log.warn(
          `stopped on request in epoch ${epoch} after iteration ${state.iteration}; ` +
            (last
              ? `resume from the last complete checkpoint with --resume auto (${last})`
              : 'no checkpoint was written yet'),
        );
        meter.close();
        return 130;
      }
      meter.endEpoch();
      const cache = trainLoader.decodeCache;
      if (cache) log.info(`epoch ${epoch} decode cache: ${cache.describe()}`);

      // ---- validation: metrics summed over all workers --------------------------------------------------
      state.epoch = epoch;
      let isBest = false;
      // PaddleClas validates and saves when epoch_id % interval == 0 (epochs 0, k, 2k, ...); the last epoch is
      // always saved too, so that a finished run can be resumed or evaluated
      if (validLoader && epoch % cfg.valid_interval === 0) {
        validLoader.setEpoch(epoch);
        const result = await evaluate(model, validLoader, group, {
          topk: cfg.topk,
          printInterval: cfg.print_interval,
          temperature: cfg.loss_temperature,
          onStep: (step, figures) => meter.validStep(epoch, step, figures),
        });
        meter.endValidation(epoch, result, state.iteration);
        if (result.top1 > state.bestTop1) {
          state.bestTop1 = result.top1;
          state.bestEpoch = epoch;
          isBest = true;
        }
        log.info(bestLine(state.bestTop1, state.bestEpoch));
      }

      // ---- checkpoints (rank 0), then everyone moves on together ---------------------------------------
      // sharded, each rank's velocities are current in its own segment only: a checkpoint holds all of them
      const saving = isBest || epoch % cfg.save_interval === 0 || epoch === cfg.epochs - 1;
      if (stepParts.shard && saving) await opt.gatherVelocities((v) => group.allGatherInPlace(v));
      if (env.rank === 0) {
        if (isBest) await saveCheckpoint(path.join(runDir, 'best_model'), model, opt, state);
        if (epoch % cfg.save_interval === 0 || epoch === cfg.epochs - 1)
          await saveCheckpoint(path.join(runDir, String(epoch)), model, opt, state);
      }
      await group.barrier();
    }
    meter.close();
    model.dispose();
    return 0;
  } finally {
    for (const undo of cleanup) undo();
    await group.close();
  }
}

/**
 * The training state to start from: a checkpoint (`--resume DIR`, `--resume auto`: the newest complete one under
 * runDir, or the config's `checkpoints`), else pretrained weights, else the model's own init (which rank 0 then
 * broadcasts). `resumedFrom`: the checkpoint, when there was one.
 */
async function startingPoint(
  model: HarDNet,
  opt: Optimizer,
  cfg: Pick<TrainingConfig, 'checkpoints' | 'last_epoch' | 'pretrained_model' | 'classes_num'>,
  resume: string | undefined,
  runDir: string,
  log: winston.Logger,
): Promise<{ state: TrainState; resumedFrom?: string }> {
  const resumeDir = resume === 'auto' ? latestCheckpoint(runDir) : (resume ?? (cfg.checkpoints || undefined));
  if (resumeDir) {
    const state = loadCheckpoint(resumeDir, model, opt);
    // PaddleClas resumes at last_epoch + 1; the checkpoint knows its epoch, so last_epoch only has to agree
    if (cfg.last_epoch >= 0 && cfg.last_epoch !== state.epoch) {
      throw new ConfigError(
        `config key last_epoch=${cfg.last_epoch} but checkpoint ${resumeDir} was saved after epoch ${state.epoch}`,
        undefined,
        'last_epoch',
      );
    }
    log.info(`resumed from ${resumeDir}: epoch ${state.epoch} done, iteration ${state.iteration}`);
    return { state, resumedFrom: resumeDir };
  }
  if (resume === 'auto') {
    log.info(`--resume auto: no complete checkpoint under ${runDir}, starting fresh`);
  } else if (cfg.pretrained_model) {
    await loadPretrained(model, cfg.pretrained_model);
    log.info(`loaded pretrained weights from ${cfg.pretrained_model}`);
  }
  const fresh: TrainState = {
    epoch: -1,
    iteration: 0,
    bestTop1: 0,
    bestEpoch: -1,
    model: model.variant.name,
    classesNum: cfg.classes_num,
  };
  return { state: fresh };
}

/**
 * The launcher's first Ctrl-C reaches the workers as SIGINT: finish the step, then stop together (the request
 * rides in the step's all-reduce). The handler is removed by `cleanup`.
 */
function stopOnSigint(log: winston.Logger, cleanup: (() => void)[]): { readonly requested: boolean } {
  const request = { requested: false };
  const onStop = (signal: NodeJS.Signals) => {
    request.requested = true;
    log.warn(`${signal} received: stopping after this step`);
  };
  process.once('SIGINT', onStop);
  cleanup.push(() => process.off('SIGINT', onStop));
  return request;
}
