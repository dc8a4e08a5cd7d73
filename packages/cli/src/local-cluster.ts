import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describeError, isFileNotFound } from '@cvc/core';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '@cvc/messaging';
import { startS3Server, type S3Server } from '@cvc/storage';
import { ensureLocalPki, generateToken, type LocalPki } from '@cvc/security';
import type { ClusterEndpoints } from './cluster-config.js';
import { LocalClusterError } from './errors.js';
import { acquireLocalLock, type LocalLock } from './local-lock.js';

/**
 * A service's entry point, found through its package (a checkout or an npm
 * install alike), or the path in `envVar`; resolved when a cluster starts, so
 * the other commands work without the services installed.
 */
function serviceBin(envVar: string, specifier: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  try {
    return fileURLToPath(import.meta.resolve(specifier));
  } catch (err) {
    throw new LocalClusterError(
      'SERVICE_NOT_INSTALLED',
      `cannot find ${specifier} (${(err as Error).message}); install @cvc/coordinator and @cvc/worker beside @cvc/cli, or set ${envVar}`,
      { cause: err },
    );
  }
}

/** wasm threads for each of `workers` workers on this machine: its cores divided between them (at least 1). */
export function threadsPerWorker(workers: number, cores: number = availableParallelism()): number {
  return Math.max(1, Math.min(64, Math.floor(cores / Math.max(1, workers))));
}

export interface LocalClusterOptions {
  readonly dir: string;
  readonly workers: number;
  readonly backend?: string;
  /** Redelivery after this long without a heartbeat (ms, default 60 000). */
  readonly ackWaitMs?: number;
  readonly maxDeliver?: number;
  readonly logLevel?: string;
  /** Extra environment for the coordinator (limits in tests, say). */
  readonly coordinatorEnv?: NodeJS.ProcessEnv;
  /**
   * nats-servers (1..5, default 1). More than 1 starts a JetStream cluster
   * (DIR/nats-cluster) and gives the services CVC_NATS_REPLICAS = this count.
   */
  readonly natsNodes?: number;
}

/** A running local cluster: nats-server, an S3 server, the coordinator and workers on loopback. */
export interface LocalCluster {
  readonly endpoints: ClusterEndpoints & { natsUrl: string };
  readonly dir: string;
  readonly workers: ChildProcess[];
  readonly coordinatorProcess: ChildProcess;
  /** The single nats-server (throws when the cluster runs several: see `natsCluster`). */
  readonly nats: NatsServer;
  /** The NATS cluster when started with `natsNodes` > 1 (its nodes can be killed and restarted one by one). */
  readonly natsCluster: NatsCluster | undefined;
  /** Stops nats-server and starts it again on the same port and JetStream directory after `downMs` (fault tests; single node only). */
  restartNats(downMs?: number): Promise<void>;
  readonly s3: S3Server;
  /** Starts one more worker (ids continue); `env` overrides its environment. */
  addWorker(env?: NodeJS.ProcessEnv): ChildProcess;
  /** SIGKILLs the coordinator and starts it again on the same port (fault tests); `env` overrides its environment from then on. */
  restartCoordinator(env?: NodeJS.ProcessEnv): Promise<void>;
  /** Closes the S3 server, waits `downMs`, and starts it again on the same port and directory (fault tests). */
  restartS3(downMs?: number): Promise<void>;
  /** Stops the S3 server until `startS3()` (fault tests). */
  stopS3(): Promise<void>;
  startS3(): Promise<void>;
  /** The generated credentials (tests; never logged). */
  readonly credentials: LocalCredentials;
  readonly pki: LocalPki;
  stop(): Promise<void>;
}

/** Secrets of a local cluster, generated once and kept in DIR/secrets (mode 0600). */
export interface LocalCredentials {
  readonly userToken: string;
  readonly workerToken: string;
  readonly natsUser: string;
  readonly natsPass: string;
  readonly s3AccessKey: string;
  readonly s3SecretKey: string;
}

