import { CancelledError, CvcError, ConfigError } from '@cvc/core';
import { cliEnvFromProcess, type CliEnv } from './env.js';
import { UsageError } from './errors.js';
import { datasetCommand } from './dataset-cmd.js';
import { cvCommand } from './cv-cmd.js';
import { localCommand } from './local-cmd.js';
import { runCommand } from './run-cmd.js';
import { sweepCommand } from './sweep-cmd.js';
import { encoderCommand } from './encoder-cmd.js';
import { reportCommand } from './report-cmd.js';
import { clusterJobCommand } from './cluster-job-cmd.js';
import { helpFor } from './help.js';
import { secretsCommand } from './secrets-cmd.js';
import { EXIT_OUTPUT_CLOSED, systemErrorMessage, watchOutputClosed, type OutputWatch } from './output-errors.js';

export const HELP = `cvc: k-fold cross-validation of convolutional autoencoders

Usage:
  cvc dataset list [--json]                  the cluster's datasets: version, shape, images, folds
  cvc dataset inspect NAME|PATH [--json]     counts, shapes and class histogram
  cvc dataset download NAME                  mnist, fashion-mnist or cifar-10 (sha256-verified)
  cvc dataset import NAME|PATH --out DIR [--folds K] [--seed S] [--fold-scheme stratified|seed] [--limit N]
  cvc dataset import FOLDER --name NAME [--size HxW] [--fit cover|contain|fill] [--out DIR]   an image folder (class subfolders label it)
  cvc cv --local --dataset NAME|PATH (--model seed-mnist|seed-cifar|cae | --model-config FILE) [--folds K] [--epochs N] [--limit N] [--out DIR] [--json]

The cluster (embedded default on one machine, or Kubernetes):
  cvc local up [--workers N] [--dir .cvc/local]   nats-server, an S3 server, the coordinator and N workers on loopback
  cvc local up --nats-nodes 3                      the same with a 3-node JetStream cluster (R3 streams and KV): losing one nats-server loses nothing
  cvc dataset import NAME|PATH [--folds K] [--seed S] [--fold-scheme S] [--limit N]   fold shards into the cluster's S3
  cvc run submit --dataset NAME (--model seed-mnist|seed-cifar|cae | --model-config FILE) [--folds K] [--epochs N] [--batch-size 32] [--watch] [--json]
  cvc run watch RUN | cvc run show RUN [--json] | cvc run list | cvc run cancel RUN
  cvc sweep submit --dataset NAME (--model M | --model-config FILE) --grid learning-rate=1e-3,3e-4 [--grid code-size=10,32] [--random N --seed S]
              [--folds K] [--epochs N] [--early-stop asha|median|none] [--rungs 1,3,9] [--reduction-factor 3] [--max-parallel-runs N] [--watch] [--json]
  cvc sweep watch SWEEP | cvc sweep show SWEEP [--json] | cvc sweep list | cvc sweep cancel SWEEP   runs ranked by mean +- std val loss over folds
  (--cluster FILE, or CVC_COORDINATOR, CVC_TOKEN, CVC_TLS_CA and CVC_S3_*, say which cluster; default .cvc/local/cluster.json)
  cvc secrets init --out DIR [--names cvc-coordinator,...]   a CA, the coordinator's TLS certificate, tokens, NATS password

The encoder and clustering:
  cvc encoder fetch RUN|SWEEP [--fold best|K] [--by val-loss|cluster-acc] [--out DIR]   a TensorFlow.js layers model + metadata
  cvc embed --encoder DIR (--dataset NAME|PATH [--split test|train] [--limit N] | --images DIR) --out FILE.npy|FILE.csv
  cvc cluster --encoder DIR (--dataset NAME|PATH | --images DIR [--skip-invalid]) [--k 10] [--out DIR] [--copy-to DIR]
              [--manifold umap [--umap-dims 10] [--neighbors 20] [--min-dist 0] [--umap-sample N] [--umap-context N]] [--assign kmeans|gmm]
              [--dec-centres] [--baseline] [--confusion FILE.png] [--json]     a cluster per image (assignments.csv); scores when labelled
  cvc cluster-job submit RUN --method dcec|idec|dec [--fold best|K] [--k 10] [--gamma 0.1] [--update-interval 140] [--tol 0.001]
              [--max-iterations N] [--dataset NAME] [--watch]     fine-tune the encoder with a clustering loss, on a worker
  cvc cluster-job watch JOB | show JOB [--json] | list | cancel JOB | fetch JOB [--out DIR] [--report DIR]
  cvc report RUN [--out DIR]     the run's pictures (test images, reconstructions, loss curves) and a Markdown summary

Every subcommand has --help (usage, flags with their defaults, an example): cvc run submit --help.
Ctrl-C stops any command cleanly (exit code 130); a second Ctrl-C ends it at once.

Environment: CVC_CACHE_DIR (downloaded datasets, default ~/.cache/cvc/datasets),
CVC_DATA_DIR (extra dataset directories, colon-separated).
`;

