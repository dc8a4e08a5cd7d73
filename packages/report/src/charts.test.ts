import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import {
  confusionMatrixPng,
  confusionMatrixSvg,
  imageGrid,
  imageGridSvg,
  lossCurves,
  lossCurvesSvg,
  scatterMapPng,
  scatterMapSvg,
  svgToPng,
  Svg,
  textWidth,
} from './index.js';

/** Pixels in rows y0..y1 (exclusive) darker than `below` (0-255 on the mean of r, g, b). */
function darkPixels(png: PNG, y0: number, y1: number, below = 160, x0 = 0, x1 = png.width): number {
  let n = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const i = (y * png.width + x) * 4;
      if (((png.data[i] as number) + (png.data[i + 1] as number) + (png.data[i + 2] as number)) / 3 < below) n++;
    }
  return n;
}

test('text is drawn with the packaged font: a line of text inks pixels, a wider string measures wider', () => {
  const png = PNG.sync.read(svgToPng(new Svg(300, 40).text(10, 28, 'Fashion-MNIST loss', { size: 20 }).toString()));
  assert.equal(png.width, 300);
  assert.equal(png.height, 40);
  // About 18 glyphs of 20 px: several hundred dark pixels; none without a font.
  assert.ok(darkPixels(png, 0, 40) > 300, `only ${darkPixels(png, 0, 40)} dark pixels`);
  assert.equal(darkPixels(png, 0, 6), 0, 'nothing above the cap height');
  const w = textWidth('Fashion-MNIST loss', 20);
  assert.ok(w > 150 && w < 260, `width ${w}`);
  assert.ok(textWidth('WWWW', 13) > textWidth('iiii', 13) * 2);
  assert.ok(textWidth('a', 26) > textWidth('a', 13) * 1.8);
});

test('special characters are escaped in the SVG and render', () => {
  const svg = new Svg(200, 30).text(5, 20, 'T-shirt/top <&> "x"').toString();
  assert.match(svg, /T-shirt\/top &lt;&amp;&gt; &quot;x&quot;/);
  assert.ok(darkPixels(PNG.sync.read(svgToPng(svg)), 0, 30) > 50);
});

test('loss curves: the title and legend are real text, the PNG is 900 x 520 with ink in the title band and the legend', () => {
  const folds = [0, 1, 2].map((fold) => ({ fold, train: [0.05, 0.03, 0.02 + fold * 0.001], val: [0.045, 0.032, 0.028] }));
  const title = 'seed-mnist fashion-mnist: loss per fold';
  const svg = lossCurvesSvg(folds, { title });
  assert.ok(svg.includes(`>${title}</text>`), 'the title is text in the SVG');
  for (const s of ['fold 0', 'fold 2', 'train', 'validation', 'epoch', 'loss']) assert.ok(svg.includes(`>${s}</text>`), s);
  const png = PNG.sync.read(lossCurves(folds, { title }));
  assert.equal(png.width, 900);
  assert.equal(png.height, 520);
  assert.ok(darkPixels(png, 10, 36, 160, 80, 500) > 400, 'the title is drawn');
  assert.ok(darkPixels(png, 40, 140, 160, 800, 900) > 100, 'the legend is drawn');
  const untitled = PNG.sync.read(lossCurves(folds));
  assert.equal(darkPixels(untitled, 0, 20, 160, 80, 500), 0, 'no title, no ink there');
});

