import { FoldState, Run, type RunServiceClient, RunState, type ListRunsResponse, type RunEvent } from '@cvc/proto';
import type { CliEnv } from './env.js';
import { parse, refuseFlags } from './args.js';
import { RUN_SPEC_FLAG_OPTIONS, runSpecFromFlags } from './run-spec-flags.js';
import { UsageError } from './errors.js';
import { listTable, num, table } from './format.js';
import { resolveCluster, runServiceClient } from './cluster-config.js';
import { Progress, type ProgressOptions } from './progress.js';
import { followUntilFinal, unary } from './rpc.js';
import { foldBar, foldName, progressText } from './run-progress.js';
import { fetchPages, LIST_PAGE_OPTIONS, listScope, moreLine } from './list-pages.js';

export { RemoteError } from './errors.js';

// A sweep's run may end STOPPED (stopped early at a rung).
const FINAL = [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED, RunState.RUN_STATE_STOPPED];
const stateName = (s: RunState): string => (RunState[s] ?? 'UNRECOGNIZED').replace('RUN_STATE_', '').toLowerCase();

/**
 * A run as `--json` prints it: proto3 JSON with every field, zero values
 * included (fold 0's `fold`, a fresh fold's `attempts`, ts-proto's
 * emitDefaultValues) and empty lists as [] (which ts-proto leaves out).
 */
export function runJson(run: Run): unknown {
  return withEmptyLists(run, Run.toJSON(run));
}

/** Adds `[]` to `json` for every list of `message` that toJSON left out, recursively. */
export function withEmptyLists(message: unknown, json: unknown): unknown {
  if (typeof message !== 'object' || message === null || typeof json !== 'object' || json === null || message instanceof Uint8Array) return json;
  const m = message as Record<string, unknown>;
  const j = json as Record<string, unknown>;
  for (const [k, v] of Object.entries(m)) {
    if (Array.isArray(v)) {
      if (j[k] === undefined) j[k] = [];
      else if (Array.isArray(j[k])) v.forEach((e, i) => withEmptyLists(e, (j[k] as unknown[])[i]));
    } else withEmptyLists(v, j[k]);
  }
  return j;
}

/** The fold table and summary of a run, as text; running folds show where they are inside their epoch. */
export function renderRun(run: Run): string {
  const rows = run.folds.map((f) => {
    const last = f.history[f.history.length - 1];
    return [
      String(f.fold),
      foldName(f.state),
      `${f.history.length}/${run.spec?.epochs ?? '?'}`,
      progressText(f) || '-',
      last ? num(last.valLoss) : '-',
      f.val ? num(f.val.loss) : '-',
      f.test ? num(f.test.loss) : '-',
      String(f.attempts),
      f.error ? f.error.slice(0, 60) : '',
    ];
  });
  const lines = [
    `run ${run.id}: ${stateName(run.state)} (${run.spec?.model} on ${run.spec?.dataset} version ${run.datasetVersion})`,
    table(['fold', 'state', 'epochs', 'in epoch', 'last val', 'best val', 'test', 'attempts', 'error'], rows),
  ];
  const s = run.summary;
  if (s?.valLoss) {
    lines.push(
      '',
      `mean +- std over folds: train ${num(s.trainLoss?.mean ?? NaN)} +- ${num(s.trainLoss?.std ?? NaN)}  val ${num(s.valLoss.mean)} +- ${num(s.valLoss.std)}  test ${num(s.testLoss?.mean ?? NaN)} +- ${num(s.testLoss?.std ?? NaN)}`,
    );
    lines.push(`best fold: ${s.bestFold}${s.encoder ? `; encoder at ${s.encoder}/model.json` : ''}`);
  }
  // A fold that could not resume from its checkpoint says so (it restarted from an older one, or from scratch).
  const fallbacks = run.folds.filter((f) => f.checkpointFallback);
  if (fallbacks.length > 0) lines.push('', ...fallbacks.map((f) => `fold ${f.fold}: ${f.checkpointFallback}`));
  if (run.stopReason) lines.push(`stopped early by sweep ${run.sweepId}: ${run.stopReason}`);
  if (run.error) lines.push(`error: ${run.error}`);
  return lines.join('\n') + '\n';
}

/** Draws one bar per fold of every run document it is given (run watch, run submit --watch). */
export class RunProgress {
  private readonly progress: Progress;

  constructor(out: CliEnv['stderr'], opts: ProgressOptions = {}) {
    this.progress = new Progress(out, opts);
  }

  /** Redraws (or logs, without a terminal) the folds of `run`. */
  update(run: Run): void {
    for (const f of run.folds) this.progress.set(`fold ${f.fold}`, foldBar(run, f));
  }

  stop(): void {
    this.progress.stop();
  }
}

/**
 * Follows a run until it ends: a bar per fold (epochs, and images inside the
 * current epoch), redrawn on a terminal and logged per change elsewhere.
 * An abort of `signal` stops watching (the run goes on) with a CancelledError.
 */
