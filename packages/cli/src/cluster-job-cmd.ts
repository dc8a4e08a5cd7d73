import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { throwIfAborted } from '@cvc/core';
import { initBackend } from '@cvc/tfjs-runtime';
import {
  ClusterJob,
  ClusterJobServiceClient,
  ClusterJobState,
  type Chunk,
  type ClusterJobEvent,
  type ClusterJobProgress,
  type ClusterJobSpec,
  type ListClusterJobsResponse,
  type Run,
} from '@cvc/proto';
import type { CliEnv } from './env.js';
import { choiceOpt, floatOpt, intOpt, parse, positiveInt, refuseFlags } from './args.js';
import { fetchPages, LIST_PAGE_OPTIONS, listScope, moreLine } from './list-pages.js';
import { RemoteError, UsageError } from './errors.js';
import { duration, listTable, num, table } from './format.js';
import { clusterChannel, resolveCluster, runServiceClient } from './cluster-config.js';
import { importedFromCluster, type ImportedVersion } from './imported-input.js';
import { writeClusterJobReport } from './cluster-job-report.js';
import { Progress, type BarUpdate, type ProgressOptions } from './progress.js';
import { followUntilFinal, readStream, unary } from './rpc.js';
import { withEmptyLists } from './run-cmd.js';

/** The fine-tuning methods a clustering job runs on a worker. */
export const CLUSTER_JOB_METHODS = ['dcec', 'idec', 'dec'] as const;

/** The artifacts `cluster-job fetch` downloads, in this order. */
export const CLUSTER_JOB_ARTIFACTS = ['model.json', 'weights.bin', 'assignments.csv'] as const;

const FINAL = [ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, ClusterJobState.CLUSTER_JOB_STATE_FAILED, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED];

/** A job state as the CLI prints it: `running`, `succeeded`, ... */
export const jobStateName = (s: ClusterJobState): string => (ClusterJobState[s] ?? 'UNRECOGNIZED').replace('CLUSTER_JOB_STATE_', '').toLowerCase();

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const share = z.number().min(0).max(1);
const nonNegative = z.number().min(0);
const positive = z.number().gt(0);

/** The flags of `cluster-job submit`, checked before any connection (UsageError naming the flag). */
export function clusterJobSpecFromFlags(values: Record<string, unknown>, positionals: readonly string[]): ClusterJobSpec {
  const runId = positionals[0];
  if (!runId) throw new UsageError('cluster-job submit needs a RUN id: cvc cluster-job submit RUN --method dcec|idec|dec');
  if (positionals.length > 1) throw new UsageError(`cluster-job submit takes one RUN id, got ${positionals.join(' ')}`);
  if (values['method'] === undefined) throw new UsageError('cluster-job submit needs --method dcec|idec|dec');
  const method = choiceOpt(values, 'method', CLUSTER_JOB_METHODS, 'dcec');
  const foldFlag = values['fold'];
  const fold = foldFlag === undefined || foldFlag === 'best' ? undefined : intOpt(values, 'fold', undefined);
  const k = intOpt(values, 'k', undefined, positiveInt);
  if (k !== undefined && k < 2) throw new UsageError(`--k must be >= 2, got ${k}`);
  const gamma = floatOpt(values, 'gamma', nonNegative);
  if (gamma !== undefined && method === 'dec') throw new UsageError('--gamma weighs the reconstruction loss of idec and dcec; dec has none');
  const name = values['name'];
  if (name !== undefined && (typeof name !== 'string' || !NAME.test(name)))
    throw new UsageError(`--name must be 1-64 letters, digits, '-', '_' or '.', got '${typeof name === 'string' ? name : JSON.stringify(name)}'`);
  const dataset = values['dataset'];
  const opt = <T>(key: string, v: T | undefined): Record<string, T> => (v === undefined ? {} : { [key]: v });
  return {
    runId,
    method,
    dataset: typeof dataset === 'string' ? dataset : '',
    name: typeof name === 'string' ? name : '',
    datasetVersion: typeof values['dataset-version'] === 'string' ? values['dataset-version'] : '',
    ...opt('fold', fold),
    ...opt('k', k),
    ...opt('gamma', gamma),
    ...opt('updateInterval', intOpt(values, 'update-interval', undefined, positiveInt)),
    ...opt('tol', floatOpt(values, 'tol', share)),
    ...opt('maxIterations', intOpt(values, 'max-iterations', undefined, positiveInt)),
    ...opt('batchSize', intOpt(values, 'batch-size', undefined, positiveInt)),
    ...opt('learningRate', floatOpt(values, 'learning-rate', positive)),
    ...opt('seed', intOpt(values, 'seed', undefined)),
  };
}