test('image grid: the uncaptioned size is unchanged, pixels are the images scaled up; captions add a band of text under each row', () => {
  const images = new Uint8Array(4 * 6 * 5).map((_, i) => (i % 30 === 0 ? 255 : 0)); // 4 black 6x5 images, top-left pixel white
  const png = PNG.sync.read(imageGrid(images, 4, 6, 5, 1, { rows: 2, cols: 2, scale: 3 }));
  assert.equal(png.width, 2 * (5 * 3 + 2) + 2);
  assert.equal(png.height, 2 * (6 * 3 + 2) + 2);
  const at = (x: number, y: number): number => png.data[(y * png.width + x) * 4] as number;
  assert.equal(at(2, 2), 255, 'the white pixel, scaled');
  assert.equal(at(4, 4), 255);
  assert.equal(at(5, 5), 0, 'next image pixel: black');
  assert.equal(at(0, 0), 255, 'gutter');
  const captions = ['Coat', 'Bag', 'Sandal', 'Trouser'];
  const svg = imageGridSvg({ images, count: 4, height: 6, width: 5, channels: 1 }, { rows: 2, cols: 2, scale: 10, captions, title: 'originals' });
  for (const c of [...captions, 'originals']) assert.ok(svg.includes(`>${c}</text>`), c);
  const cap = PNG.sync.read(imageGrid(images, 4, 6, 5, 1, { rows: 2, cols: 2, scale: 10, captions, title: 'originals' }));
  assert.equal(cap.width, 2 * (5 * 10 + 2) + 2);
  assert.equal(cap.height, 30 + 2 * (6 * 10 + 4 + 15));
  const band = 30 + 6 * 10 + 4;
  assert.ok(darkPixels(cap, band, band + 15) > 40, 'caption text under the first row');
});

test('confusion matrix: labels and counts are text, rows and columns in the order given, matched cells outlined', () => {
  const m = [
    [1, 9, 0],
    [7, 2, 1],
  ];
  const svg = confusionMatrixSvg(m, {
    colLabels: ['cat', 'dog', 'bird'],
    rowOrder: [1, 0],
    matched: [
      [1, 0],
      [0, 1],
    ],
    title: 'clusters x classes',
  });
  for (const s of ['cat', 'dog', 'bird', 'cluster 0', 'cluster 1', '>9<', '>7<', 'clusters x classes', 'true class', 'total', '>10<'])
    assert.ok(svg.includes(s), s);
  assert.ok(svg.indexOf('>cluster 1<') < svg.indexOf('>cluster 0<'), 'row order');
  assert.equal(svg.match(/stroke="#d62728"/g)?.length, 2);
  const png = PNG.sync.read(confusionMatrixPng(m, { colLabels: ['cat', 'dog', 'bird'] }));
  assert.ok(png.width > 3 * 44 && png.height > 2 * 44);
  assert.ok(darkPixels(png, 0, png.height) > 500);
});

test('scatter map: one circle per point per panel, a legend with names and counts per panel', () => {
  const xy = [0, 0, 1, 1, 2, 0, 3, 1];
  const panels = [
    { title: 'by cluster', category: [0, 0, 1, 1], names: ['cluster 0', 'cluster 1'] },
    { title: 'by class', category: [0, 1, 1, 1], names: ['cat', 'dog'] },
  ];
  const svg = scatterMapSvg(xy, panels, { title: 'PCA', xTitle: 'PCA 1' });
  assert.equal(svg.match(/<circle/g)?.length, 4 * 2 + 4, 'points and legend markers');
  for (const s of ['>cluster 0 (2)<', '>cat (1)<', '>dog (3)<', '>by class<', '>PCA 1<']) assert.ok(svg.includes(s), s);
  const one = PNG.sync.read(scatterMapPng(xy, panels.slice(0, 1)));
  const two = PNG.sync.read(scatterMapPng(xy, panels));
  assert.ok(two.width > one.width * 1.8, 'a second panel beside the first');
});

test('scatter map: categories take the colours given, the legend lists them in the order given', () => {
  const panel = {
    title: 'p',
    category: [0, 1],
    names: ['first', 'second'],
    colors: [
      [1, 2, 3],
      [4, 5, 6],
    ] as const,
    legendOrder: [1, 0],
  };
  const svg = scatterMapSvg([0, 0, 1, 1], [panel]);
  assert.ok(svg.indexOf('>second (1)<') < svg.indexOf('>first (1)<'), 'legend order');
  assert.equal(svg.match(/fill="rgb\(1,2,3\)"/g)?.length, 2, 'a point and its legend marker');
});
