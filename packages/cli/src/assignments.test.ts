import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignmentsCsv, csvField, distancesToCentres, recordPaths } from './assignments.js';

test('csvField quotes commas, quotes, line breaks and edge spaces (RFC 4180), and nothing else', () => {
  assert.equal(csvField('shirt/0001.png'), 'shirt/0001.png');
  assert.equal(csvField('a,b.png'), '"a,b.png"');
  assert.equal(csvField('say "hi".png'), '"say ""hi"".png"');
  assert.equal(csvField('two\nlines.png'), '"two\nlines.png"');
  assert.equal(csvField('cr\r.png'), '"cr\r.png"');
  assert.equal(csvField(' lead.png'), '" lead.png"');
  assert.equal(csvField(3), '3');
  assert.equal(csvField(undefined), '');
});

test('assignmentsCsv: a header and one row per image, empty label and class when unknown', () => {
  const csv = assignmentsCsv(
    [
      { path: 'shirt/a,1.png', cluster: 3, score: 1.23456789, label: 6, className: 'shirt' },
      { path: 'x.jpg', cluster: 0, score: 0.5 },
    ],
    'distance',
  );
  assert.equal(csv, 'path,cluster,distance,label,class\n"shirt/a,1.png",3,1.23457,6,shirt\nx.jpg,0,0.5,,\n');
  assert.match(assignmentsCsv([], 'confidence'), /^path,cluster,confidence,label,class\n$/);
});

test('distancesToCentres: the Euclidean distance to the assigned centre', () => {
  const pts = { data: Float32Array.from([0, 0, 3, 4, 10, 10]), n: 3, d: 2 };
  const centers = Float64Array.from([0, 0, 10, 11]);
  assert.deepEqual([...distancesToCentres(pts, centers, [0, 0, 1])], [0, 5, 1]);
});

test('recordPaths: source paths when the dataset keeps them, else split:index', () => {
  assert.deepEqual(recordPaths('test', 3), ['test:0', 'test:1', 'test:2']);
  assert.deepEqual(recordPaths('train', 2, ['a/1.png', 'b/2.png']), ['a/1.png', 'b/2.png']);
  assert.throws(() => recordPaths('test', 2, ['a']), /2 records but 1 source paths/);
});