/** A job as `--json` prints it: proto3 JSON with every field, empty lists as []. */
export function clusterJobJson(job: ClusterJob): unknown {
  return withEmptyLists(job, ClusterJob.toJSON(job));
}

const pct = (v: number): string => `${(v * 100).toFixed(2)}%`;
const opt = (v: number | undefined, digits = 4): string => (v === undefined ? '-' : num(v, digits));

/** `loss 0.1234  changed 1.20%  acc 0.6100  nmi 0.5900` for one progress report. */
export function progressDetail(p: ClusterJobProgress): string {
  return [
    `loss ${num(p.loss, 4)}`,
    `changed ${pct(p.changed)}`,
    p.acc !== undefined ? `acc ${num(p.acc, 4)}` : '',
    p.nmi !== undefined ? `nmi ${num(p.nmi, 4)}` : '',
  ]
    .filter(Boolean)
    .join('  ');
}

/** The job's bar: iterations done of the bound, with the latest loss, share changed and scores. */
export function clusterJobBar(job: ClusterJob): BarUpdate {
  const last = job.history[job.history.length - 1];
  const max = last?.maxIterations || job.spec?.maxIterations || 0;
  const detail = [
    'iterations',
    last ? progressDetail(last) : '',
    job.resumedFromIteration > 0 ? `(resumed from ${job.resumedFromIteration})` : '',
    job.attempts > 1 ? `(attempt ${job.attempts})` : '',
  ];
  return {
    label: `job ${job.id} ${job.spec?.method ?? ''} ${jobStateName(job.state)}`,
    value: last?.iteration ?? 0,
    total: max,
    detail: detail.filter(Boolean).join('  '),
  };
}

/** How many of the latest progress reports `cluster-job show` lists (--json has them all). */
export const SHOWN_HISTORY = 20;

/** A job as text: what was asked, where it is, its progress history, its result and how it resumed. */
export function renderClusterJob(job: ClusterJob): string {
  const s = job.spec;
  const lines = [
    `cluster job ${job.id}${s?.name ? ` (${s.name})` : ''}: ${jobStateName(job.state)}`,
    `  ${s?.method ?? '?'} on run ${s?.runId ?? '?'} fold ${job.fold}${s?.fold === undefined ? ' (best)' : ''}, dataset ${s?.dataset || "(the run's)"}${job.datasetVersion ? ` version ${job.datasetVersion}` : ''}`,
    `  k ${s?.k ?? 'default'}, gamma ${s?.gamma ?? 'default'}, update interval ${s?.updateInterval ?? 'default'}, tol ${s?.tol ?? 'default'}, max iterations ${s?.maxIterations ?? 'default'}` +
      (s?.batchSize !== undefined ? `, batch size ${s.batchSize}` : '') +
      (s?.learningRate !== undefined ? `, learning rate ${s.learningRate}` : '') +
      (s?.seed !== undefined ? `, seed ${s.seed}` : ''),
    `  attempts ${job.attempts}${job.worker ? `, worker ${job.worker}` : ''}`,
  ];
  if (job.lastCheckpoint || job.resumedFromIteration > 0)
    lines.push(
      `  resume: last checkpoint at iteration ${job.lastCheckpointIteration}${job.lastCheckpoint ? ` (${job.lastCheckpoint})` : ''}; ` +
        (job.resumedFromIteration > 0 ? `the latest attempt resumed from iteration ${job.resumedFromIteration}` : 'the latest attempt started fresh'),
    );
  if (job.history.length > 0) {
    const shown = job.history.slice(-SHOWN_HISTORY);
    lines.push(
      '',
      table(
        ['iteration', 'loss', 'cluster', 'recon', 'changed', 'acc', 'nmi', 'ari', 'seconds'],
        shown.map((p) => [
          `${p.iteration}/${p.maxIterations}`,
          num(p.loss, 4),
          num(p.clusterLoss, 4),
          num(p.reconstructionLoss, 4),
          pct(p.changed),
          opt(p.acc),
          opt(p.nmi),
          opt(p.ari),
          duration(p.seconds),
        ]),
      ),
    );
    if (job.history.length > shown.length) lines.push(`(${job.history.length - shown.length} earlier reports left out; --json lists all)`);
  }
  const r = job.result;
  if (r && (r.encoder || r.assignments || r.iterations > 0)) {
    lines.push('', `result: ${r.iterations} iterations, stopped: ${r.stopReason || '?'}`);
    if (r.acc !== undefined || r.initialAcc !== undefined)
      lines.push(
        `  k-means on the source codes: acc ${opt(r.initialAcc)} nmi ${opt(r.initialNmi)}; fine-tuned: acc ${opt(r.acc)} nmi ${opt(r.nmi)} ari ${opt(r.ari)}`,
      );
    if (r.encoder) lines.push(`  encoder: ${r.encoder}`);
    if (r.assignments) lines.push(`  assignments: ${r.assignments}`);
    for (const [name, key] of Object.entries(r.artifacts)) lines.push(`  ${name}: ${key}`);
    if (job.state === ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED) lines.push(`  cvc cluster-job fetch ${job.id} downloads them`);
  }
  if (job.checkpointFallback) lines.push(`checkpoint fallback: ${job.checkpointFallback}`);
  if (job.error) lines.push(`error: ${job.error}`);
  return lines.join('\n') + '\n';
}

