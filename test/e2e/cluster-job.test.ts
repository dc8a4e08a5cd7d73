import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceError } from '@grpc/grpc-js';
import { ClusterJob, ClusterJobServiceClient, ClusterJobState, Run, RunState } from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster, type LocalCluster } from '@cvc/cli/testing';
import { FASHION_FOLDERS, writeFashionFolder } from './fashion-folder.js';
import { channel, until } from './helpers.js';

function jobClient(cluster: LocalCluster): ClusterJobServiceClient {
  const ch = channel(cluster, cluster.credentials.userToken);
  return new ClusterJobServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
}

function getJob(c: ClusterJobServiceClient, jobId: string): Promise<ClusterJob> {
  return new Promise((resolve, reject) => c.getClusterJob({ jobId }, (e: ServiceError | null, j: ClusterJob) => (e ? reject(e) : resolve(j))));
}

/** The rows of an RFC 4180 CSV (quoted fields with doubled quotes and commas). */
function parseCsv(text: string): string[][] {
  return text
    .trimEnd()
    .split('\n')
    .map((line) =>
      [...line.matchAll(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g)].map((m) =>
        (m[1] as string).startsWith('"') ? (m[1] as string).slice(1, -1).replace(/""/g, '"') : (m[1] as string),
      ),
    );
}

