import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FoldState, RunState, type Run } from '@cvc/proto';
import { createObjectStore, layout } from '@cvc/storage';
import type { CliEnv } from './env.js';
import { parse } from './args.js';
import { RemoteError, UsageError } from './errors.js';
import { resolveCluster, runServiceClient } from './cluster-config.js';
import { unary } from './rpc.js';
import { throwIfAborted } from '@cvc/core';
import { num } from './format.js';

const PICTURES = ['originals.png', 'reconstructions.png', 'loss-curves.png'];

/** The run report as Markdown: the fold table, the summary, the best fold, the pictures. */
export function reportMarkdown(run: Run): string {
  const s = run.summary;
  const lines = [
    `# Run ${run.id}`,
    '',
    `${run.spec?.model} on ${run.spec?.dataset} (version ${run.datasetVersion}), ${run.folds.length} folds, ${run.spec?.epochs} epochs, batch ${run.spec?.batchSize}: **${RunState[run.state].replace('RUN_STATE_', '').toLowerCase()}**.`,
    '',
    '| fold | state | best epoch | train loss | val loss | test loss | attempts |',
    '|---|---|---|---|---|---|---|',
    ...run.folds.map(
      (f) =>
        `| ${f.fold}${f.fold === s?.bestFold ? ' (best)' : ''} | ${FoldState[f.state].replace('FOLD_STATE_', '').toLowerCase()} | ${f.bestEpoch || '-'} | ${f.train ? num(f.train.loss) : '-'} | ${f.val ? num(f.val.loss) : '-'} | ${f.test ? num(f.test.loss) : '-'} | ${f.attempts} |`,
    ),
    '',
  ];
  if (s?.valLoss) {
    lines.push(
      'Mean ± std over folds (best-checkpoint evaluations):',
      '',
      `- train loss ${num(s.trainLoss?.mean ?? NaN)} ± ${num(s.trainLoss?.std ?? NaN)}`,
      `- validation loss ${num(s.valLoss.mean)} ± ${num(s.valLoss.std)}`,
      `- test loss ${num(s.testLoss?.mean ?? NaN)} ± ${num(s.testLoss?.std ?? NaN)}`,
      '',
      `Best fold: **${s.bestFold}** (lowest validation loss); its encoder: \`cvc encoder fetch ${run.id}\`.`,
      '',
      '## Test images and their reconstructions by the best fold',
      '',
      '![25 test images](originals.png) ![their reconstructions](reconstructions.png)',
      '',
      '## Loss per epoch (solid: training, dashed: validation)',
      '',
      '![loss curves](loss-curves.png)',
      '',
    );
  }
  if (run.error) lines.push(`Errors: ${run.error}`, '');
  return lines.join('\n');
}

/** `cvc report RUN [--out DIR]` */
export async function reportCommand(argv: string[], env: CliEnv, signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parse(argv, { out: { type: 'string' }, cluster: { type: 'string' } }, 'report');
  const runId = positionals[0];
  if (!runId) throw new UsageError('report needs a RUN id');
  const out = typeof values['out'] === 'string' ? values['out'] : join('reports', runId);
  const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  const c = await runServiceClient(cluster);
  try {
    const run = await unary<Run>(signal, `report ${runId}`, (cb) => c.getRun({ runId }, cb));
    if (run.state !== RunState.RUN_STATE_SUCCEEDED && run.state !== RunState.RUN_STATE_FAILED) {
      throw new RemoteError(
        'NOT_FINISHED',
        `run ${runId} is ${RunState[run.state].replace('RUN_STATE_', '').toLowerCase()}; the report is written when it ends`,
      );
    }
    const store = createObjectStore(cluster.s3);
    await mkdir(out, { recursive: true });
    let got = 0;
    for (const name of PICTURES) {
      throwIfAborted(signal, `report ${runId}`);
      const key = `${layout.reportPrefix(runId)}/${name}`;
      if (!(await store.stat(key))) continue;
      await writeFile(join(out, name), await store.getBytes(key));
      got++;
    }
    await writeFile(join(out, 'report.md'), reportMarkdown(run));
    env.stdout.write(`report of run ${runId} written to ${out}: report.md and ${got} pictures\n`);
    return 0;
  } finally {
    c.close();
  }
}
