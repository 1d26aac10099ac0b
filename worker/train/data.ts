/**
 * The TRAIN and VALID loaders of a run, from its config. Sections whose data_dir/file_list carry the "builtin:"
 * marker (the quickstart) read the Fashion-MNIST subset bundled with the project, materialised on first use.
 */
import type { DataConfig, TrainConfig } from '../../shared/config.js';
import { isBuiltinDataset } from '../../shared/config.js';
import { loaderFromConfig, type DataLoader } from '../data/loader.js';
import { ensureBuiltinFashionMnist } from '../data/builtin.js';

/** where the bundled quickstart images are written as PNG files with file lists */
export const BUILTIN_DATA_DIR = 'data/fashion-mnist-mini';

export interface LoaderContext { rank: number; worldSize: number; seed: number; log: (m: string) => void }

async function resolveSection(section: DataConfig, which: 'train' | 'val'): Promise<DataConfig> {
  if (!isBuiltinDataset(section)) return section;
  const b = await ensureBuiltinFashionMnist(BUILTIN_DATA_DIR);
  return { ...section, file_list: which === 'train' ? b.trainList : b.valList, data_dir: b.dataDir };
}

export async function buildLoader(cfg: TrainConfig, which: 'train' | 'valid', o: LoaderContext): Promise<DataLoader> {
  const section = which === 'train' ? cfg.TRAIN : cfg.VALID;
  if (!section) throw new Error(`config: no ${which === 'train' ? 'TRAIN' : 'VALID'} section`);
  return loaderFromConfig(await resolveSection(section, which === 'train' ? 'train' : 'val'), {
    mode: which, classesNum: cfg.classes_num, rank: o.rank, worldSize: o.worldSize, strictData: cfg.strict_data, seed: o.seed, log: o.log,
  });
}