test('a DCEC clustering job on the local cluster: its worker SIGKILLed after a job checkpoint, a new worker resumes it, encoder and assignments trace to the image files; a long job cancelled while it runs frees the worker', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-cjob-'));
  // A short ack wait: the killed worker's task comes back within seconds.
  const cluster = await startLocalCluster({ dir, workers: 1, backend: 'wasm', ackWaitMs: 4000 });
  const c = jobClient(cluster);
  const clusterFile = join(dir, 'cluster.json');
  const transcript: string[] = [];
  const cli = async (args: string[], what: string): Promise<{ out: string; err: string }> => {
    const env = captureEnv(dir);
    const code = await main([...args, '--cluster', clusterFile], env);
    // JSON answers are parsed below; the transcript keeps what a person reads.
    transcript.push(`$ cvc ${args.join(' ')}`, env.err().trimEnd(), args.includes('--json') ? '(JSON output left out)' : env.out().trimEnd());
    assert.equal(code, 0, `${what}: ${env.err()}`);
    return { out: env.out(), err: env.err() };
  };
  try {
    // 200 Fashion-MNIST images as a photo folder (150 in class folders, 50 in test/), imported at 28x28 grey.
    const photos = join(dir, 'photos');
    const { valid } = await writeFashionFolder(photos, join(dir, 'cache'), 15, 5);
    assert.equal(valid.size, 200);
    await cli(['dataset', 'import', photos, '--name', 'photos', '--size', '28x28', '--channels', '1', '--folds', '2', '--skip-invalid'], 'import');
    const sub = await cli(
      [
        'run',
        'submit',
        '--dataset',
        'photos',
        '--model',
        'cae',
        '--filters',
        '8,16',
        '--code-size',
        '10',
        '--folds',
        '2',
        '--epochs',
        '1',
        '--watch',
        '--json',
      ],
      'run',
    );
    const run = Run.fromJSON(JSON.parse(sub.out));
    assert.equal(run.state, RunState.RUN_STATE_SUCCEEDED, run.error);

    // DCEC with a refresh (and a job checkpoint) every 5 batches, tol 0 so it runs its whole budget.
    const submitted = await cli(
      [
        'cluster-job',
        'submit',
        run.id,
        '--method',
        'dcec',
        '--k',
        '10',
        '--update-interval',
        '5',
        '--max-iterations',
        '150',
        '--batch-size',
        '32',
        '--tol',
        '0',
      ],
      'submit',
    );
    const jobId = submitted.out.trim();
    assert.match(jobId, /^dcec-/);
    // Follow it with the CLI meanwhile (its log lines go into the transcript).
    const watchEnv = captureEnv(dir);
    const watching = main(['cluster-job', 'watch', jobId, '--cluster', clusterFile], watchEnv);

    const checkpointed = await until(
      'the first job checkpoint',
      () => getJob(c, jobId),
      (j) => j.lastCheckpointIteration > 0 || (j.state !== ClusterJobState.CLUSTER_JOB_STATE_RUNNING && j.state !== ClusterJobState.CLUSTER_JOB_STATE_PENDING),
      60_000,
    );
    assert.equal(checkpointed.state, ClusterJobState.CLUSTER_JOB_STATE_RUNNING, 'the job was still running at its first checkpoint');
    cluster.workers[0]?.kill('SIGKILL');
    const atKill = await getJob(c, jobId);
    t.diagnostic(
      `worker SIGKILLed at job iteration ${atKill.history[atKill.history.length - 1]?.iteration ?? 0}, last checkpoint ${atKill.lastCheckpointIteration}`,
    );
    transcript.push(`# worker local-0 SIGKILLed; job checkpoint at iteration ${atKill.lastCheckpointIteration}; starting a new worker`);
    cluster.addWorker();

    assert.equal(await watching, 0, watchEnv.err());
    transcript.push(`$ cvc cluster-job watch ${jobId}`, watchEnv.err().trimEnd(), watchEnv.out().trimEnd());
    await cli(['cluster-job', 'list'], 'list');
    const job = ClusterJob.fromJSON(JSON.parse((await cli(['cluster-job', 'show', jobId, '--json'], 'show')).out));
    assert.equal(job.state, ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, job.error);
    assert.equal(job.attempts, 2);
    assert.ok(job.resumedFromIteration > 0, `resumed from iteration ${job.resumedFromIteration}`);
    assert.ok(job.resumedFromIteration >= atKill.lastCheckpointIteration);
    assert.equal(job.result?.iterations, 150);
    assert.equal(job.result?.stopReason, 'max-iterations');
    assert.ok(job.result?.acc !== undefined && job.result.acc > 0 && job.result.acc <= 1);
    const its = job.history.map((h) => h.iteration);
    assert.deepEqual(
      its,
      [...its].sort((a, b) => a - b),
      'one progress entry per refresh, in order',
    );
    assert.equal(its[its.length - 1], 150);

    const out = join(dir, 'fetched');
    await cli(['cluster-job', 'fetch', jobId, '--out', out], 'fetch');
    const model = JSON.parse(await readFile(join(out, 'model.json'), 'utf8')) as { format?: string; weightsManifest?: unknown };
    assert.ok(model.weightsManifest, 'a TensorFlow.js layers model');
    assert.ok((await stat(join(out, 'weights.bin'))).size > 0);

    // One row per record of the imported version (train then test), each naming its image file and class folder.
    const [header, ...rows] = parseCsv(await readFile(join(out, 'assignments.csv'), 'utf8'));
    assert.deepEqual(header, ['record', 'split', 'fold', 'index', 'cluster', 'confidence', 'label', 'class', 'source']);
    assert.equal(rows.length, 200);
    assert.deepEqual(
      rows.map((r) => Number(r[0])),
      Array.from({ length: 200 }, (_, i) => i),
    );
    assert.deepEqual(rows.map((r) => r[8]).sort(), [...valid.keys()].sort(), 'every image file exactly once');
    for (const r of rows) {
      const [, split, fold, , cluster, confidence, , className, source] = r;
      assert.ok((await stat(join(photos, source as string))).isFile(), source);
      assert.equal(className, FASHION_FOLDERS[valid.get(source as string) as number], `${source}: class`);
      assert.equal(split === 'test', (source as string).startsWith('test/'), `${source}: split ${split}`);
      assert.equal(fold === '', split === 'test');
      assert.ok(Number(cluster) >= 0 && Number(cluster) < 10 && Number(confidence) > 0 && Number(confidence) <= 1, r.join(','));
    }

    // Cancel: a job with a budget it would not finish in minutes is cancelled while it runs. The worker stops after its
    // next refresh and acknowledges the task (it is not redelivered), so the one worker is free for the next job.
    const long = (
      await cli(
        [
          'cluster-job',
          'submit',
          run.id,
          '--method',
          'dec',
          '--k',
          '10',
          '--update-interval',
          '5',
          '--max-iterations',
          '1000000',
          '--batch-size',
          '32',
          '--tol',
          '0',
        ],
        'submit a long job',
      )
    ).out.trim();
    const started = await until(
      'the long job reporting progress',
      () => getJob(c, long),
      (j) => j.history.length > 0 || j.state !== ClusterJobState.CLUSTER_JOB_STATE_PENDING,
      60_000,
    );
    assert.equal(started.state, ClusterJobState.CLUSTER_JOB_STATE_RUNNING, started.error);
    const cancelled = ClusterJob.fromJSON(JSON.parse((await cli(['cluster-job', 'cancel', long, '--json'], 'cancel')).out));
    assert.equal(cancelled.state, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED);
    const shortJob = (
      await cli(
        ['cluster-job', 'submit', run.id, '--method', 'dec', '--k', '10', '--update-interval', '5', '--max-iterations', '10', '--batch-size', '32'],
        'a job after the cancel',
      )
    ).out.trim();
    const next = await until(
      'the job after the cancelled one (one worker: it must have let the cancelled task go)',
      () => getJob(c, shortJob),
      (j) =>
        [ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, ClusterJobState.CLUSTER_JOB_STATE_FAILED, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED].includes(j.state),
      120_000,
    );
    assert.equal(next.state, ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, next.error);
    const after = await getJob(c, long);
    assert.equal(after.state, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED);
    assert.equal(after.attempts, 1, 'the cancelled job was not delivered again');
    assert.ok((after.history[after.history.length - 1]?.iteration ?? 0) < 1_000_000);
    assert.equal(after.result, undefined, 'a cancelled job has no result');
    const refused = captureEnv(dir);
    assert.notEqual(await main(['cluster-job', 'fetch', long, '--out', join(dir, 'nothing'), '--cluster', clusterFile], refused), 0);
    assert.match(refused.err(), new RegExp(`${long} is cancelled; fetch needs a succeeded job`), refused.err());
    transcript.push(`$ cvc cluster-job fetch ${long}`, refused.err().trimEnd());
    await assert.rejects(stat(join(dir, 'nothing')), 'a refused fetch writes nothing');

    await writeFile(join(dir, 'transcript.txt'), transcript.join('\n') + '\n');
    if (process.env['CVC_CJOB_TRANSCRIPT']) await writeFile(process.env['CVC_CJOB_TRANSCRIPT'], transcript.filter((l) => l !== '').join('\n') + '\n');
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
