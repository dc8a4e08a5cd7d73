import { RunState, SweepState, type ListSweepsResponse, type Sweep, type SweepEvent, type SweepServiceClient } from '@cvc/proto';
import type { CliEnv } from './env.js';
import { parse, refuseFlags } from './args.js';
import { fetchPages, LIST_PAGE_OPTIONS, listScope, moreLine } from './list-pages.js';
import { RUN_SPEC_FLAG_OPTIONS } from './run-spec-flags.js';
import { UsageError } from './errors.js';
import { num } from './format.js';
import { resolveCluster, sweepServiceClient } from './cluster-config.js';
import { Progress, type ProgressOptions } from './progress.js';
import { followUntilFinal, unary } from './rpc.js';
import { sweepSpecFromFlags, gridSize } from './sweep-flags.js';
import {
  currentScore,
  FINAL_SWEEP_STATES,
  renderSweep,
  renderSweepList,
  stoppedText,
  sweepJson,
  sweepStateName,
  trialEpochs,
  trialParams,
  trialStateName,
} from './sweep-render.js';

/** The parseArgs options of `cvc sweep`: the run-submit flags for the base spec plus the sweep's own. */
export const SWEEP_FLAG_OPTIONS = {
  ...RUN_SPEC_FLAG_OPTIONS,
  grid: { type: 'string', multiple: true },
  random: { type: 'string' },
  'early-stop': { type: 'string' },
  rungs: { type: 'string' },
  'reduction-factor': { type: 'string' },
  'max-parallel-runs': { type: 'string' },
  watch: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

const ENDED_TRIAL = [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED, RunState.RUN_STATE_STOPPED];

/**
 * The live view of a sweep: a line for the sweep (trials ended, the best so
 * far) and a bar per trial (epochs every fold has reached, state, current
 * score, why it stopped); each new rung decision is logged above them.
 */
export class SweepProgress {
  private readonly progress: Progress;
  private decisions = 0;

  constructor(out: CliEnv['stderr'], opts: ProgressOptions = {}) {
    this.progress = new Progress(out, opts);
  }

  /** Redraws (or logs, without a terminal) the sweep and its trials. */
  update(sweep: Sweep): void {
    for (const d of sweep.decisions.slice(this.decisions))
      this.progress.log(
        `rung ${d.rung}: trial ${d.trial} ${d.stopped ? 'stopped' : 'continues'} (mean val loss ${num(d.score)})${d.reason ? `: ${d.reason}` : ''}`,
      );
    this.decisions = Math.max(this.decisions, sweep.decisions.length);
    const ended = sweep.trials.filter((t) => ENDED_TRIAL.includes(t.state)).length;
    const best = sweep.trials.find((t) => t.index === sweep.bestTrial);
    this.progress.set('sweep', {
      label: `sweep ${sweepStateName(sweep.state)}`,
      value: ended,
      total: sweep.trials.length,
      detail: `trials ended${best?.valLoss ? `  best trial ${best.index} val ${num(best.valLoss.mean)}` : ''}`,
    });
    for (const t of sweep.trials) {
      const stopped = t.state === RunState.RUN_STATE_STOPPED ? `stopped at ${stoppedText(sweep, t)}` : '';
      this.progress.set(`trial ${t.index}`, {
        label: `trial ${t.index} ${trialStateName(t.state)}`,
        value: t.epochsReached,
        total: trialEpochs(sweep, t) ?? 0,
        detail: ['epochs', trialParams(sweep, t), currentScore(sweep, t), stopped].filter((s) => s && s !== '-').join('  '),
      });
    }
  }

  stop(): void {
    this.progress.stop();
  }
}

/**
 * Follows a sweep until it ends (see SweepProgress). An abort of `signal`
 * stops watching (the sweep goes on) with a CancelledError.
 */
export async function watchSweep(c: SweepServiceClient, sweepId: string, env: CliEnv, signal?: AbortSignal, opts: ProgressOptions = {}): Promise<Sweep> {
  const view = new SweepProgress(env.stderr, opts);
  return followUntilFinal(signal, env.stderr, {
    what: `sweep ${sweepId}`,
    noun: 'sweep',
    again: `cvc sweep watch ${sweepId} follows it again, cvc sweep cancel ${sweepId} stops it`,
    stream: c.watchSweep({ sweepId }),
    pick: (e: SweepEvent) => e.sweep,
    onEvent: (sweep) => view.update(sweep),
    stop: () => view.stop(),
    isFinal: (sweep) => FINAL_SWEEP_STATES.includes(sweep.state),
    refetch: () => unary<Sweep>(signal, `sweep show ${sweepId}`, (cb) => c.getSweep({ sweepId }, cb)),
  });
}

/** `cvc sweep submit|watch|show|list|cancel` */
export async function sweepCommand(argv: string[], env: CliEnv, signal?: AbortSignal): Promise<number> {
  const [sub, ...rest] = argv;
  if (!['submit', 'watch', 'show', 'list', 'cancel'].includes(sub ?? ''))
    throw new UsageError(`unknown 'sweep ${sub ?? ''}' (use submit, watch, show, list or cancel)`);
  const { values, positionals } = parse(rest, { ...SWEEP_FLAG_OPTIONS, ...LIST_PAGE_OPTIONS }, `sweep ${sub}`);
  if (sub !== 'list') refuseFlags(values, Object.keys(LIST_PAGE_OPTIONS), 'sweep list');
  const scope = sub === 'list' ? listScope(values) : undefined;
  if (sub !== 'submit')
    refuseFlags(
      values,
      Object.keys(SWEEP_FLAG_OPTIONS).filter((f) => f !== 'cluster' && f !== 'json'),
      'sweep submit',
    );
  // Flags are checked before any connection is made.
  const spec = sub === 'submit' ? await sweepSpecFromFlags(values) : undefined;
  const id = positionals[0];
  if (sub !== 'submit' && sub !== 'list' && !id) throw new UsageError(`sweep ${sub} needs a SWEEP id`);
  const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  const c = await sweepServiceClient(cluster);
  const print = (sweep: Sweep): void => {
    env.stdout.write(values['json'] ? JSON.stringify(sweepJson(sweep), null, 2) + '\n' : renderSweep(sweep));
  };
  const exitCode = (s: Sweep): number => (s.state === SweepState.SWEEP_STATE_SUCCEEDED ? 0 : 1);
  try {
    switch (sub) {
      case 'submit': {
        const sweep = await unary<Sweep>(signal, 'sweep submit', (cb) => c.submitSweep({ spec }, cb));
        const grid = spec?.grid ?? [];
        env.stderr.write(
          `submitted sweep ${sweep.id}: ${sweep.trials.length} of ${gridSize(grid)} configurations x ${spec?.base?.folds ?? 'default'} folds, early stopping ${spec?.earlyStop}\n`,
        );
        if (!values['watch']) {
          env.stdout.write(values['json'] ? JSON.stringify(sweepJson(sweep), null, 2) + '\n' : `${sweep.id}\n`);
          return 0;
        }
        const done = await watchSweep(c, sweep.id, env, signal);
        print(done);
        return exitCode(done);
      }
      case 'watch': {
        const done = await watchSweep(c, id as string, env, signal);
        print(done);
        return exitCode(done);
      }
      case 'show':
        print(await unary<Sweep>(signal, `sweep show ${id}`, (cb) => c.getSweep({ sweepId: id as string }, cb)));
        return 0;
      case 'cancel':
        print(await unary<Sweep>(signal, `sweep cancel ${id}`, (cb) => c.cancelSweep({ sweepId: id as string }, cb)));
        return 0;
      default: {
        const { items: sweeps, more } = await fetchPages(scope ?? listScope({}), async (req) => {
          const a = await unary<ListSweepsResponse>(signal, 'sweep list', (cb) => c.listSweeps(req, cb));
          return { ...a, items: a.sweeps };
        });
        env.stdout.write(values['json'] ? JSON.stringify(sweeps.map(sweepJson), null, 2) + '\n' : renderSweepList(sweeps));
        env.stderr.write(moreLine(more, 'cvc sweep list'));
        return 0;
      }
    }
  } finally {
    c.close();
  }
}
