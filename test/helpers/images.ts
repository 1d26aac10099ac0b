/** Small real PNG files with a PaddleClas file list, for runs of the real trainer on a few images. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

/** `n` 32x32 RGB patterns in `<dir>/images` and `<dir>/train.txt` listing them ("img<i>.png <i mod 10>"). */
export async function writeTestImages(dir: string, n: number): Promise<{ list: string; images: string }> {
  const images = path.join(dir, 'images');
  fs.mkdirSync(images, { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const px = Buffer.alloc(32 * 32 * 3);
    for (let j = 0; j < px.length; j++) px[j] = (i * 37 + j * 13) & 255;
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(path.join(images, `img${i}.png`));
    lines.push(`img${i}.png ${i % 10}`);
  }
  const list = path.join(dir, 'train.txt');
  fs.writeFileSync(list, lines.join('\n') + '\n');
  return { list, images };
}
