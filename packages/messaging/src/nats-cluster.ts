import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { MessagingError } from './errors.js';
import { natsServerBin, spawnNats, type SpawnedNats } from './nats-server.js';

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** Servers in the cluster (default 3; 1..7). JetStream needs a majority of them up. */
  readonly nodes?: number;
  /** The nats-server binary (default: CVC_NATS_SERVER, else `nats-server` on PATH). */
  readonly bin?: string;
  /** Client credentials every node requires (none: no client authentication). */
  readonly user?: string;
  readonly pass?: string;
  /** The cluster's name (default `cvc`). */
  readonly name?: string;
  /** Each node's output is appended to LOGDIR/nats-NAME.log (default: drained, not kept). */
  readonly logDir?: string;
  /** How long start() and restarts wait for a meta leader and healthy nodes (ms, default 30 000). */
  readonly readyTimeoutMs?: number;
}

/** One nats-server of a {@link NatsCluster}: its ports and JetStream directory stay the same across restarts. */
export interface NatsClusterNode {
  /** Its `server_name` (n0, n1, ...), as the meta leader is reported. */
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** The HTTP monitoring port (/jsz, /healthz). */
  readonly monitorPort: number;
  /** Whether its process is up. */
  readonly running: boolean;
  /** Its process id; -1 while it is down. */
  readonly pid: number;
  /** SIGKILLs it (fault tests); resolves once the process has exited. */
  kill(): Promise<void>;
  /** Stops it (SIGTERM, then SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** Starts it again on its ports and directory; resolves once it reports healthy (JetStream caught up). */
  start(): Promise<void>;
  /** True when /healthz says its JetStream is current (it has a meta leader and its streams are caught up). */
  healthy(): Promise<boolean>;
}

/** A JetStream cluster of nats-servers on loopback, routed to each other. */
export interface NatsCluster {
  readonly name: string;
  /** Every node's client URL, comma-separated (connectNats accepts it as is). */
  readonly url: string;
  readonly urls: readonly string[];
  readonly nodes: readonly NatsClusterNode[];
  /** The `server_name` of the JetStream meta leader, as the first running node reports it; undefined while none is elected. */
  metaLeader(): Promise<string | undefined>;
  /** Waits until a meta leader is elected and every running node is healthy; returns the leader's name. */
  waitReady(timeoutMs?: number): Promise<string>;
  /** Stops every node. */
  stop(): Promise<void>;
}

/** Free loopback ports, all held open until every one is chosen so none repeats. */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => res());
      });
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** GET http://127.0.0.1:PORT/PATH as JSON; undefined when the node does not answer. */
async function monitor<T>(port: number, path: string): Promise<{ status: number; body: T } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.json()) as T };
  } catch (err) {
    // A node that is down or restarting refuses the connection: it has no view of the cluster.
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'TypeError' || err instanceof SyntaxError)) return undefined;
    throw err;
  }
}

/** The meta leader's `server_name` as the node with monitoring port `port` sees it (its /jsz), or undefined. */
export async function jszMetaLeader(port: number): Promise<string | undefined> {
  const r = await monitor<{ meta_cluster?: { leader?: string } }>(port, '/jsz');
  const leader = r?.body.meta_cluster?.leader;
  return leader ? leader : undefined;
}

const q = (s: string): string => JSON.stringify(s);

/**
 * Starts `nodes` nats-server processes (Debian's nats-server 2.9) on
 * 127.0.0.1 as one JetStream cluster: each with its own config file
 * (DIR/NAME.conf, mode 0600), JetStream directory (DIR/NAME), `server_name`,
 * client, route and monitoring ports, routes to all the others (authenticated
 * with a generated route password), and the client credentials if given.
 * Resolves once the cluster has elected a JetStream meta leader and every
 * node reports healthy.
 */
