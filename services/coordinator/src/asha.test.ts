import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeRungs, median, verdict, type TrialScores } from './asha.js';

const trial = (i: number, scores: Record<number, number>, active = true): TrialScores => ({
  trial: i,
  runId: `r${i}`,
  scores: new Map(Object.entries(scores).map(([k, v]) => [Number(k), v])),
  active,
});
const asha = { mode: 'asha' as const, reductionFactor: 3, rungs: [1, 3] };

test('asha: fewer than eta runs judged at a rung all go on; from eta on only the best floor(n/eta) do', () => {
  assert.equal(verdict(asha, 1, { trial: 0, score: 0.9 }, [{ trial: 0, score: 0.9 }]).stop, false);
  const two = [
    { trial: 0, score: 0.2 },
    { trial: 1, score: 0.9 },
  ];
  assert.equal(verdict(asha, 1, { trial: 1, score: 0.9 }, two).stop, false, 'n=2 < eta=3');
  const three = [...two, { trial: 2, score: 0.5 }];
  assert.equal(verdict(asha, 1, { trial: 0, score: 0.2 }, three).stop, false);
  const v = verdict(asha, 1, { trial: 2, score: 0.5 }, three);
  assert.equal(v.stop, true);
  assert.match(v.reason, /^asha rung 1: mean val loss 0\.5000 is in the worst 2 of 3 runs at this rung/);
  // n = 6, eta 3: the best 2 go on.
  const six = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6].map((score, trial) => ({ trial, score }));
  assert.deepEqual(
    six.map((p) => verdict(asha, 1, p, six).stop),
    [false, false, true, true, true, true],
  );
  // Ties go to the lower trial index.
  const tie = [0, 1, 2].map((trial) => ({ trial, score: 0.3 }));
  assert.deepEqual(
    tie.map((p) => verdict(asha, 1, p, tie).stop),
    [false, true, true],
  );
});

test('median: stopped when worse than the median of the others, once 2 others are judged', () => {
  const m = { mode: 'median' as const, reductionFactor: 3 };
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(
    verdict(m, 1, { trial: 1, score: 9 }, [
      { trial: 0, score: 1 },
      { trial: 1, score: 9 },
    ]).stop,
    false,
    'one other: not enough',
  );
  const pool = [
    { trial: 0, score: 0.2 },
    { trial: 1, score: 0.4 },
    { trial: 2, score: 0.3 },
  ];
  const v = verdict(m, 1, { trial: 1, score: 0.4 }, pool);
  assert.equal(v.stop, true);
  assert.match(v.reason, /worse than the median 0\.2500 of the 2 other runs/);
  assert.equal(verdict(m, 1, { trial: 2, score: 0.3 }, pool).stop, false, '0.3 = median of 0.2 and 0.4');
});

test('judgeRungs: a 4-config sweep stops the clearly worse run at the first rung, whatever order the runs reached it', () => {
  // Trial 0 (the bad learning rate) reached rung 1 first and went on (alone there); trials 1-3 reach it now.
  const recorded = judgeRungs(asha, [trial(0, { 1: 0.9 })], []);
  assert.deepEqual(
    recorded.map((d) => [d.trial, d.rung, d.stopped]),
    [[0, 1, false]],
  );
  const all = [trial(0, { 1: 0.9 }), trial(1, { 1: 0.3 }), trial(2, { 1: 0.2 }), trial(3, { 1: 0.25 })];
  const next = judgeRungs(asha, all, recorded);
  // First judgements in trial order (1: n=2 goes on; 2: n=3 best; 3: n=4 rank 2 of keep 1 -> stopped), then the revision stops 0 and 1.
  assert.deepEqual(
    next.map((d) => [d.trial, d.rung, d.stopped]),
    [
      [1, 1, false],
      [2, 1, false],
      [3, 1, true],
      [0, 1, true],
      [1, 1, true],
    ],
  );
  assert.match(next.find((d) => d.trial === 0)?.reason ?? '', /worst 3 of 4/);
  // Nothing new follows from the same reports: the decisions are stable.
  assert.deepEqual(judgeRungs(asha, all, [...recorded, ...next]), []);
});

test('judgeRungs: an ended run is ranked but not stopped; a run that reached a later rung is judged there, not revised', () => {
  const d1 = judgeRungs(asha, [trial(0, { 1: 0.9, 3: 0.8 }, true), trial(1, { 1: 0.5 }, false)], []);
  assert.deepEqual(
    d1.map((d) => [d.trial, d.rung, d.stopped]),
    [
      [0, 1, false],
      [1, 1, false],
      [0, 3, false],
    ],
  );
  const d2 = judgeRungs(asha, [trial(0, { 1: 0.9, 3: 0.8 }), trial(1, { 1: 0.5 }, false), trial(2, { 1: 0.1 }, false)], d1);
  // Trial 0 is worst of 3 at rung 1 but already judged at rung 3: not revised at 1. Trial 2 ended: recorded, not stopped.
  assert.deepEqual(
    d2.map((d) => [d.trial, d.rung, d.stopped]),
    [[2, 1, false]],
  );
});
