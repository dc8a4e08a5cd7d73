import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Registry } from 'prom-client';
import { SeriesRetention } from './series-retention.js';
import { ManualClock } from './testing.js';

function setup(opts: { retentionMs?: number; maxFinished?: number } = {}) {
  const registry = new Registry();
  const clock = new ManualClock();
  const g = new Gauge({ name: 'g', help: 'g', labelNames: ['run', 'fold'], registers: [registry] });
  const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['run', 'fold'], registers: [registry] });
  const r = new SeriesRetention({
    retentionMs: opts.retentionMs ?? 10_000,
    clock,
    ...(opts.maxFinished !== undefined ? { maxFinished: opts.maxFinished } : {}),
  });
  const put = (run: string, fold = '0'): void => {
    const labels = { run, fold };
    r.track(run, g, labels);
    r.track(run, c, labels);
    g.set(labels, 1);
    c.inc(labels);
  };
  const runs = async (): Promise<string[]> => {
    const seen = new Set<string>();
    for (const m of (await registry.getMetricsAsJSON()) as { values: { labels: Record<string, string> }[] }[])
      for (const v of m.values) seen.add(String(v.labels['run']));
    return [...seen].sort();
  };
  return { registry, clock, g, c, r, put, runs };
}

test('a finished key keeps its series for the retention, then every label set of it is removed from every metric; live keys stay', async () => {
  const { clock, r, put, runs } = setup();
  put('a', '0');
  put('a', '1');
  put('b');
  r.finished('a');
  clock.advance(9_999);
  assert.deepEqual(await runs(), ['a', 'b'], 'still there to be scraped with its final values');
  assert.deepEqual(r.size, { live: 1, finished: 1 });
  clock.advance(1);
  assert.deepEqual(await runs(), ['b']);
  assert.deepEqual(r.size, { live: 1, finished: 0 });
  assert.equal(r.has('a'), false);
  clock.advance(1_000_000);
  assert.deepEqual(await runs(), ['b'], 'a live key is never removed');
  assert.equal(clock.pending, 0, 'no timer left when nothing is finished');
});

test('a key tracked again before its removal is live again; finishing it again starts a new retention', async () => {
  const { clock, r, put, runs } = setup();
  put('a');
  r.finished('a');
  clock.advance(5_000);
  put('a');
  assert.equal(r.isFinished('a'), false);
  clock.advance(20_000);
  assert.deepEqual(await runs(), ['a']);
  r.finished('a');
  clock.advance(5_000);
  r.finished('a');
  clock.advance(5_000);
  assert.deepEqual(await runs(), [], 'finishing twice keeps the first deadline');
});

test('keys go in the order they finished, each at its own deadline', async () => {
  const { clock, r, put, runs } = setup();
  put('a');
  put('b');
  put('c');
  r.finished('b');
  clock.advance(3_000);
  r.finished('a');
  clock.advance(7_000);
  assert.deepEqual(await runs(), ['a', 'c']);
  clock.advance(2_999);
  assert.deepEqual(await runs(), ['a', 'c']);
  clock.advance(1);
  assert.deepEqual(await runs(), ['c']);
});

test('beyond maxFinished the oldest finished keys are removed at once, live ones never', async () => {
  const { r, put, runs } = setup({ maxFinished: 2 });
  for (const k of ['a', 'b', 'c', 'd', 'live']) put(k);
  for (const k of ['a', 'b', 'c', 'd']) r.finished(k);
  assert.deepEqual(await runs(), ['c', 'd', 'live']);
  assert.deepEqual(r.size, { live: 1, finished: 2 });
});

test('a retention of 0 removes at finish; unknown keys are ignored; untrack removes one label set now', async () => {
  const { r, g, put, runs, registry } = setup({ retentionMs: 0 });
  put('a');
  put('b', '0');
  put('b', '1');
  r.finished('nobody');
  r.finished('a');
  assert.deepEqual(await runs(), ['b']);
  r.untrack('b', g, { run: 'b', fold: '1' });
  const text = await registry.metrics();
  assert.doesNotMatch(text, /^g\{run="b",fold="1"\}/m);
  assert.match(text, /^g\{run="b",fold="0"\} 1$/m);
  assert.match(text, /^c_total\{run="b",fold="1"\} 1$/m, 'only that metric’s label set');
  assert.equal(r.series('b').length, 3);
});

test('close clears the timer: nothing is removed afterwards', async () => {
  const { clock, r, put, runs } = setup();
  put('a');
  r.finished('a');
  assert.equal(clock.pending, 1);
  r.close();
  assert.equal(clock.pending, 0);
  clock.advance(60_000);
  assert.deepEqual(await runs(), ['a']);
});

test('the settings are checked', () => {
  assert.throws(() => new SeriesRetention({ retentionMs: -1 }), RangeError);
  assert.throws(() => new SeriesRetention({ retentionMs: 1.5 }), RangeError);
  assert.throws(() => new SeriesRetention({ retentionMs: 10, maxFinished: -1 }), RangeError);
});

test('the real timer is unref’d: a pending removal does not keep the process alive', () => {
  const timers = (): number => process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
  const before = timers();
  const r = new SeriesRetention({ retentionMs: 3_600_000 });
  const g = new Gauge({ name: 'u', help: 'u', labelNames: ['run'], registers: [] });
  r.track('a', g, { run: 'a' });
  r.finished('a');
  assert.equal(timers(), before, 'no ref’d timer');
  r.close();
});