export async function watchRun(c: RunServiceClient, runId: string, env: CliEnv, signal?: AbortSignal, opts: ProgressOptions = {}): Promise<Run> {
  const bars = new RunProgress(env.stderr, opts);
  return followUntilFinal(signal, env.stderr, {
    what: `run ${runId}`,
    noun: 'run',
    again: `cvc run watch ${runId} follows it again, cvc run cancel ${runId} stops it`,
    stream: c.watchRun({ runId }),
    pick: (e: RunEvent) => e.run,
    onEvent: (run) => bars.update(run),
    stop: () => bars.stop(),
    isFinal: (run) => FINAL.includes(run.state),
    refetch: () => unary<Run>(signal, `run show ${runId}`, (cb) => c.getRun({ runId }, cb)),
  });
}

const RUN_SUBCOMMANDS: readonly string[] = ['submit', 'watch', 'list', 'show', 'cancel'];

/** `cvc run submit|watch|list|show|cancel` */
export async function runCommand(argv: string[], env: CliEnv, signal?: AbortSignal): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || !RUN_SUBCOMMANDS.includes(sub)) throw new UsageError(`unknown 'run ${sub ?? ''}' (use submit, watch, list, show or cancel)`);
  const options = {
    ...RUN_SPEC_FLAG_OPTIONS,
    watch: { type: 'boolean' },
    json: { type: 'boolean' },
    ...LIST_PAGE_OPTIONS,
  } as const;
  const { values, positionals } = parse(rest, options, `run ${sub}`);
  const listFlags = Object.keys(LIST_PAGE_OPTIONS);
  if (sub !== 'list') refuseFlags(values, listFlags, 'run list');
  if (sub !== 'submit')
    refuseFlags(
      values,
      Object.keys(options).filter((f) => f !== 'cluster' && f !== 'json' && !listFlags.includes(f)),
      'run submit',
    );
  const scope = sub === 'list' ? listScope(values) : undefined;
  if (sub !== 'submit' && sub !== 'list' && !positionals[0]) throw new UsageError(`run ${sub} needs a RUN id`);
  // Flags are checked before any connection is made.
  const spec = sub === 'submit' ? await runSpecFromFlags(values) : undefined;
  const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  const c = await runServiceClient(cluster);
  const print = (run: Run): void => {
    env.stdout.write(values['json'] ? JSON.stringify(runJson(run), null, 2) + '\n' : renderRun(run));
  };
  try {
    switch (sub) {
      case 'submit': {
        const run = await unary<Run>(signal, 'run submit', (cb) => c.submitRun({ spec }, cb));
        env.stderr.write(`submitted run ${run.id} (${run.folds.length} folds)\n`);
        if (!values['watch']) {
          env.stdout.write(values['json'] ? JSON.stringify(runJson(run), null, 2) + '\n' : `${run.id}\n`);
          return 0;
        }
        const done = await watchRun(c, run.id, env, signal);
        print(done);
        return done.state === RunState.RUN_STATE_SUCCEEDED ? 0 : 1;
      }
      case 'watch': {
        const id = positionals[0];
        if (!id) throw new UsageError('run watch needs a RUN id');
        const done = await watchRun(c, id, env, signal);
        print(done);
        return done.state === RunState.RUN_STATE_SUCCEEDED ? 0 : 1;
      }
      case 'show': {
        const id = positionals[0];
        if (!id) throw new UsageError('run show needs a RUN id');
        print(await unary<Run>(signal, `run show ${id}`, (cb) => c.getRun({ runId: id }, cb)));
        return 0;
      }
      case 'cancel': {
        const id = positionals[0];
        if (!id) throw new UsageError('run cancel needs a RUN id');
        print(await unary<Run>(signal, `run cancel ${id}`, (cb) => c.cancelRun({ runId: id }, cb)));
        return 0;
      }
      case 'list': {
        const { items: runs, more } = await fetchPages(scope ?? listScope({}), async (req) => {
          const a = await unary<ListRunsResponse>(signal, 'run list', (cb) => c.listRuns(req, cb));
          return { ...a, items: a.runs };
        });
        if (values['json'])
          env.stdout.write(
            JSON.stringify(
              runs.map((r) => runJson(r)),
              null,
              2,
            ) + '\n',
          );
        else
          env.stdout.write(
            listTable(
              ['run', 'state', 'model', 'dataset', 'folds done', 'val loss'],
              runs.map((r) => [
                r.id,
                stateName(r.state),
                r.spec?.model ?? '',
                r.spec?.dataset ?? '',
                `${r.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED).length}/${r.folds.length}`,
                r.summary?.valLoss ? `${num(r.summary.valLoss.mean)} +- ${num(r.summary.valLoss.std)}` : '-',
              ]),
              'no runs yet (cvc run submit --dataset NAME --model M starts one)',
            ) + '\n',
          );
        env.stderr.write(moreLine(more, 'cvc run list'));
        return 0;
      }
      default:
        throw new UsageError(`unknown 'run ${sub ?? ''}' (use submit, watch, list, show or cancel)`);
    }
  } finally {
    c.close();
  }
}
