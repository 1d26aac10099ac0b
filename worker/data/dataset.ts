/**
 * Datasets: a PaddleClas file list (`relative/path label` per line) or a folder-per-class tree.
 *
 * Everything a run needs to know about its data is checked here, before training starts: the list and the data
 * directory exist, every line has exactly two fields, every label is an integer in [0, classes_num).
 * Image files themselves are only opened by the loader (checking 1.2M files up front would take minutes).
 */
import { DataError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NumpyRandomState } from '../../shared/rng.js';

export interface Sample {
  /** absolute or data_dir-joined path of the image */
  path: string;
  label: number;
  /** 1-based line of the file list (0 for folder trees) */
  line: number;
}

export interface FileListOptions {
  fileList: string;
  dataDir: string;
  /** field separator; PaddleClas's default is one space */
  delimiter?: string;
  classesNum?: number;
}

export class DatasetError extends DataError {}

export function loadFileList(opts: FileListOptions): Sample[] {
  const { fileList, dataDir } = opts;
  const delimiter = opts.delimiter ?? ' ';
  if (!fileList) throw new DatasetError('file_list is empty: set TRAIN.file_list / VALID.file_list');
  if (dataDir === undefined || dataDir === null)
    throw new DatasetError(`data_dir is not set for file list ${fileList}`);
  if (!fs.existsSync(fileList)) throw new DatasetError(`file_list not found: ${fileList}`);
  if (!fs.statSync(fileList).isFile()) throw new DatasetError(`file_list is not a file: ${fileList}`);
  if (!fs.existsSync(dataDir) || !fs.statSync(dataDir).isDirectory()) {
    throw new DatasetError(`data_dir not found or not a directory: ${dataDir} (used by ${fileList})`);
  }
  if (opts.classesNum !== undefined && (!Number.isInteger(opts.classesNum) || opts.classesNum < 1)) {
    throw new DatasetError(`classes_num must be a positive integer, got ${opts.classesNum}`);
  }
  const text = fs.readFileSync(fileList, 'utf8');
  const lines = text.split(/\r?\n/);
  const samples: Sample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === '') continue; // blank lines (e.g. the final newline) carry no sample
    const where = `${fileList}:${i + 1}`;
    const fields = raw.trim().split(delimiter);
    if (fields.length !== 2 || fields[0] === '' || fields[1] === '') {
      throw new DatasetError(
        `${where}: expected "path${delimiter}label" (2 fields split on ${JSON.stringify(delimiter)}), got ${JSON.stringify(raw)}`,
      );
    }
    const [rel, labelText] = fields;
    if (!/^-?\d+$/.test(labelText))
      throw new DatasetError(`${where}: label ${JSON.stringify(labelText)} is not an integer`);
    const label = Number(labelText);
    if (label < 0 || (opts.classesNum !== undefined && label >= opts.classesNum)) {
      throw new DatasetError(`${where}: label ${label} is outside [0, ${opts.classesNum ?? 'classes_num'})`);
    }
    samples.push({ path: path.join(dataDir, rel), label, line: i + 1 });
  }
  if (samples.length === 0) throw new DatasetError(`file_list ${fileList} has no samples`);
  return samples;
}

const IMAGE_EXT = /\.(jpe?g|png|webp|bmp|tiff?|gif|avif)$/i;

export interface FolderTree {
  samples: Sample[];
  /** class names in label order (sorted folder names, like torchvision's ImageFolder) */
  classes: string[];
}

/** dir/<class>/<image>: labels are the sorted class folder names' indices. */
export function loadFolderTree(dir: string): FolderTree {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DatasetError(`image folder not found: ${dir}`);
  const classes = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  if (classes.length === 0) throw new DatasetError(`${dir} has no class folders (expected ${dir}/<class>/<image>)`);
  const samples: Sample[] = [];
  classes.forEach((cls, label) => {
    const files = fs
      .readdirSync(path.join(dir, cls), { recursive: true, withFileTypes: false })
      .map(String)
      .filter((f) => IMAGE_EXT.test(f))
      .sort();
    for (const f of files) samples.push({ path: path.join(dir, cls, f), label, line: 0 });
  });
  if (samples.length === 0) throw new DatasetError(`${dir} has class folders but no images`);
  return { samples, classes };
}

/** PaddleClas shuffles the train list once with shuffle_seed (numpy RandomState), identically on every worker. */
export function shuffleLines<T>(items: T[], seed: number): T[] {
  const copy = items.slice();
  new NumpyRandomState(seed).shuffle(copy);
  return copy;
}
