#!/usr/bin/env node
// npm run bench:cluster [-- --skip-worker-rss]
//
// Measures the cluster on the embedded default (real nats-server, S3 server,
// coordinator process, worker processes), last lines machine-readable:
//   RESULT name=submit_to_all_running value=… unit=s        (5 folds, 5 idle workers; target < 1 s)
//   RESULT name=epoch_report_rtt_p50 / _p99 value=… unit=ms
//   RESULT name=checkpoint_upload_via_coordinator value=… unit=MB/s
//   RESULT name=checkpoint_put_direct_s3 value=… unit=MB/s
//   RESULT name=upload_ratio value=… unit=ratio             (target >= 0.5)
//   RESULT name=coordinator_peak_rss_20mb / _200mb value=… unit=MiB   (must not grow with size)
//   RESULT name=worker_peak_rss_full_fashion_mnist value=… unit=MiB   (target < 1.5 GiB)
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CHECKPOINT_CHUNK_BYTES, CheckpointKind, FoldState, WorkerServiceClient } from '../packages/proto/dist/index.js';
import { main, resolveCluster, runServiceClient } from '../packages/cli/dist/index.js';
import { captureEnv, startLocalCluster } from '../packages/cli/dist/testing.js';
import { grpcClientSetup } from '../packages/security/dist/index.js';
import { createObjectStore } from '../packages/storage/dist/index.js';

const { values } = parseArgs({ options: { 'skip-worker-rss': { type: 'boolean', default: false } } });
const results = [];
const result = (name, value, unit) => {
  results.push(`RESULT name=${name} value=${value} unit=${unit}`);
  console.log(`${name}: ${value} ${unit}`);
};
const call = (f) => new Promise((res, rej) => f((e, r) => (e ? rej(e) : res(r))));
const hwm = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function submit(clusterFile, args) {
  const env = captureEnv('/tmp');
  const code = await main(['run', 'submit', '--dataset', 'fashion-mnist', '--model', 'seed-mnist', '--cluster', clusterFile, ...args], env);
  if (code !== 0) throw new Error(env.err());
  return env.out().trim();
}

async function upload(w, attempt, epoch, data) {
  return new Promise((resolve, reject) => {
    const s = w.uploadCheckpoint((e, r) => (e ? reject(e) : resolve(r)));
    s.write({ header: { attempt, epoch, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size: data.length }, data: Buffer.alloc(0), sha256: '' });
    for (let i = 0; i < data.length; i += CHECKPOINT_CHUNK_BYTES) s.write({ data: data.subarray(i, i + CHECKPOINT_CHUNK_BYTES), sha256: '' });
    s.write({ data: Buffer.alloc(0), sha256: createHash('sha256').update(data).digest('hex') });
    s.end();
  });
}

const dir = await mkdtemp(join(tmpdir(), 'cvc-bench-cluster-'));
const cluster = await startLocalCluster({ dir, workers: 5, backend: 'wasm', logLevel: 'warn' });
const clusterFile = join(dir, 'cluster.json');
const endpoints = await resolveCluster(clusterFile);
const rc = await runServiceClient(endpoints);
// The simulated worker uses the worker token over the same TLS channel.
const wch = await grpcClientSetup({ ...endpoints.security, token: cluster.credentials.workerToken });
const w = new WorkerServiceClient(cluster.endpoints.coordinator, wch.credentials, wch.options);
try {
  await main(['dataset', 'import', 'fashion-mnist', '--folds', '5', '--limit', '500', '--cluster', clusterFile], captureEnv(dir));
  await sleep(8000); // let the five workers load TensorFlow.js and start pulling
  // 1. Submit until every fold is running.
  const t0 = performance.now();
  const runId = await submit(clusterFile, ['--folds', '5', '--epochs', '1']);
  for (;;) {
    const r = await call((cb) => rc.getRun({ runId }, cb));
    if (r.folds.every((f) => f.state !== FoldState.FOLD_STATE_PENDING)) break;
    await sleep(5);
  }
  result('submit_to_all_running', ((performance.now() - t0) / 1000).toFixed(3), 's');
  await call((cb) => rc.cancelRun({ runId }, cb));
  for (const p of cluster.workers) p.kill('SIGTERM');
  await sleep(3000);

  // 2-4 act as a worker on a fresh run (no workers left to compete).
  const run2 = await submit(clusterFile, ['--folds', '5', '--epochs', '1000']);
  const start = await call((cb) => w.startAttempt({ runId: run2, fold: 0, worker: 'bench', delivery: 1 }, cb));
  const attempt = { runId: run2, fold: 0, token: start.token };
  const lat = [];
  for (let i = 1; i <= 200; i++) {
    const t = performance.now();
    await call((cb) => w.reportEpoch({ attempt, metrics: { epoch: i, loss: 0.1, valLoss: 0.1, valMse: 0.1, seconds: 1, imagesPerSec: 100 } }, cb));
    lat.push(performance.now() - t);
  }
  lat.sort((a, b) => a - b);
  result('epoch_report_rtt_p50', lat[99].toFixed(2), 'ms');
  result('epoch_report_rtt_p99', lat[197].toFixed(2), 'ms');

  const mb64 = Buffer.from(new Uint8Array(64 << 20).map((_, i) => (i * 31) % 251));
  const store = createObjectStore(cluster.endpoints.s3);
  let t = performance.now();
  await store.put('bench/direct.bin', mb64);
  const direct = 64 / ((performance.now() - t) / 1000);
  t = performance.now();
  await upload(w, attempt, 1, mb64);
  const via = 64 / ((performance.now() - t) / 1000);
  result('checkpoint_upload_via_coordinator', via.toFixed(1), 'MB/s');
  result('checkpoint_put_direct_s3', direct.toFixed(1), 'MB/s');
  result('upload_ratio', (via / direct).toFixed(3), 'ratio');

  const pid = cluster.coordinatorProcess.pid;
  const base = rss(pid);
  await upload(w, attempt, 2, Buffer.alloc(20 << 20, 3));
  const after20 = hwm(pid);
  await upload(w, attempt, 3, Buffer.alloc(200 << 20, 5));
  const after200 = hwm(pid);
  console.log(
    `coordinator RSS before uploads ${base.toFixed(0)} MiB; peak after a 20 MB upload ${after20.toFixed(0)} MiB, after a 200 MB upload ${after200.toFixed(0)} MiB`,
  );
  result('coordinator_peak_rss_20mb', after20.toFixed(0), 'MiB');
  result('coordinator_peak_rss_200mb', after200.toFixed(0), 'MiB');
  await call((cb) => rc.cancelRun({ runId: run2 }, cb));

  // 5. A worker on the full Fashion-MNIST folds (48,000 training images): peak RSS over the first minute of training.
  if (!values['skip-worker-rss']) {
    await main(['dataset', 'import', 'fashion-mnist', '--folds', '5', '--cluster', clusterFile], captureEnv(dir));
    const p = cluster.addWorker();
    const run3 = await submit(clusterFile, ['--folds', '5', '--epochs', '1']);
    let peak = 0;
    const end = Date.now() + 90_000;
    while (Date.now() < end) {
      await sleep(1000);
      peak = Math.max(peak, hwm(p.pid));
    }
    result('worker_peak_rss_full_fashion_mnist', peak.toFixed(0), 'MiB');
    await call((cb) => rc.cancelRun({ runId: run3 }, cb));
  }
} finally {
  rc.close();
  w.close();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
console.log('');
for (const r of results) console.log(r);
