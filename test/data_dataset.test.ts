import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadFileList, loadFolderTree, shuffleLines } from '../worker/data/dataset.js';

let dir = '';
const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'data-dataset-'));
  fs.mkdirSync(path.join(dir, 'tree/cat'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'tree/ant'), { recursive: true });
  for (const f of ['tree/cat/b.png', 'tree/cat/a.jpg', 'tree/ant/x.JPEG', 'tree/ant/notes.txt'])
    fs.writeFileSync(path.join(dir, f), 'x');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('loadFileList joins paths onto data_dir and keeps line numbers', () => {
  const list = write('list.txt', 'train/n01/a.JPEG 0\n\ntrain/n02/b.JPEG 2\r\ntrain/n02/c.JPEG 1\n');
  const s = loadFileList({ fileList: list, dataDir: dir, classesNum: 3 });
  assert.deepEqual(s, [
    { path: path.join(dir, 'train/n01/a.JPEG'), label: 0, line: 1 },
    { path: path.join(dir, 'train/n02/b.JPEG'), label: 2, line: 3 },
    { path: path.join(dir, 'train/n02/c.JPEG'), label: 1, line: 4 },
  ]);
  const tabbed = write('tab.txt', 'my image.png\t4\n');
  assert.deepEqual(loadFileList({ fileList: tabbed, dataDir: dir, delimiter: '\t' })[0], {
    path: path.join(dir, 'my image.png'),
    label: 4,
    line: 1,
  });
});

test('loadFileList errors name the file, the line and the problem', () => {
  const ok = write('ok.txt', 'a.png 0\n');
  assert.throws(
    () => loadFileList({ fileList: path.join(dir, 'nope.txt'), dataDir: dir }),
    /file_list not found: .*nope\.txt/,
  );
  assert.throws(() => loadFileList({ fileList: ok, dataDir: path.join(dir, 'nodir') }), /data_dir not found.*nodir/);
  const three = write('three.txt', 'a.png 0\nb.png 1 extra\n');
  assert.throws(() => loadFileList({ fileList: three, dataDir: dir }), /three\.txt:2: expected "path label"/);
  const one = write('one.txt', 'a.png 0\nb.png\n');
  assert.throws(() => loadFileList({ fileList: one, dataDir: dir }), /one\.txt:2:/);
  const nonint = write('nonint.txt', 'a.png cat\n');
  assert.throws(() => loadFileList({ fileList: nonint, dataDir: dir }), /nonint\.txt:1: label "cat" is not an integer/);
  const big = write('big.txt', 'a.png 0\nb.png 10\n');
  assert.throws(
    () => loadFileList({ fileList: big, dataDir: dir, classesNum: 10 }),
    /big\.txt:2: label 10 is outside \[0, 10\)/,
  );
  const neg = write('neg.txt', 'a.png -1\n');
  assert.throws(() => loadFileList({ fileList: neg, dataDir: dir }), /neg\.txt:1: label -1 is outside/);
  const empty = write('empty.txt', '\n\n');
  assert.throws(() => loadFileList({ fileList: empty, dataDir: dir }), /has no samples/);
});

test('loadFolderTree: sorted class folders are the labels, only image files count', () => {
  const t = loadFolderTree(path.join(dir, 'tree'));
  assert.deepEqual(t.classes, ['ant', 'cat']);
  assert.deepEqual(
    t.samples.map((s) => [path.relative(dir, s.path), s.label]),
    [
      ['tree/ant/x.JPEG', 0],
      ['tree/cat/a.jpg', 1],
      ['tree/cat/b.png', 1],
    ],
  );
  assert.throws(() => loadFolderTree(path.join(dir, 'missing')), /image folder not found/);
});

test('shuffleLines is numpy RandomState(seed).shuffle and leaves the input alone', () => {
  const items = Array.from({ length: 10 }, (_, i) => i);
  assert.deepEqual(shuffleLines(items, 0), [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
  assert.deepEqual(items, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});
