#!/usr/bin/env node
// npm run bench:load [-- --workers 50 --runs 10 --folds 5 --epochs 5 --epoch-ms 400]
//
// Load on one coordinator (a real process on the embedded default, with TLS,
// tokens, nats-server and the S3 server): simulated workers, each with its own
// NATS connection (the real task queue) and its own gRPC channel (the worker's
// real CoordinatorClient, with its retries), pull fold tasks of concurrent CV
// runs. Training is replaced by a timed loop that reports each epoch and
// uploads a real seed-mnist checkpoint (its actual size) after it, then the
// best checkpoint and the final metrics. A benchmark tool only, not a product mode.
//
// Last lines, machine-readable:
//   RESULT name=reports_per_s value=… unit=1/s
//   RESULT name=checkpoint_mb_per_s value=… unit=MB/s
//   RESULT name=report_latency_p99 value=… unit=ms   (and _p50)
//   RESULT name=coordinator_cpu value=… unit=s  /  coordinator_cpu_util value=… unit=cores
//   RESULT name=coordinator_peak_rss value=… unit=MiB
//   RESULT name=uploads_deferred_then_retried / uploads_stored value=… unit=calls
//   RESULT name=runs_completed value=… unit=runs     (every run succeeded with all its folds, every checkpoint stored once; exit 1 otherwise)
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CheckpointKind, FoldState, RunState } from '../packages/proto/dist/index.js';
import { main, resolveCluster, runServiceClient } from '../packages/cli/dist/index.js';
import { captureEnv, startLocalCluster } from '../packages/cli/dist/testing.js';
import { grpcClientSetup } from '../packages/security/dist/index.js';
import { connectNats, createTaskQueue } from '../packages/messaging/dist/index.js';
import { CoordinatorClient } from '../services/worker/dist/index.js';
import { initBackend } from '../packages/tfjs-runtime/dist/index.js';
import { FoldTrainer } from '../packages/model/dist/index.js';
import { randomImageSet } from '../packages/data/dist/testing.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '50' },
    runs: { type: 'string', default: '10' },
    folds: { type: 'string', default: '5' },
    epochs: { type: 'string', default: '5' },
    'epoch-ms': { type: 'string', default: '400' },
  },
});
const WORKERS = Number(values.workers);
const RUNS = Number(values.runs);
const FOLDS = Number(values.folds);
const EPOCHS = Number(values.epochs);
const EPOCH_MS = Number(values['epoch-ms']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const call = (f) => new Promise((res, rej) => f((e, r) => (e ? rej(e) : res(r))));
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
/** user+system CPU seconds of a process, from /proc. */
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const peakRssMiB = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

// A real checkpoint: what a seed-mnist worker uploads after an epoch (weights,
// Adam's two moments, the best weights so far), from one short real epoch.
await initBackend('wasm');
const trainer = FoldTrainer.create({ model: 'seed-mnist', epochs: 1, seed: 1 });
await trainer.fit({ train: randomImageSet(64, 28, 28, 1, 1), val: randomImageSet(32, 28, 28, 1, 2) });
const checkpoint = await trainer.checkpoint();
trainer.dispose();

const dir = await mkdtemp(join(tmpdir(), 'cvc-bench-load-'));
const cluster = await startLocalCluster({ dir, workers: 0, logLevel: 'warn' });
const clusterFile = join(dir, 'cluster.json');
const endpoints = await resolveCluster(clusterFile);
const rc = await runServiceClient(endpoints);
const pid = cluster.coordinatorProcess.pid;
let failed = false;
try {
  const imp = captureEnv(dir);
  if ((await main(['dataset', 'import', 'fashion-mnist', '--folds', String(FOLDS), '--limit', '1000', '--cluster', clusterFile], imp)) !== 0)
    throw new Error(imp.err());
  console.log(
    `checkpoint ${(checkpoint.length / 1e6).toFixed(2)} MB; ${WORKERS} simulated workers, ${RUNS} runs x ${FOLDS} folds x ${EPOCHS} epochs of ${EPOCH_MS} ms`,
  );

  // The simulated workers: real NATS connections and task queues, real gRPC clients (worker token, TLS).
  const setup = await grpcClientSetup({ ...endpoints.security, token: cluster.credentials.workerToken });
  const latencies = [];
  let uploadedBytes = 0;
  let reports = 0;
  let stop = false;
  const conns = [];
  const sims = [];
  for (let i = 0; i < WORKERS; i++) {
    const nc = await connectNats(cluster.endpoints.natsUrl, { name: `sim-${i}`, user: cluster.credentials.natsUser, pass: cluster.credentials.natsPass });
    conns.push(nc);
    const queue = await createTaskQueue(nc);
    // Its own channel (local subchannel pool): 50 connections, as 50 pods would have.
    const client = new CoordinatorClient(cluster.endpoints.coordinator, {
      credentials: setup.credentials,
      options: { ...setup.options, 'grpc.use_local_subchannel_pool': 1 },
    });
    sims.push(
      (async () => {
        while (!stop) {
          const d = await queue.next(1000);
          if (!d) continue;
          const { runId, fold } = d.task;
          const start = await client.startAttempt({ runId, fold, worker: `sim-${i}`, delivery: d.delivery });
          if (!start.proceed) {
            await d.ack();
            continue;
          }
          const attempt = { runId, fold, token: start.token };
          for (let epoch = 1; epoch <= EPOCHS; epoch++) {
            await sleep(EPOCH_MS);
            d.working();
            const loss = 0.2 / epoch;
            const t0 = performance.now();
            await client.reportEpoch(attempt, {
              epoch,
              loss,
              valLoss: loss * 1.1,
              valMse: loss * 1.1,
              seconds: EPOCH_MS / 1000,
              imagesPerSec: 800 / (EPOCH_MS / 1000),
            });
            latencies.push(performance.now() - t0);
            reports++;
            await client.uploadCheckpoint(attempt, epoch, CheckpointKind.CHECKPOINT_KIND_EPOCH, checkpoint);
            uploadedBytes += checkpoint.length;
          }
          await client.uploadCheckpoint(attempt, EPOCHS, CheckpointKind.CHECKPOINT_KIND_BEST, checkpoint);
          uploadedBytes += checkpoint.length;
          const m = { loss: 0.05, mse: 0.05, count: 100 };
          await client.finishFold({ attempt, bestEpoch: EPOCHS, train: m, val: { ...m, loss: 0.05 + fold / 1000 }, test: m });
          await d.ack();
        }
        client.close();
      })(),
    );
  }

  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const runIds = [];
  for (let r = 0; r < RUNS; r++) {
    const env = captureEnv(dir);
    if (
      (await main(
        [
          'run',
          'submit',
          '--dataset',
          'fashion-mnist',
          '--model',
          'seed-mnist',
          '--folds',
          String(FOLDS),
          '--epochs',
          String(EPOCHS),
          '--name',
          `load-${r}`,
          '--cluster',
          clusterFile,
        ],
        env,
      )) !== 0
    )
      throw new Error(env.err());
    runIds.push(env.out().trim());
  }
  let lastLine = 0;
  let runs = [];
  for (;;) {
    runs = await Promise.all(runIds.map((runId) => call((cb) => rc.getRun({ runId }, cb))));
    const finished = runs.filter((r) => r.state !== RunState.RUN_STATE_PENDING && r.state !== RunState.RUN_STATE_RUNNING).length;
    if (performance.now() - lastLine > 5000) {
      lastLine = performance.now();
      console.log(
        `  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${reports} reports, ${(uploadedBytes / 1e6).toFixed(0)} MB uploaded, ${finished}/${RUNS} runs finished`,
      );
    }
    if (finished === RUNS) break;
    if (performance.now() - t0 > 900_000) throw new Error('the runs did not finish within 15 minutes');
    await sleep(200);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const peak = peakRssMiB(pid);
  stop = true;
  await Promise.all(sims);
  await Promise.all(conns.map((c) => c.close()));

  // Uploads the coordinator deferred (RESOURCE_EXHAUSTED at its concurrent-upload limit; the workers retried them).
  const targets = JSON.parse(readFileSync(join(dir, 'prometheus-targets.json'), 'utf8'));
  const metricsText = await (await fetch(`http://${targets[0].targets[0]}/metrics`)).text();
  const metric = (re) => Number(re.exec(metricsText)?.[1] ?? 0);
  const deferred = metric(/cvc_grpc_requests_total\{method="UploadCheckpoint",code="RESOURCE_EXHAUSTED"\} (\d+)/);
  const stored = metric(/cvc_grpc_requests_total\{method="UploadCheckpoint",code="OK"\} (\d+)/);
  const ok = runs.filter(
    (r) =>
      r.state === RunState.RUN_STATE_SUCCEEDED &&
      r.folds.length === FOLDS &&
      r.folds.every((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED && f.epochReports === EPOCHS && f.attempts === 1) &&
      r.summary?.encoder,
  );
  for (const r of runs)
    if (!ok.includes(r))
      console.log(
        `run ${r.id}: ${RunState[r.state]} ${r.error} folds ${r.folds.map((f) => `${FoldState[f.state]}/${f.epochReports}/${f.attempts}`).join(' ')}`,
      );
  failed = ok.length !== RUNS || stored !== RUNS * FOLDS * (EPOCHS + 1);
  if (stored !== RUNS * FOLDS * (EPOCHS + 1)) console.log(`expected ${RUNS * FOLDS * (EPOCHS + 1)} stored checkpoints, the coordinator counted ${stored}`);
  const results = [
    ['reports_per_s', (reports / wall).toFixed(1), '1/s'],
    ['checkpoint_mb_per_s', (uploadedBytes / 1e6 / wall).toFixed(1), 'MB/s'],
    ['report_latency_p50', quantile(latencies, 0.5).toFixed(2), 'ms'],
    ['report_latency_p99', quantile(latencies, 0.99).toFixed(2), 'ms'],
    ['coordinator_cpu', cpu.toFixed(1), 's'],
    ['coordinator_cpu_util', (cpu / wall).toFixed(2), 'cores'],
    ['coordinator_peak_rss', peak.toFixed(0), 'MiB'],
    ['wall', wall.toFixed(1), 's'],
    ['uploads_deferred_then_retried', String(deferred), 'calls'],
    ['uploads_stored', String(stored), 'calls'],
    ['runs_completed', `${ok.length}/${RUNS}`, 'runs'],
  ];
  console.log(
    `\n${reports} epoch reports and ${(uploadedBytes / 1e6).toFixed(0)} MB of checkpoints in ${wall.toFixed(1)} s; ${ok.length} of ${RUNS} runs succeeded with ${FOLDS} folds each`,
  );
  for (const [name, value, unit] of results) console.log(`RESULT name=${name} value=${value} unit=${unit}`);
} finally {
  rc.close();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
