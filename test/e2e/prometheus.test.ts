import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunState } from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { getRun, importFashion, runClient, submitFashionRun, until } from './helpers.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

interface PromVector {
  data: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

/** How long an ended run's series stay on /metrics in this test (the services inherit the environment). */
const RETENTION_MS = 60_000;

test('a real Prometheus scrapes the local cluster: per-fold loss series exist and change; promtool accepts every /metrics; an ended run leaves /metrics after the retention, its history stays in Prometheus', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-prom-'));
  process.env['CVC_METRICS_RETENTION_MS'] = String(RETENTION_MS);
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm' });
  const promPort = await freePort();
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cvc\n    file_sd_configs:\n      - files: ['${join(dir, 'prometheus-targets.json')}']\n        refresh_interval: 1s\n`,
  );
  const prom = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'prom-data')}`, `--web.listen-address=127.0.0.1:${promPort}`],
    { stdio: 'ignore' },
  );
  const rc = runClient(cluster);
  const q = async (query: string): Promise<PromVector['data']['result']> => {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(query)}`);
    return ((await r.json()) as PromVector).data.result;
  };
  try {
    await until(
      'prometheus ready',
      () =>
        fetch(`http://127.0.0.1:${promPort}/-/ready`).then(
          (r) => r.ok,
          () => false,
        ),
      (ok) => ok,
      60_000,
    );
    await importFashion(cluster, 2, 200);
    const runId = await submitFashionRun(cluster, 2, 4);
    await until(
      'the run to finish',
      () => getRun(rc, runId),
      (r) => r.state === RunState.RUN_STATE_SUCCEEDED || r.state === RunState.RUN_STATE_FAILED,
      240_000,
    );
    // Let two more scrapes happen after the last report.
    await new Promise((r) => setTimeout(r, 2500));

    const up = await q('up');
    assert.equal(up.filter((s) => s.metric['job'] === 'cvc-coordinator' && s.value[1] === '1').length, 1, JSON.stringify(up));
    assert.equal(up.filter((s) => s.metric['job'] === 'cvc-worker' && s.value[1] === '1').length, 2);
    const sel = `{run="${runId}"}`;
    const folds = (rs: PromVector['data']['result']): string[] => rs.map((s) => s.metric['fold'] ?? '').sort();
    assert.deepEqual(folds(await q(`cvc_fold_val_loss${sel}`)), ['0', '1'], 'coordinator: a validation-loss series per fold');
    assert.deepEqual(folds(await q(`changes(cvc_fold_train_loss${sel}[10m]) > 0`)), ['0', '1'], 'each fold’s training loss changed over the run');
    assert.deepEqual(folds(await q(`max by (fold) (cvc_worker_train_loss${sel})`)), ['0', '1'], 'workers: a training-loss series per fold');
    const epochs = await q(`cvc_fold_epochs_done${sel}`);
    assert.deepEqual(
      epochs.map((s) => s.value[1]),
      ['4', '4'],
    );
    const trained = await q(`sum(cvc_worker_images_trained_total${sel})`);
    assert.equal(Number(trained[0]?.value[1]), 2 * 4 * 100, 'images trained: 2 folds x 4 epochs x 100 images');
    const grpc = await q('sum by (method) (cvc_grpc_requests_total{code="OK"})');
    assert.ok(grpc.some((s) => s.metric['method'] === 'ReportEpoch' && Number(s.value[1]) === 8));
    assert.deepEqual(
      (await q('cvc_runs{state="succeeded"}')).map((s) => s.value[1]),
      ['1'],
    );

    // promtool lints each service's exposition.
    const targets = JSON.parse(await readFile(join(dir, 'prometheus-targets.json'), 'utf8')) as { targets: string[] }[];
    const addrs = targets.flatMap((t) => t.targets);
    assert.equal(addrs.length, 3);
    for (const a of addrs) {
      const text = await (await fetch(`http://${a}/metrics`)).text();
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `promtool check metrics on ${a}: ${r.stdout}${r.stderr}`);
      assert.equal((await fetch(`http://${a}/healthz`)).status, 200);
      assert.equal((await fetch(`http://${a}/readyz`)).status, 200);
    }

    // After the retention the run's series leave every /metrics (coordinator and workers); Prometheus keeps their history.
    for (const a of addrs) {
      await until(
        `${a}: the ended run's series to leave /metrics`,
        async () => (await fetch(`http://${a}/metrics`)).text(),
        (text) => !text.includes(`run="${runId}"`),
        RETENTION_MS + 60_000,
      );
    }
    const history = await q(`max_over_time(cvc_fold_epochs_done${sel}[15m])`);
    assert.deepEqual(
      history.map((s) => [s.metric['fold'], s.value[1]]).sort(),
      [
        ['0', '4'],
        ['1', '4'],
      ],
      'the history of the removed series is still in Prometheus',
    );
    assert.deepEqual(
      (await q('cvc_runs{state="succeeded"}')).map((s) => s.value[1]),
      ['1'],
      'the ended run still counts by state',
    );
  } finally {
    rc.close();
    prom.kill('SIGTERM');
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
