import { availableParallelism } from 'node:os';
import type { CliEnv } from './env.js';
import { BACKEND_CHOICES } from '@cvc/tfjs-runtime';
import { choiceOpt, intOpt, parse, positiveInt } from './args.js';
import { UsageError } from './errors.js';
import { DEFAULT_LOCAL_DIR } from './cluster-config.js';
import { startLocalCluster } from './local-cluster.js';

/** `cvc local up [--workers N] [--dir DIR] [--nats-nodes N]`: the embedded default, until Ctrl-C or SIGTERM (main aborts `signal`). */
export async function localCommand(argv: string[], env: CliEnv, signal: AbortSignal): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'up') throw new UsageError(`unknown 'local ${sub ?? ''}' (use: cvc local up [--workers N] [--dir DIR] [--nats-nodes N])`);
  const { values } = parse(
    rest,
    { workers: { type: 'string' }, dir: { type: 'string' }, backend: { type: 'string' }, 'ack-wait-ms': { type: 'string' }, 'nats-nodes': { type: 'string' } },
    'local up',
  );
  const workers = intOpt(values, 'workers', availableParallelism()) as number;
  if (workers < 0 || workers > 256) throw new UsageError(`--workers must be 0..256, got ${workers}`);
  const dir = typeof values['dir'] === 'string' ? values['dir'] : DEFAULT_LOCAL_DIR;
  // 0 would silently mean the default: a value given must be a real wait.
  const ackWaitMs = intOpt(values, 'ack-wait-ms', undefined, positiveInt);
  const backend = values['backend'] !== undefined ? choiceOpt(values, 'backend', BACKEND_CHOICES, 'auto') : undefined;
  const natsNodes = intOpt(values, 'nats-nodes', 1) as number;
  if (natsNodes < 1 || natsNodes > 5) throw new UsageError(`--nats-nodes must be 1..5 (3 survives losing one), got ${natsNodes}`);
  const cluster = await startLocalCluster({
    dir,
    workers,
    ...(backend !== undefined ? { backend } : {}),
    ...(ackWaitMs !== undefined ? { ackWaitMs } : {}),
    natsNodes,
  });
  const e = cluster.endpoints;
  env.stdout.write(
    [
      `local cluster up (${dir}):`,
      natsNodes > 1
        ? `  nats         ${natsNodes} clustered nodes ${e.natsUrl} (JetStream R${natsNodes} in ${dir}/nats-cluster)`
        : `  nats         ${e.natsUrl} (JetStream in ${dir}/nats)`,
      `  s3           http://${e.s3.endPoint}:${e.s3.port} bucket ${e.s3.bucket} (objects in ${dir}/s3)`,
      `  coordinator  ${e.coordinator} (gRPC over TLS; CA ${dir}/secrets/ca.pem)`,
      `  credentials  ${dir}/secrets (user and worker tokens, NATS password, S3 keys; mode 0600)`,
      `  workers      ${workers} (logs in ${dir}/logs)`,
      `  cluster file ${dir}/cluster.json`,
      `  lock         ${dir}/local-up.lock (pid ${process.pid}; a second cvc local up here is refused)`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((r) => {
    if (signal.aborted) r();
    signal.addEventListener('abort', () => r(), { once: true });
  });
  env.stdout.write('stopping the local cluster...\n');
  await cluster.stop();
  return 0;
}
