/**
 * The TRAIN and VALID loaders of a run, from its config. Sections whose data_dir/file_list carry the "builtin:"
 * marker (the quickstart) read the Fashion-MNIST subset bundled with the project, materialised on first use.
 */
import type { DataConfig, TrainConfig } from '../../shared/config.js';
import { isBuiltinDataset } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { shmJobDir } from '../../shared/env.js';
import { loaderFromConfig, type DataLoader } from '../data/loader.js';
import { ensureBuiltinFashionMnist } from '../data/builtin.js';
import { shmUnavailable } from '../sys/shm.js';

/** where the bundled quickstart images are written as PNG files with file lists */
export const BUILTIN_DATA_DIR = 'data/fashion-mnist-mini';

export interface LoaderContext {
  rank: number;
  worldSize: number;
  seed: number;
  log: (m: string) => void;
  /** with several workers on this host, they share one decode cache on /dev/shm under this job's directory */
  jobId?: string;
  localWorldSize?: number;
  /** false: no decode cache (a single pass, as eval makes, gains nothing from one) */
  decodeCache?: boolean;
}

/** The shared decode cache's file for a data section: the same for every worker of the job on this host. */
function sharedCacheFile(section: DataConfig, which: string, o: LoaderContext): string | undefined {
  if (!o.jobId || (o.localWorldSize ?? 1) < 2 || section.decode_cache_mb <= 0 || o.decodeCache === false)
    return undefined;
  if (shmUnavailable(o.jobId) !== undefined) return undefined;
  const id = createHash('sha256')
    .update(JSON.stringify([section.file_list, section.data_dir, section.shuffle_seed, section.transforms]))
    .digest('hex')
    .slice(0, 16);
  return path.join(shmJobDir(o.jobId), `decoded-${which}-${id}.bin`);
}

async function resolveSection(section: DataConfig, which: 'train' | 'val'): Promise<DataConfig> {
  if (!isBuiltinDataset(section)) return section;
  const b = await ensureBuiltinFashionMnist(BUILTIN_DATA_DIR);
  return { ...section, file_list: which === 'train' ? b.trainList : b.valList, data_dir: b.dataDir };
}

export async function buildLoader(cfg: TrainConfig, which: 'train' | 'valid', o: LoaderContext): Promise<DataLoader> {
  const key = which === 'train' ? 'TRAIN' : 'VALID';
  const section = cfg[key];
  if (!section) throw new ConfigError(`config: no ${key} section`, undefined, key);
  const resolved = await resolveSection(section, which === 'train' ? 'train' : 'val');
  return loaderFromConfig(resolved, {
    mode: which,
    classesNum: cfg.classes_num,
    rank: o.rank,
    worldSize: o.worldSize,
    strictData: cfg.strict_data,
    seed: o.seed,
    log: o.log,
    sharedDecodeCacheFile: sharedCacheFile(resolved, which, o),
    decodeCache: o.decodeCache,
    maxImagePixels: cfg.max_image_pixels,
  });
}
