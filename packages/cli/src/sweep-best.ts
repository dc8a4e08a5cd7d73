import type { Run, RunServiceClient, Sweep, SweepServiceClient } from '@cvc/proto';
import { RemoteError } from './errors.js';
import { unary } from './rpc.js';
import { sweepStateName } from './sweep-render.js';

/** The run an id names: the run itself, or a sweep's best run (`sweepId` then says which sweep). */
export interface ResolvedRun {
  readonly run: Run;
  readonly sweepId?: string;
}

/**
 * The run `id` names for `cvc encoder fetch`: a run id, or a sweep id, which
 * the coordinator resolves (GetSweep) to the sweep's best run. An id that is
 * neither is the run's NOT_FOUND; a sweep without a best run yet (no run has
 * finished) is NOT_FINISHED naming the sweep and its state.
 */
export async function resolveRunOrSweep(runs: RunServiceClient, sweeps: SweepServiceClient, id: string, signal: AbortSignal | undefined): Promise<ResolvedRun> {
  const what = `encoder fetch ${id}`;
  try {
    return { run: await unary<Run>(signal, what, (cb) => runs.getRun({ runId: id }, cb)) };
  } catch (err) {
    if (!(err instanceof RemoteError && err.code === 'GRPC_NOT_FOUND')) throw err;
    let sweep: Sweep;
    try {
      sweep = await unary<Sweep>(signal, what, (cb) => sweeps.getSweep({ sweepId: id }, cb));
    } catch (sweepErr) {
      // Not a sweep either (or a coordinator without sweeps): the run's NOT_FOUND says it best.
      if (sweepErr instanceof RemoteError && (sweepErr.code === 'GRPC_NOT_FOUND' || sweepErr.code === 'GRPC_UNIMPLEMENTED'))
        throw new RemoteError('GRPC_NOT_FOUND', `${id} is neither a run nor a sweep of this cluster`, { cause: err });
      throw sweepErr;
    }
    if (!sweep.bestRunId) throw new RemoteError('NOT_FINISHED', `sweep ${id} has no best run yet (it is ${sweepStateName(sweep.state)}; no run has finished)`);
    const bestRunId = sweep.bestRunId;
    return { run: await unary<Run>(signal, what, (cb) => runs.getRun({ runId: bestRunId }, cb)), sweepId: id };
  }
}
