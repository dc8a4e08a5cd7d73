import type { ServiceError } from '@grpc/grpc-js';
import { FoldState, Run, type RunServiceClient, RunState, type ListRunsResponse, type RunEvent } from '@cvc/proto';
import type { CliEnv } from './env.js';
import { parse } from './args.js';
import { runSpecFromFlags } from './run-spec-flags.js';
import { remoteError, RemoteError, UsageError } from './errors.js';
import { num, table } from './format.js';
import { resolveCluster, runServiceClient } from './cluster-config.js';

export { RemoteError } from './errors.js';


/** Promisifies one unary call; a failure becomes a RemoteError with the server's message. */
function unary<Res>(invoke: (cb: (e: ServiceError | null, r: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((e, r) => (e ? reject(remoteError(e)) : resolve(r)));
  });
}

const FINAL = [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED];
const stateName = (s: RunState): string => RunState[s].replace('RUN_STATE_', '').toLowerCase();
const foldName = (s: FoldState): string => FoldState[s].replace('FOLD_STATE_', '').toLowerCase();

/** The fold table and summary of a run, as text. */
export function renderRun(run: Run): string {
  const rows = run.folds.map((f) => {
    const last = f.history[f.history.length - 1];
    return [
      String(f.fold),
      foldName(f.state),
      `${f.history.length}/${run.spec?.epochs ?? '?'}`,
      last ? num(last.valLoss) : '-',
      f.val ? num(f.val.loss) : '-',
      f.test ? num(f.test.loss) : '-',
      String(f.attempts),
      f.error ? f.error.slice(0, 60) : '',
    ];
  });
  const lines = [`run ${run.id}: ${stateName(run.state)} (${run.spec?.model} on ${run.spec?.dataset} version ${run.datasetVersion})`, table(['fold', 'state', 'epochs', 'last val', 'best val', 'test', 'attempts', 'error'], rows)];
  const s = run.summary;
  if (s?.valLoss) {
    lines.push('', `mean +- std over folds: train ${num(s.trainLoss?.mean ?? NaN)} +- ${num(s.trainLoss?.std ?? NaN)}  val ${num(s.valLoss.mean)} +- ${num(s.valLoss.std)}  test ${num(s.testLoss?.mean ?? NaN)} +- ${num(s.testLoss?.std ?? NaN)}`);
    lines.push(`best fold: ${s.bestFold}${s.encoder ? `; encoder at ${s.encoder}/model.json` : ''}`);
  }
  if (run.error) lines.push(`error: ${run.error}`);
  return lines.join('\n') + '\n';
}

/** Follows a run until it ends: one line per fold, redrawn on a TTY, logged per change elsewhere. */
export async function watchRun(c: RunServiceClient, runId: string, env: CliEnv): Promise<Run> {
  let last: Run | undefined;
  let drawn = 0;
  const seen = new Map<number, string>();
  await new Promise<void>((resolve, reject) => {
    const stream = c.watchRun({ runId });
    stream.on('data', (e: RunEvent) => {
      if (!e.run) return;
      last = e.run;
      const epochs = e.run.spec?.epochs ?? 1;
      const lines = e.run.folds.map((f) => {
        const done = f.history.length;
        const bar = '#'.repeat(Math.round((done / epochs) * 20)).padEnd(20, '.');
        const h = f.history[done - 1];
        return `fold ${f.fold} [${bar}] ${done}/${epochs} ${foldName(f.state).padEnd(9)} ${h ? `val_loss ${num(h.valLoss)} ${h.imagesPerSec.toFixed(0)} img/s` : ''}${f.attempts > 1 ? ` (attempt ${f.attempts})` : ''}`;
      });
      if (env.stderr.isTTY) {
        if (drawn > 0) env.stderr.write(`\x1b[${drawn}A`);
        env.stderr.write(lines.map((l) => `\x1b[2K${l}\n`).join(''));
        drawn = lines.length;
      } else {
        lines.forEach((l, i) => {
          if (seen.get(i) !== l) env.stderr.write(`${l}\n`);
          seen.set(i, l);
        });
      }
    });
    stream.on('error', (e: ServiceError) => reject(remoteError(e)));
    stream.on('end', () => resolve());
  });
  if (!last) throw new RemoteError('NO_EVENTS', `no events for run ${runId}`);
  if (!FINAL.includes(last.state)) return unary<Run>((cb) => c.getRun({ runId }, cb));
  return last;
}

/** `cvc run submit|watch|list|show|cancel` */
export async function runCommand(argv: string[], env: CliEnv): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      cluster: { type: 'string' },
      dataset: { type: 'string' },
      model: { type: 'string' },
      folds: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      'learning-rate': { type: 'string' },
      seed: { type: 'string' },
      upsample: { type: 'string' },
      name: { type: 'string' },
      'dataset-version': { type: 'string' },
      watch: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    `run ${sub ?? ''}`,
  );
  // Flags are checked before any connection is made.
  const spec = sub === 'submit' ? runSpecFromFlags(values) : undefined;
  const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  const c = await runServiceClient(cluster);
  const print = (run: Run): void => {
    env.stdout.write(values['json'] ? JSON.stringify(Run.toJSON(run), null, 2) + '\n' : renderRun(run));
  };
  try {
    switch (sub) {
      case 'submit': {
        const run = await unary<Run>((cb) => c.submitRun({ spec }, cb));
        env.stderr.write(`submitted run ${run.id} (${run.folds.length} folds)\n`);
        if (!values['watch']) {
          env.stdout.write(values['json'] ? JSON.stringify(Run.toJSON(run), null, 2) + '\n' : `${run.id}\n`);
          return 0;
        }
        const done = await watchRun(c, run.id, env);
        print(done);
        return done.state === RunState.RUN_STATE_SUCCEEDED ? 0 : 1;
      }
      case 'watch': {
        const id = positionals[0];
        if (!id) throw new UsageError('run watch needs a RUN id');
        const done = await watchRun(c, id, env);
        print(done);
        return done.state === RunState.RUN_STATE_SUCCEEDED ? 0 : 1;
      }
      case 'show': {
        const id = positionals[0];
        if (!id) throw new UsageError('run show needs a RUN id');
        print(await unary<Run>((cb) => c.getRun({ runId: id }, cb)));
        return 0;
      }
      case 'cancel': {
        const id = positionals[0];
        if (!id) throw new UsageError('run cancel needs a RUN id');
        print(await unary<Run>((cb) => c.cancelRun({ runId: id }, cb)));
        return 0;
      }
      case 'list': {
        const { runs } = await unary<ListRunsResponse>((cb) => c.listRuns({}, cb));
        if (values['json']) env.stdout.write(JSON.stringify(runs.map((r) => Run.toJSON(r)), null, 2) + '\n');
        else
          env.stdout.write(
            table(
              ['run', 'state', 'model', 'dataset', 'folds done', 'val loss'],
              runs.map((r) => [r.id, stateName(r.state), r.spec?.model ?? '', r.spec?.dataset ?? '', `${r.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED).length}/${r.folds.length}`, r.summary?.valLoss ? `${num(r.summary.valLoss.mean)} +- ${num(r.summary.valLoss.std)}` : '-']),
            ) + '\n',
          );
        return 0;
      }
      default:
        throw new UsageError(`unknown 'run ${sub ?? ''}' (use submit, watch, list, show or cancel)`);
    }
  } finally {
    c.close();
  }
}