/** What main() takes besides argv and the environment (tests). */
export interface MainOptions {
  /** Aborts the command as Ctrl-C would (in-process tests). */
  readonly signal?: AbortSignal;
  /** Whether main() handles SIGINT and SIGTERM itself (default true). */
  readonly handleSignals?: boolean;
  /** How often a closed stdout or stderr is looked for while the command writes nothing (ms; tests). */
  readonly outputProbeMs?: number;
}

/**
 * Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage, 130
 * interrupted by Ctrl-C, 143 by SIGTERM, 141 when stdout or stderr is a pipe
 * whose reader went away: the command is stopped as by Ctrl-C, silently). One handler for SIGINT and SIGTERM
 * aborts the signal every command is given (gRPC calls and streams are
 * cancelled, training stops after its batch, file work stops between files);
 * it then removes itself, so a second Ctrl-C ends the process at once.
 */
export async function main(argv: string[], env: CliEnv = cliEnvFromProcess(), opts: MainOptions = {}): Promise<number> {
  const [cmd, ...rest] = argv;
  const ac = new AbortController();
  // Output piped into a reader that went away (`cvc run list | head -1`): stop the command, exit 141.
  const closed = watchOutputClosed([env.stdout, env.stderr], () => ac.abort(new CancelledError(`cvc ${cmd ?? ''}: output closed`.trim())), opts.outputProbeMs);
  try {
    const code = await dispatch(cmd, rest, argv, env, opts, ac, closed);
    await closed.settle();
    return closed.closed ? closed.exitCode(code) : code;
  } finally {
    closed.release();
  }
}

async function dispatch(
  cmd: string | undefined,
  rest: string[],
  argv: string[],
  env: CliEnv,
  opts: MainOptions,
  ac: AbortController,
  out: OutputWatch,
): Promise<number> {
  const help = helpFor(argv);
  if (help !== undefined) {
    env.stdout.write(help);
    return 0;
  }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    env.stdout.write(HELP);
    return 0;
  }
  let interruptedCode = 130;
  const onSignal = (sig: NodeJS.Signals): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    interruptedCode = sig === 'SIGTERM' ? 143 : 130;
    if (cmd !== 'local') env.stderr.write(`\ncvc: stopping (${sig === 'SIGINT' ? 'Ctrl-C' : sig}; Ctrl-C again to force)\n`);
    ac.abort(new CancelledError(`cvc ${cmd ?? ''}`.trim()));
  };
  const onExternal = (): void => ac.abort(opts.signal?.reason);
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  if (opts.signal?.aborted) ac.abort(opts.signal.reason);
  opts.signal?.addEventListener('abort', onExternal, { once: true });
  const signal = ac.signal;
  try {
    let code: number;
    switch (cmd) {
      case 'dataset':
        code = await datasetCommand(rest, env, signal);
        break;
      case 'cv':
        code = await cvCommand(rest, env, signal);
        break;
      case 'local':
        code = await localCommand(rest, env, signal);
        break;
      case 'secrets':
        code = await secretsCommand(rest, env);
        break;
      case 'run':
        code = await runCommand(rest, env, signal);
        break;
      case 'sweep':
        code = await sweepCommand(rest, env, signal);
        break;
      case 'report':
        code = await reportCommand(rest, env, signal);
        break;
      case 'cluster-job':
        code = await clusterJobCommand(rest, env, signal);
        break;
      case 'encoder':
      case 'embed':
      case 'cluster':
        code = await encoderCommand(cmd, rest, env, signal);
        break;
      case undefined:
        env.stdout.write(HELP);
        return 2;
      default:
        throw new UsageError(`unknown command '${cmd}' (try 'cvc help')`);
    }
    // A command that stopped on the signal without an error (local up) still says so.
    return signal.aborted && code === 0 ? interruptedCode : code;
  } catch (err) {
    // Nobody reads what would be said: the exit code tells (main).
    if (out.closed && signal.aborted) return EXIT_OUTPUT_CLOSED;
    if (err instanceof CancelledError || (signal.aborted && isAbort(err))) {
      const hint = cmd === 'cv' ? '; finished epochs are checkpointed, re-run the same command to resume' : '';
      env.stderr.write(`cvc: ${(err as Error).message}${hint}\n`);
      return interruptedCode;
    }
    // A file or socket the command used (--out in a missing directory, a full disk): say which, without a stack.
    const sys = systemErrorMessage(err);
    if (sys !== undefined) {
      env.stderr.write(`cvc: ${sys}\n`);
      return 1;
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
    process.off('SIGTERM', onSignal);
    opts.signal?.removeEventListener('abort', onExternal);
  }
}

/** An AbortError from fetch, streams or timers. */
function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}
