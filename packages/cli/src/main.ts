import { CancelledError, CvcError, ConfigError } from '@cvc/core';
import { cliEnvFromProcess, type CliEnv } from './env.js';
import { UsageError } from './errors.js';
import { datasetCommand } from './dataset-cmd.js';
import { cvCommand, CV_HELP } from './cv-cmd.js';
import { localCommand } from './local-cmd.js';
import { runCommand } from './run-cmd.js';
import { encoderCommand } from './encoder-cmd.js';
import { reportCommand } from './report-cmd.js';
import { secretsCommand } from './secrets-cmd.js';

export const HELP = `cvc: k-fold cross-validation of convolutional autoencoders

Usage:
  cvc dataset inspect NAME|PATH [--json]     counts, shapes and class histogram
  cvc dataset download NAME                  mnist, fashion-mnist or cifar-10 (sha256-verified)
  cvc dataset import NAME|PATH --out DIR [--folds K] [--seed S] [--fold-scheme stratified|seed] [--limit N]
  cvc cv --local --dataset NAME|PATH --model seed-mnist|seed-cifar [--folds 5] [--epochs N] [--limit N] [--out DIR] [--json]

The cluster (embedded default on one machine, or Kubernetes):
  cvc local up [--workers N] [--dir .cvc/local]   nats-server, an S3 server, the coordinator and N workers on loopback
  cvc local up --nats-nodes 3                      the same with a 3-node JetStream cluster (R3 streams and KV): losing one nats-server loses nothing
  cvc dataset import NAME|PATH [--folds K] [--seed S] [--fold-scheme S] [--limit N]   fold shards into the cluster's S3
  cvc run submit --dataset NAME --model M [--folds 5] [--epochs N] [--batch-size 32] [--watch] [--json]
  cvc run watch RUN | cvc run show RUN [--json] | cvc run list | cvc run cancel RUN
  (--cluster FILE, or CVC_COORDINATOR, CVC_TOKEN, CVC_TLS_CA and CVC_S3_*, say which cluster; default .cvc/local/cluster.json)
  cvc secrets init --out DIR [--names cvc-coordinator,...]   a CA, the coordinator's TLS certificate, tokens, NATS password

The encoder and clustering:
  cvc encoder fetch RUN [--fold best|K] [--by val-loss|cluster-acc] [--out DIR]   a TensorFlow.js layers model + metadata
  cvc embed --encoder DIR --dataset NAME|PATH [--split test|train] [--limit N] --out FILE.npy|FILE.csv
  cvc cluster --encoder DIR --dataset NAME|PATH [--split test] [--k 10] [--n-init 10] [--seed 0] [--baseline] [--dec]
              [--confusion FILE.png] [--limit N] [--json]     k-means on the codes: accuracy (Hungarian), NMI, ARI, purity
  cvc report RUN [--out DIR]     the run's pictures (test images, reconstructions, loss curves) and a Markdown summary

Environment: CVC_CACHE_DIR (downloaded datasets, default ~/.cache/cvc/datasets),
CVC_DATA_DIR (extra dataset directories, colon-separated).

${CV_HELP}`;

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage, 130 interrupted). */
export async function main(argv: string[], env: CliEnv = cliEnvFromProcess()): Promise<number> {
  const ac = new AbortController();
  const onSignal = (): void => {
    if (ac.signal.aborted) process.exit(130);
    env.stderr.write('\ninterrupted: stopping (Ctrl-C again to exit at once)\n');
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  try {
    const [cmd, ...rest] = argv;
    switch (cmd) {
      case 'dataset':
        return await datasetCommand(rest, env);
      case 'cv':
        return await cvCommand(rest, env, ac.signal);
      case 'local':
        return await localCommand(rest, env, ac.signal);
      case 'secrets':
        return await secretsCommand(rest, env);
      case 'run':
        return await runCommand(rest, env);
      case 'report':
        return await reportCommand(rest, env);
      case 'encoder':
      case 'embed':
      case 'cluster':
        return await encoderCommand(cmd, rest, env);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        env.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${cmd}' (try 'cvc help')`);
    }
  } catch (err) {
    if (err instanceof CancelledError) {
      env.stderr.write(`cvc: ${err.message}; finished epochs are checkpointed, re-run the same command to resume\n`);
      return 130;
    }
    if (err instanceof UsageError || err instanceof ConfigError) {
      env.stderr.write(`cvc: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CvcError) {
      env.stderr.write(`cvc: ${err.message}\n`);
      return 1;
    }
    env.stderr.write(`cvc: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
  }
}