async function ensureCredentials(dir: string): Promise<LocalCredentials> {
  const file = join(dir, 'credentials.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as LocalCredentials;
  } catch (err) {
    // Only a first start creates credentials: replacing unreadable ones would lock out the data stored with them.
    if (!isFileNotFound(err))
      throw new LocalClusterError(
        'CREDENTIALS_UNREADABLE',
        `${file} cannot be read (${describeError(err)}); fix or remove it (removing it makes new credentials for the data in ${dir})`,
        { cause: err },
      );
    const c: LocalCredentials = {
      userToken: generateToken(),
      workerToken: generateToken(),
      natsUser: 'cvc',
      natsPass: randomBytes(24).toString('base64url'),
      s3AccessKey: `cvc${randomBytes(8).toString('hex')}`,
      s3SecretKey: randomBytes(24).toString('base64url'),
    };
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
    return c;
  }
}

function waitExit(p: ChildProcess, ms: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      r();
    }, ms);
    p.once('exit', () => {
      clearTimeout(t);
      r();
    });
  });
}

/**
 * Starts the embedded default; logs go to DIR/logs, addresses to
 * DIR/cluster.json. It is secured like a real deployment: generated
 * credentials and a private CA in DIR/secrets, gRPC over TLS with separate
 * user and worker tokens, NATS with a password, S3 with its own key pair.
 */
export async function startLocalCluster(o: LocalClusterOptions): Promise<LocalCluster> {
  const dir = resolve(o.dir);
  await mkdir(join(dir, 'logs'), { recursive: true });
  // One cluster per directory: a second one on the same JetStream store is refused here.
  const lock = await acquireLocalLock(dir);
  // How to stop each piece started so far; a later piece failing stops them (newest first) before the lock goes.
  const undo: (() => Promise<void>)[] = [];
  try {
    return await startHolding(o, dir, lock, undo);
  } catch (err) {
    for (const stop of undo.reverse()) {
      await stop().catch((stopErr: unknown) => {
        process.stderr.write(`cvc local up: stopping a started piece after a failed start failed: ${(stopErr as Error).message}\n`);
      });
    }
    await lock.release();
    throw err;
  }
}