export async function startNatsCluster(dir: string, opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const count = opts.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 7) throw new MessagingError('NATS_START', `a NATS cluster has 1..7 nodes, got ${count}`);
  const name = opts.name ?? 'cvc';
  const bin = natsServerBin(opts.bin);
  const readyMs = opts.readyTimeoutMs ?? 30_000;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (opts.logDir) await mkdir(opts.logDir, { recursive: true });
  const ports = await freePorts(count * 3);
  const routeUser = 'cvc-route';
  const routePass = randomBytes(18).toString('base64url');
  const specs = Array.from({ length: count }, (_, i) => ({
    name: `n${i}`,
    port: ports[3 * i] as number,
    routePort: ports[3 * i + 1] as number,
    monitorPort: ports[3 * i + 2] as number,
  }));
  const confOf = (i: number): string => join(dir, `${specs[i]?.name}.conf`);
  for (const [i, s] of specs.entries()) {
    const routes = specs.filter((o) => o !== s).map((o) => q(`nats-route://${routeUser}:${encodeURIComponent(routePass)}@127.0.0.1:${o.routePort}`));
    const conf = [
      `server_name: ${q(s.name)}`,
      `listen: ${q(`127.0.0.1:${s.port}`)}`,
      `http: ${q(`127.0.0.1:${s.monitorPort}`)}`,
      `jetstream { store_dir: ${q(join(dir, s.name))} }`,
      'cluster {',
      `  name: ${q(name)}`,
      `  listen: ${q(`127.0.0.1:${s.routePort}`)}`,
      `  authorization { user: ${q(routeUser)}, password: ${q(routePass)} }`,
      `  routes: [${routes.join(', ')}]`,
      '}',
      ...(opts.user && opts.pass ? ['authorization {', `  user: ${q(opts.user)}`, `  password: ${q(opts.pass)}`, '}'] : []),
      '',
    ].join('\n');
    await writeFile(confOf(i), conf, { mode: 0o600 });
  }

  const procs: (SpawnedNats | undefined)[] = specs.map(() => undefined);
  const spawnNode = async (i: number): Promise<void> => {
    const s = specs[i] as (typeof specs)[number];
    const log = opts.logDir ? createWriteStream(join(opts.logDir, `nats-${s.name}.log`), { flags: 'a' }) : undefined;
    const p = await spawnNats(bin, ['-c', confOf(i)], log);
    procs[i] = p;
    void p.exited.then(() => {
      if (procs[i] === p) procs[i] = undefined;
      log?.end();
    });
  };
  const healthy = async (i: number): Promise<boolean> => {
    const s = specs[i] as (typeof specs)[number];
    const r = await monitor<{ status?: string }>(s.monitorPort, '/healthz');
    return r !== undefined && r.status === 200 && r.body.status === 'ok';
  };
  const metaLeader = async (): Promise<string | undefined> => {
    for (const [i, s] of specs.entries()) {
      if (!procs[i]) continue;
      const leader = await jszMetaLeader(s.monitorPort);
      if (leader) return leader;
    }
    return undefined;
  };
  const waitReady = async (timeoutMs = readyMs): Promise<string> => {
    const end = Date.now() + timeoutMs;
    let last = 'no node is running';
    for (;;) {
      const leader = await metaLeader();
      const unhealthy: string[] = [];
      for (const [i, s] of specs.entries()) if (procs[i] && !(await healthy(i))) unhealthy.push(s.name);
      if (leader && unhealthy.length === 0) return leader;
      last = leader ? `${unhealthy.join(', ')} not healthy yet` : 'no JetStream meta leader elected';
      if (Date.now() > end) throw new MessagingError('NATS_START', `NATS cluster ${name} in ${dir} not ready after ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  try {
    await Promise.all(specs.map((_, i) => spawnNode(i)));
    await waitReady();
  } catch (err) {
    await Promise.all(procs.map((p) => (p ? p.stop(1000) : Promise.resolve())));
    throw err;
  }

  const nodes: NatsClusterNode[] = specs.map((s, i) => ({
    name: s.name,
    url: `nats://127.0.0.1:${s.port}`,
    port: s.port,
    monitorPort: s.monitorPort,
    get running() {
      return procs[i] !== undefined;
    },
    get pid() {
      return procs[i]?.pid ?? -1;
    },
    kill: async () => {
      const p = procs[i];
      if (!p) return;
      p.kill();
      await p.exited;
    },
    stop: async (graceMs) => {
      await procs[i]?.stop(graceMs);
    },
    start: async () => {
      if (procs[i]) return;
      await spawnNode(i);
      await waitReady();
    },
    healthy: () => healthy(i),
  }));
  const urls = nodes.map((n) => n.url);
  return {
    name,
    url: urls.join(','),
    urls,
    nodes,
    metaLeader,
    waitReady,
    stop: async () => {
      await Promise.all(procs.map((p) => (p ? p.stop() : Promise.resolve())));
    },
  };
}