/** The table of `cluster-job list`. */
export function renderClusterJobList(jobs: readonly ClusterJob[]): string {
  return (
    listTable(
      ['job', 'state', 'method', 'run', 'fold', 'iterations', 'acc', 'name'],
      jobs.map((j) => {
        const last = j.history[j.history.length - 1];
        return [
          j.id,
          jobStateName(j.state),
          j.spec?.method ?? '',
          j.spec?.runId ?? '',
          String(j.fold),
          last ? `${last.iteration}/${last.maxIterations}` : '-',
          opt(j.result?.acc ?? last?.acc),
          j.spec?.name ?? '',
        ];
      }),
      'no clustering jobs yet (cvc cluster-job submit RUN --method dcec starts one)',
    ) + '\n'
  );
}

/**
 * Follows a job until it ends: one bar (iterations, loss, share changed,
 * scores), redrawn on a terminal and logged per change elsewhere. An abort of
 * `signal` stops watching (the job goes on) with a CancelledError.
 */
export async function watchClusterJob(
  c: ClusterJobServiceClient,
  jobId: string,
  env: CliEnv,
  signal?: AbortSignal,
  opts: ProgressOptions = {},
): Promise<ClusterJob> {
  const bars = new Progress(env.stderr, opts);
  let logged = '';
  return followUntilFinal(signal, env.stderr, {
    what: `cluster job ${jobId}`,
    noun: 'job',
    again: `cvc cluster-job watch ${jobId} follows it again, cvc cluster-job cancel ${jobId} stops it`,
    stream: c.watchClusterJob({ jobId }),
    pick: (e: ClusterJobEvent) => e.job,
    onEvent: (job, e) => {
      const state = `${jobStateName(job.state)}${job.attempts > 1 ? ` (attempt ${job.attempts})` : ''}${job.resumedFromIteration > 0 ? `, resumed from iteration ${job.resumedFromIteration}` : ''}`;
      if (state !== logged) {
        bars.log(`job ${jobId}: ${state}${e.reason ? ` (${e.reason})` : ''}`);
        logged = state;
      }
      bars.set('job', clusterJobBar(job));
    },
    stop: () => bars.stop(),
    isFinal: (job) => FINAL.includes(job.state),
    refetch: () => unary<ClusterJob>(signal, `cluster-job show ${jobId}`, (cb) => c.getClusterJob({ jobId }, cb)),
  });
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Downloads one artifact of a job, checking the sha256 the coordinator sends last. */
export async function downloadClusterArtifact(
  c: ClusterJobServiceClient,
  jobId: string,
  name: string,
  bars: Progress,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let expected = '';
  let size = 0;
  let got = 0;
  const kb = (n: number): number => Math.round(n / 1024);
  await readStream(signal, `downloading ${name} of cluster job ${jobId}`, c.downloadClusterArtifact({ jobId, name }), (m: Chunk) => {
    if (m.size > 0) size = m.size;
    if (m.data.length > 0) parts.push(m.data);
    got += m.data.length;
    if (m.sha256) expected = m.sha256;
    bars.set(name, { label: name, value: kb(got), total: kb(Math.max(size, got)), detail: 'KiB' });
  });
  const bytes = new Uint8Array(Buffer.concat(parts));
  if (!expected || sha256(bytes) !== expected)
    throw new RemoteError(
      'CHECKSUM',
      `${name} of cluster job ${jobId}: sha256 ${sha256(bytes)} does not match the ${expected || 'missing'} sent by the coordinator`,
    );
  if (size > 0 && bytes.length !== size)
    throw new RemoteError('CHECKSUM', `${name} of cluster job ${jobId}: ${bytes.length} bytes, the coordinator announced ${size}`);
  return bytes;
}

/**
 * Downloads a finished job's encoder and assignments into `out`:
 * model.json + weights.bin (a TensorFlow.js layers model that
 * `cvc cluster --encoder` and `cvc embed` read), assignments.csv, and
 * metadata.json (the job, its scores and every file's sha256).
 */
export async function fetchClusterJob(
  c: ClusterJobServiceClient,
  job: ClusterJob,
  out: string,
  env: CliEnv,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  if (job.state !== ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED)
    throw new RemoteError('NOT_FINISHED', `cluster job ${job.id} is ${jobStateName(job.state)}; fetch needs a succeeded job (cvc cluster-job watch ${job.id})`);
  const files: Record<string, Uint8Array> = {};
  const bars = new Progress(env.stderr);
  try {
    for (const name of CLUSTER_JOB_ARTIFACTS) {
      throwIfAborted(signal, `cluster-job fetch ${job.id}`);
      files[name] = await downloadClusterArtifact(c, job.id, name, bars, signal);
    }
  } finally {
    bars.stop();
  }
  await mkdir(out, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    const tmp = join(out, `${name}.${process.pid}.tmp`);
    await writeFile(tmp, bytes);
    await rename(tmp, join(out, name));
  }
  const meta = {
    clusterJob: job.id,
    run: job.spec?.runId,
    fold: job.fold,
    method: job.spec?.method,
    dataset: job.spec?.dataset,
    datasetVersion: job.datasetVersion,
    k: job.spec?.k,
    iterations: job.result?.iterations,
    stopReason: job.result?.stopReason,
    scores: { initialAcc: job.result?.initialAcc, initialNmi: job.result?.initialNmi, acc: job.result?.acc, nmi: job.result?.nmi, ari: job.result?.ari },
    ...(job.modelConfigJson ? { modelConfig: JSON.parse(job.modelConfigJson) as unknown } : {}),
    sha256: Object.fromEntries(Object.entries(files).map(([n, b]) => [n, sha256(b)])),
  };
  await writeFile(join(out, 'metadata.json'), JSON.stringify(meta, null, 2) + '\n');
  return [...Object.keys(files), 'metadata.json'];
}

/** How the command reaches the coordinator and the job's dataset (tests pass fakes). */
export interface ClusterJobDeps {
  readonly connect: (clusterFile: string | undefined) => Promise<ClusterJobServiceClient>;
  /** The imported dataset version a job clustered (`fetch --report`); default: from the cluster's object store. */
  readonly imported?: (job: ClusterJob, clusterFile: string | undefined, signal: AbortSignal | undefined) => Promise<ImportedVersion>;
}

/** The dataset version a job clustered, from the cluster: its spec's dataset, else its run's. */
async function jobDataset(job: ClusterJob, clusterFile: string | undefined, signal: AbortSignal | undefined): Promise<ImportedVersion> {
  const cluster = await resolveCluster(clusterFile);
  let dataset = job.spec?.dataset ?? '';
  if (!dataset) {
    const runs = await runServiceClient(cluster);
    try {
      const runId = job.spec?.runId ?? '';
      dataset = (await unary<Run>(signal, `run show ${runId}`, (cb) => runs.getRun({ runId }, cb))).spec?.dataset ?? '';
    } finally {
      runs.close();
    }
  }
  return importedFromCluster(cluster, dataset, job.datasetVersion || undefined);
}

/** A ClusterJobService client with the cluster's TLS settings and user token (cluster.json or CVC_* variables). */
export async function clusterJobServiceClient(clusterFile: string | undefined): Promise<ClusterJobServiceClient> {
  const cluster = await resolveCluster(clusterFile);
  const ch = await clusterChannel(cluster);
  return new ClusterJobServiceClient(cluster.coordinator, ch.credentials, ch.options);
}

const SUBCOMMANDS = 'submit, watch, show, list, cancel or fetch';

/** `cvc cluster-job submit|watch|show|list|cancel|fetch` */
export async function clusterJobCommand(
  argv: string[],
  env: CliEnv,
  signal?: AbortSignal,
  deps: ClusterJobDeps = { connect: clusterJobServiceClient },
): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      cluster: { type: 'string' },
      fold: { type: 'string' },
      method: { type: 'string' },
      k: { type: 'string' },
      gamma: { type: 'string' },
      'update-interval': { type: 'string' },
      tol: { type: 'string' },
      'max-iterations': { type: 'string' },
      'batch-size': { type: 'string' },
      'learning-rate': { type: 'string' },
      seed: { type: 'string' },
      dataset: { type: 'string' },
      'dataset-version': { type: 'string' },
      name: { type: 'string' },
      watch: { type: 'boolean' },
      json: { type: 'boolean' },
      out: { type: 'string' },
      report: { type: 'string' },
      ...LIST_PAGE_OPTIONS,
    },
    `cluster-job ${sub ?? ''}`,
  );
  if (sub === undefined || !['submit', 'watch', 'show', 'list', 'cancel', 'fetch'].includes(sub))
    throw new UsageError(`unknown 'cluster-job ${sub ?? ''}' (use ${SUBCOMMANDS})`);
  const submitOnly = [
    'fold',
    'method',
    'k',
    'gamma',
    'update-interval',
    'tol',
    'max-iterations',
    'batch-size',
    'learning-rate',
    'seed',
    'dataset',
    'dataset-version',
    'name',
    'watch',
  ];
  if (sub !== 'submit') for (const f of submitOnly) if (values[f] !== undefined) throw new UsageError(`--${f} applies to cluster-job submit`);
  for (const f of ['out', 'report']) if (sub !== 'fetch' && values[f] !== undefined) throw new UsageError(`--${f} applies to cluster-job fetch`);
  if (sub !== 'list') refuseFlags(values, Object.keys(LIST_PAGE_OPTIONS), 'cluster-job list');
  const scope = sub === 'list' ? listScope(values) : undefined;
  const spec = sub === 'submit' ? clusterJobSpecFromFlags(values, positionals) : undefined;
  const id = positionals[0];
  if (sub !== 'submit' && sub !== 'list' && !id) throw new UsageError(`cluster-job ${sub} needs a JOB id`);
  const c = await deps.connect(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  const print = (job: ClusterJob): void => {
    env.stdout.write(values['json'] ? JSON.stringify(clusterJobJson(job), null, 2) + '\n' : renderClusterJob(job));
  };
  const exitOf = (job: ClusterJob): number => (job.state === ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED ? 0 : 1);
  try {
    switch (sub) {
      case 'submit': {
        const job = await unary<ClusterJob>(signal, 'cluster-job submit', (cb) => c.submitClusterJob({ spec }, cb));
        env.stderr.write(`submitted cluster job ${job.id} (${job.spec?.method} on run ${job.spec?.runId} fold ${job.fold})\n`);
        if (!values['watch']) {
          env.stdout.write(values['json'] ? JSON.stringify(clusterJobJson(job), null, 2) + '\n' : `${job.id}\n`);
          return 0;
        }
        const done = await watchClusterJob(c, job.id, env, signal);
        print(done);
        return exitOf(done);
      }
      case 'watch': {
        const done = await watchClusterJob(c, id as string, env, signal);
        print(done);
        return exitOf(done);
      }
      case 'show':
        print(await unary<ClusterJob>(signal, `cluster-job show ${id}`, (cb) => c.getClusterJob({ jobId: id as string }, cb)));
        return 0;
      case 'cancel':
        print(await unary<ClusterJob>(signal, `cluster-job cancel ${id}`, (cb) => c.cancelClusterJob({ jobId: id as string }, cb)));
        return 0;
      case 'list': {
        const { items: jobs, more } = await fetchPages(scope ?? listScope({}), async (req) => {
          const a = await unary<ListClusterJobsResponse>(signal, 'cluster-job list', (cb) => c.listClusterJobs(req, cb));
          return { ...a, items: a.jobs };
        });
        env.stdout.write(values['json'] ? JSON.stringify(jobs.map(clusterJobJson), null, 2) + '\n' : renderClusterJobList(jobs));
        env.stderr.write(moreLine(more, 'cvc cluster-job list'));
        return 0;
      }
      default: {
        const job = await unary<ClusterJob>(signal, `cluster-job fetch ${id}`, (cb) => c.getClusterJob({ jobId: id as string }, cb));
        const out = typeof values['out'] === 'string' ? values['out'] : join('cluster-jobs', job.id);
        const files = await fetchClusterJob(c, job, out, env, signal);
        env.stdout.write(`cluster job ${job.id} (${job.spec?.method} on run ${job.spec?.runId} fold ${job.fold}) written to ${out}: ${files.join(', ')}\n`);
        const report = values['report'];
        if (typeof report === 'string') {
          const clusterFile = typeof values['cluster'] === 'string' ? values['cluster'] : undefined;
          const imported = await (deps.imported ?? jobDataset)(job, clusterFile, signal);
          await initBackend('auto');
          await writeClusterJobReport(report, out, job, imported, env, signal);
        }
        return 0;
      }
    }
  } finally {
    c.close();
  }
}