async function startHolding(o: LocalClusterOptions, dir: string, lock: LocalLock, undo: (() => Promise<void>)[]): Promise<LocalCluster> {
  const COORDINATOR_BIN = serviceBin('CVC_COORDINATOR_BIN', '@cvc/coordinator/bin/coordinator.js');
  const WORKER_BIN = serviceBin('CVC_WORKER_BIN', '@cvc/worker/bin/worker.js');
  const secretsDir = join(dir, 'secrets');
  const creds = await ensureCredentials(secretsDir);
  const pki = await ensureLocalPki(secretsDir);
  const natsAuth = { user: creds.natsUser, pass: creds.natsPass };
  const natsNodes = o.natsNodes ?? 1;
  if (!Number.isInteger(natsNodes) || natsNodes < 1 || natsNodes > 5) throw new LocalClusterError('NATS_START', `natsNodes must be 1..5, got ${natsNodes}`);
  const natsCluster =
    natsNodes > 1 ? await startNatsCluster(join(dir, 'nats-cluster'), { nodes: natsNodes, ...natsAuth, logDir: join(dir, 'logs') }) : undefined;
  if (natsCluster) undo.push(() => natsCluster.stop());
  let nats: NatsServer | undefined = natsCluster ? undefined : await startNatsServer(join(dir, 'nats'), natsAuth);
  if (nats) undo.push(async () => nats?.stop());
  const natsUrl = natsCluster?.url ?? (nats as NatsServer).url;
  const s3Creds = { accessKey: creds.s3AccessKey, secretKey: creds.s3SecretKey };
  let s3: S3Server | undefined = await startS3Server(join(dir, 's3'), 0, s3Creds);
  undo.push(async () => {
    const s = s3;
    s3 = undefined;
    await s?.close();
  });
  const s3Port = s3.port;
  // The caller's own client settings must not leak into the services.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !['CVC_TOKEN', 'CVC_INSECURE', 'CVC_TLS_CA', 'CVC_TLS_CERT', 'CVC_TLS_KEY', 'CVC_TLS_SERVER_NAME'].includes(k)),
  );
  const base: NodeJS.ProcessEnv = {
    ...inherited,
    CVC_NATS_URL: natsUrl,
    CVC_NATS_REPLICAS: String(natsNodes),
    CVC_NATS_USER: creds.natsUser,
    CVC_NATS_PASS: creds.natsPass,
    CVC_S3_ENDPOINT: s3.endPoint,
    CVC_S3_PORT: String(s3.port),
    CVC_S3_ACCESS_KEY: s3.accessKey,
    CVC_S3_SECRET_KEY: s3.secretKey,
    CVC_S3_BUCKET: 'cvc',
    CVC_ACK_WAIT_MS: String(o.ackWaitMs ?? 60_000),
    CVC_MAX_DELIVER: String(o.maxDeliver ?? 5),
    CVC_LOG_LEVEL: o.logLevel ?? 'info',
    CVC_METRICS_HOST: '127.0.0.1',
    CVC_METRICS_PORT: '0',
  };
  // Prometheus file-based discovery: every process's /metrics address.
  const targets = { coordinator: '', workers: new Map<string, string>() };
  const writeTargets = (): Promise<void> =>
    writeFile(
      join(dir, 'prometheus-targets.json'),
      JSON.stringify(
        [
          { targets: targets.coordinator ? [targets.coordinator] : [], labels: { job: 'cvc-coordinator' } },
          { targets: [...targets.workers.values()], labels: { job: 'cvc-worker' } },
        ],
        null,
        2,
      ) + '\n',
    );
  const watchMetricsPort = (p: ChildProcess, onPort: (port: number) => void): void => {
    let text = '';
    const onData = (c: Buffer): void => {
      text += c.toString();
      const m = /CVC_METRICS_PORT=(\d+)/.exec(text);
      if (m) {
        p.stdout?.off('data', onData);
        onPort(Number(m[1]));
      }
    };
    p.stdout?.on('data', onData);
  };
  const log = (name: string) => createWriteStream(join(dir, 'logs', `${name}.log`), { flags: 'a' });

  let coordinatorPort = 0;
  let coordinatorEnv: NodeJS.ProcessEnv = { ...o.coordinatorEnv };
  const startCoordinator = async (): Promise<ChildProcess> => {
    const env = {
      ...base,
      CVC_GRPC_HOST: '127.0.0.1',
      CVC_GRPC_PORT: String(coordinatorPort),
      CVC_TLS_CERT: pki.certFile,
      CVC_TLS_KEY: pki.keyFile,
      CVC_USER_TOKENS: creds.userToken,
      CVC_WORKER_TOKENS: creds.workerToken,
      ...coordinatorEnv,
    };
    const p = spawn(process.execPath, [COORDINATOR_BIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = log('coordinator');
    p.stderr.pipe(out);
    watchMetricsPort(p, (port) => {
      targets.coordinator = `127.0.0.1:${port}`;
      void writeTargets();
    });
    coordinatorPort = await new Promise<number>((res, rej) => {
      let text = '';
      p.stdout.on('data', (c: Buffer) => {
        text += c.toString();
        const m = /CVC_COORDINATOR_PORT=(\d+)/.exec(text);
        if (m) res(Number(m[1]));
      });
      p.once('exit', (code) =>
        rej(
          new LocalClusterError('COORDINATOR_START', `the coordinator exited with code ${code} before listening; see ${join(dir, 'logs', 'coordinator.log')}`),
        ),
      );
    });
    p.stdout.pipe(out);
    return p;
  };
  let coordinatorProcess = await startCoordinator();
  undo.push(async () => {
    coordinatorProcess.kill('SIGTERM');
    await waitExit(coordinatorProcess, 5000);
  });
  const coordinator = `127.0.0.1:${coordinatorPort}`;
  const workers: ChildProcess[] = [];
  const addWorker = (extra: NodeJS.ProcessEnv = {}): ChildProcess => {
    const id = `local-${workers.length}`;
    const p = spawn(process.execPath, [WORKER_BIN], {
      env: {
        ...base,
        CVC_COORDINATOR: coordinator,
        CVC_TOKEN: creds.workerToken,
        CVC_TLS_CA: pki.caFile,
        CVC_TLS_SERVER_NAME: 'localhost',
        CVC_WORKER_ID: id,
        CVC_CACHE_DIR: join(dir, 'cache'),
        CVC_BACKEND: o.backend ?? 'auto',
        // The machine's cores divided between its workers, unless the caller's environment says.
        CVC_WASM_THREADS: process.env['CVC_WASM_THREADS'] ?? String(threadsPerWorker(o.workers)),
        ...extra,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = log(id);
    p.stdout?.pipe(out);
    p.stderr?.pipe(out);
    watchMetricsPort(p, (port) => {
      targets.workers.set(id, `127.0.0.1:${port}`);
      void writeTargets();
    });
    p.once('exit', () => {
      targets.workers.delete(id);
      void writeTargets();
    });
    workers.push(p);
    return p;
  };
  undo.push(async () => {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => waitExit(w, 10_000)));
  });
  for (let i = 0; i < o.workers; i++) addWorker();

  const endpoints = {
    coordinator,
    natsUrl,
    s3: { endPoint: s3.endPoint, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'cvc' },
    security: { token: creds.userToken, caFile: pki.caFile, serverName: 'localhost' },
  };
  // It holds the user token and the S3 keys: readable by its owner only.
  await writeFile(join(dir, 'cluster.json'), JSON.stringify(endpoints, null, 2) + '\n', { mode: 0o600 });
  await chmod(join(dir, 'cluster.json'), 0o600);
  const s3Dir = join(dir, 's3');
  const stopS3 = async (): Promise<void> => {
    const s = s3;
    s3 = undefined;
    await s?.close();
  };
  const startS3 = async (): Promise<void> => {
    if (!s3) s3 = await startS3Server(s3Dir, s3Port, s3Creds);
  };
  return {
    endpoints,
    dir,
    workers,
    get coordinatorProcess() {
      return coordinatorProcess;
    },
    get nats() {
      if (!nats) throw new LocalClusterError('NATS_CLUSTERED', `the local cluster runs ${natsNodes} nats-servers: use natsCluster`);
      return nats;
    },
    natsCluster,
    get s3() {
      if (!s3) throw new LocalClusterError('S3_STOPPED', 'the local S3 server is stopped');
      return s3;
    },
    credentials: creds,
    pki,
    stopS3,
    startS3,
    restartS3: async (downMs = 0) => {
      await stopS3();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await startS3();
    },
    addWorker,
    restartNats: async (downMs = 0) => {
      if (!nats)
        throw new LocalClusterError('NATS_CLUSTERED', `the local cluster runs ${natsNodes} nats-servers: restart them one by one through natsCluster.nodes`);
      const port = nats.port;
      await nats.stop();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      nats = await startNatsServer(join(dir, 'nats'), { port, ...natsAuth });
    },
    restartCoordinator: async (env = {}) => {
      coordinatorEnv = { ...coordinatorEnv, ...env };
      coordinatorProcess.kill('SIGKILL');
      await waitExit(coordinatorProcess, 5000);
      coordinatorProcess = await startCoordinator();
    },
    stop: async () => {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map((w) => waitExit(w, 10_000)));
      coordinatorProcess.kill('SIGTERM');
      await waitExit(coordinatorProcess, 5000);
      await (natsCluster ?? nats)?.stop();
      await stopS3();
      await lock.release();
    },
  };
}
