import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { RunState, type Run } from '@cvc/proto';
import { RunServiceClient, SweepServiceClient, WorkerServiceClient, type Sweep } from '@cvc/proto';
import { bearerInterceptor } from '@cvc/security';
import { createObjectStore, type ObjectStore } from '@cvc/storage';
import assert from 'node:assert/strict';
import { main } from '@cvc/cli';
import { captureEnv, type LocalCluster } from '@cvc/cli/testing';

/** TLS to the local cluster's coordinator (its generated CA), with `token` (none: no authorization header). */
export function channel(cluster: LocalCluster, token: string | undefined): { creds: ChannelCredentials; options: ChannelOptions } {
  return {
    creds: credentials.createSsl(readFileSync(cluster.pki.caFile)),
    options: {
      ...(token ? { interceptors: [bearerInterceptor(token)] } : {}),
      'grpc.ssl_target_name_override': 'localhost',
      'grpc.default_authority': 'localhost',
    },
  };
}

/** A RunService client with the user token (or `token`; '' for none). */
export function runClient(cluster: LocalCluster, token: string | undefined = cluster.credentials.userToken): RunServiceClient {
  const ch = channel(cluster, token);
  return new RunServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
}

/** A SweepService client with the user token (or `token`; '' for none). */
export function sweepClient(cluster: LocalCluster, token: string | undefined = cluster.credentials.userToken): SweepServiceClient {
  const ch = channel(cluster, token);
  return new SweepServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
}

export function getSweep(c: SweepServiceClient, sweepId: string): Promise<Sweep> {
  return new Promise((resolve, reject) => c.getSweep({ sweepId }, (e: ServiceError | null, s: Sweep) => (e ? reject(e) : resolve(s))));
}

/** A WorkerService client with the worker token (or `token`). */
export function workerClient(cluster: LocalCluster, token: string | undefined = cluster.credentials.workerToken): WorkerServiceClient {
  const ch = channel(cluster, token);
  return new WorkerServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
}

/** The states a run ends in (FINALIZING and CANCELLING come before them; STOPPED: stopped early by its sweep). */
export const FINAL_RUN_STATES: readonly RunState[] = [
  RunState.RUN_STATE_SUCCEEDED,
  RunState.RUN_STATE_FAILED,
  RunState.RUN_STATE_CANCELLED,
  RunState.RUN_STATE_STOPPED,
];

/** Whether `r` has ended (its summary, encoder and report are written by then). */
export const isFinal = (r: Run | undefined): r is Run => r !== undefined && FINAL_RUN_STATES.includes(r.state);

export function getRun(c: RunServiceClient, runId: string): Promise<Run> {
  return new Promise((resolve, reject) => c.getRun({ runId }, (e: ServiceError | null, r: Run) => (e ? reject(e) : resolve(r))));
}

export function storeOf(cluster: LocalCluster): ObjectStore {
  return createObjectStore(cluster.endpoints.s3);
}

/** Polls until `pred` holds (bounded: fails after `ms`). */
export async function until<T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Fails when any log file of the local cluster contains one of its generated secrets. */
export async function assertNoSecretsInLogs(cluster: LocalCluster, extra: readonly string[] = []): Promise<number> {
  const c = cluster.credentials;
  const secrets = {
    userToken: c.userToken,
    workerToken: c.workerToken,
    natsPass: c.natsPass,
    s3SecretKey: c.s3SecretKey,
    ...Object.fromEntries(extra.map((s, i) => [`extra${i}`, s])),
  };
  const dir = join(cluster.dir, 'logs');
  let bytes = 0;
  for (const f of await readdir(dir)) {
    const text = await readFile(join(dir, f), 'utf8');
    bytes += text.length;
    for (const [name, value] of Object.entries(secrets)) if (text.includes(value)) throw new Error(`${f} contains the ${name}`);
  }
  return bytes;
}

/** `cvc dataset import fashion-mnist --folds F --limit N` into the local cluster (fails the test on error). */
export async function importFashion(cluster: LocalCluster, folds: number, limit: number): Promise<void> {
  const env = captureEnv(cluster.dir);
  assert.equal(
    await main(['dataset', 'import', 'fashion-mnist', '--folds', String(folds), '--limit', String(limit), '--cluster', join(cluster.dir, 'cluster.json')], env),
    0,
    env.err(),
  );
}

/** `cvc run submit` of seed-mnist on the imported Fashion-MNIST; returns the run id. */
export async function submitFashionRun(cluster: LocalCluster, folds: number, epochs: number): Promise<string> {
  const env = captureEnv(cluster.dir);
  const args = [
    'run',
    'submit',
    '--dataset',
    'fashion-mnist',
    '--model',
    'seed-mnist',
    '--folds',
    String(folds),
    '--epochs',
    String(epochs),
    '--cluster',
    join(cluster.dir, 'cluster.json'),
  ];
  assert.equal(await main(args, env), 0, env.err());
  return env.out().trim();
}
