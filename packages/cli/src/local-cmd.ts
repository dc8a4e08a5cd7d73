import { availableParallelism } from 'node:os';
import type { CliEnv } from './env.js';
import { intOpt, parse } from './args.js';
import { UsageError } from './errors.js';
import { DEFAULT_LOCAL_DIR } from './cluster-config.js';
import { startLocalCluster } from './local-cluster.js';

/** `cvc local up [--workers N] [--dir DIR]`: the embedded default, until Ctrl-C or SIGTERM (main aborts `signal`). */
export async function localCommand(argv: string[], env: CliEnv, signal: AbortSignal): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'up') throw new UsageError(`unknown 'local ${sub ?? ''}' (use: cvc local up [--workers N] [--dir DIR])`);
  const { values } = parse(rest, { workers: { type: 'string' }, dir: { type: 'string' }, backend: { type: 'string' }, 'ack-wait-ms': { type: 'string' } }, 'local up');
  const workers = intOpt(values, 'workers', availableParallelism()) as number;
  if (workers < 0 || workers > 256) throw new UsageError(`--workers must be 0..256, got ${workers}`);
  const dir = typeof values['dir'] === 'string' ? values['dir'] : DEFAULT_LOCAL_DIR;
  const ackWaitMs = intOpt(values, 'ack-wait-ms', undefined);
  const cluster = await startLocalCluster({ dir, workers, ...(typeof values['backend'] === 'string' ? { backend: values['backend'] } : {}), ...(ackWaitMs ? { ackWaitMs } : {}) });
  const e = cluster.endpoints;
  env.stdout.write(
    [
      `local cluster up (${dir}):`,
      `  nats         ${e.natsUrl} (JetStream in ${dir}/nats)`,
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
