import type { Run } from '@cvc/proto';
import { FINAL_RUN_STATES } from './run-doc.js';

/** What the index keeps of one run: facts that never change once seen. */
interface Entry {
  readonly createdAtMs: number;
  /** Once a run is final it stays so (nothing moves a run out of a final state). */
  final: boolean;
}

/**
 * What this coordinator has seen of each run, from every read and write of a
 * run document: its creation time (which never changes) and whether it has
 * ended (for good). It lets the periodic recovery skip ended runs' documents
 * and ListRuns read only the page it answers, instead of every document each
 * time. Runs another coordinator created or ended are learnt at their first
 * read here; an entry is never wrong, only possibly behind (a run not known
 * to have ended is simply read). About 100 bytes per run.
 */
export class RunIndex {
  private readonly entries = new Map<string, Entry>();

  /** Records what `run` shows. */
  saw(run: Run): void {
    const final = FINAL_RUN_STATES.includes(run.state);
    const e = this.entries.get(run.id);
    if (e) e.final ||= final;
    else this.entries.set(run.id, { createdAtMs: run.createdAtMs, final });
  }

  /** True when `id` was seen in a final state. */
  isFinal(id: string): boolean {
    return this.entries.get(id)?.final === true;
  }

  /** When `id` was created, or undefined when it was never seen. */
  createdAt(id: string): number | undefined {
    return this.entries.get(id)?.createdAtMs;
  }
}
