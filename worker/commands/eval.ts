/**
 * `launch eval -c cfg -o pretrained_model=...`: one validation pass, alone or under the launcher (each worker
 * evaluates its shard; metrics are summed over workers), printing the valid lines and the END line.
 */
import { readWorkerEnv } from '../../shared/env.js';
import { loadConfig, quickstartConfigPath } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { createWorkerLogger, validLine } from '../../shared/log_format.js';
import { mixSeed } from '../../shared/rng.js';
import { selectBackend } from '../backend/select.js';
import { createProcessGroup } from '../collectives/index.js';
import { HarDNet } from '../model/hardnet.js';
import { loadPretrained } from '../checkpoint/pretrained.js';
import { evaluate, validEndLine } from '../train/evaluate.js';
import { buildLoader } from '../train/data.js';

export interface EvalOptions {
  config?: string;
  override: string[];
}

export async function evalCommand(o: EvalOptions): Promise<number> {
  const env = readWorkerEnv();
  // every worker logs its own step lines to its workerlog.N (the launcher streams rank 0's to the terminal)
  const log = createWorkerLogger({ rank: env.rank, level: 'info' });
  const cfg = loadConfig(o.config, o.override, { warn: (m) => log.warn(m), worldSize: env.worldSize, mode: 'valid' });
  if (!cfg.pretrained_model)
    throw new ConfigError(
      'eval: set the weights with -o pretrained_model=<.pth file or checkpoint directory>',
      o.config ?? quickstartConfigPath(),
      'pretrained_model',
    );
  // use_gpu: False runs on the CPU on purpose even with a GPU assigned (PaddleClas's switch)
  await selectBackend(cfg.backend, {
    gpuAssigned: env.selectedGpus !== '' && cfg.use_gpu,
    rank: env.rank,
    visibleDevices: process.env.CUDA_VISIBLE_DEVICES,
    log: (m) => log.info(m),
  });
  const group = await createProcessGroup(env, {
    timeoutMs: cfg.collective_timeout_s * 1000,
    log: (level, m) => log.log(level, m),
  });
  try {
    const loader = await buildLoader(cfg, 'valid', {
      rank: env.rank,
      worldSize: env.worldSize,
      seed: mixSeed(cfg.seed, env.rank),
      log: (m) => log.warn(m),
      decodeCache: false,
    });
    const model = new HarDNet(cfg.ARCHITECTURE.name, cfg.classes_num, cfg.seed);
    await loadPretrained(model, cfg.pretrained_model);
    const v = await evaluate(model, loader, group, {
      topk: cfg.topk,
      printInterval: cfg.print_interval,
      temperature: cfg.loss_temperature,
      onStep: (step, m) => log.info(validLine({ epoch: 0, step, ...m, topk: cfg.topk })),
    });
    log.info(validEndLine(0, v, cfg.topk, env.worldSize));
    model.dispose();
    return 0;
  } finally {
    await group.close();
  }
}
