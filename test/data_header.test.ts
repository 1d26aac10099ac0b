import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { headerImageSize } from '../worker/data/header.js';
import { REPO_ROOT } from './helpers/hardnet_fixture.js';

const IMAGES = path.join(REPO_ROOT, 'test/fixtures/images');

test('header sizes agree with sharp (EXIF rotation included) on every real test image, or defer to it', async () => {
  let read = 0;
  for (const f of fs.readdirSync(IMAGES)) {
    const buf = fs.readFileSync(path.join(IMAGES, f));
    const ours = headerImageSize(buf);
    let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>> | undefined;
    try {
      meta = await sharp(buf).metadata();
    } catch {
      /* not an image */
    }
    if (!meta) {
      assert.equal(ours, undefined, f);
      continue;
    }
    if (ours === undefined) continue; // deferred to sharp
    read++;
    assert.deepEqual(
      ours,
      { width: meta.autoOrient?.width ?? meta.width, height: meta.autoOrient?.height ?? meta.height },
      f,
    );
  }
  assert.ok(read >= 5, `only ${read} files read from their headers`);
  // the EXIF-rotated JPEG really is rotated: its stored frame is the other way round
  const rot = fs.readFileSync(path.join(IMAGES, 'exif_rot90.jpg'));
  const stored = await sharp(rot).metadata();
  assert.deepEqual(headerImageSize(rot), { width: stored.height, height: stored.width });
  assert.equal(headerImageSize(Buffer.from('not an image at all')), undefined);
  assert.equal(headerImageSize(rot.subarray(0, 10)), undefined, 'a header cut short defers to sharp');
});
