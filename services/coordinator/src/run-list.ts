import { MAX_GRPC_MESSAGE_BYTES, Run } from '@cvc/proto';

/**
 * Room left in one gRPC message for a ListRuns answer's runs: the largest
 * message less 64 KiB for framing, field tags and length prefixes.
 */
export const LIST_BUDGET_BYTES = MAX_GRPC_MESSAGE_BYTES - 64 * 1024;

/** What a ListRuns answer holds: the runs it lists, and how many older ones it left out to fit in one message. */
export interface RunListing {
  readonly runs: Run[];
  readonly omitted: number;
}

/**
 * A ListRuns answer that fits in one gRPC message: each run without its
 * folds' epoch histories (GetRun and WatchRun have them; a long run's history
 * is most of its bytes), newest first (`runs` comes sorted so), and, when
 * even that is over `budgetBytes`, only the newest runs that fit. Without
 * this the answer outgrows the message limit after a few hundred runs (a
 * sweep alone makes up to a thousand) and every ListRuns fails with
 * RESOURCE_EXHAUSTED for good.
 */
export function listing(runs: readonly Run[], budgetBytes = LIST_BUDGET_BYTES): RunListing {
  const out: Run[] = [];
  let bytes = 0;
  for (const r of runs) {
    const brief: Run = { ...r, folds: r.folds.map((f) => ({ ...f, history: [] })) };
    // Each entry costs its encoding plus a tag and a length prefix (at most 6 bytes).
    const size = Run.encode(brief).finish().length + 6;
    if (bytes + size > budgetBytes) break;
    bytes += size;
    out.push(brief);
  }
  return { runs: out, omitted: runs.length - out.length };
}
