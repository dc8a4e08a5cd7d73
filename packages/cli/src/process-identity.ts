import { readFile } from 'node:fs/promises';

/**
 * What the OS says about which process a pid is: its start time (field 22 of
 * /proc/PID/stat, clock ticks since boot) and the boot it belongs to
 * (/proc/sys/kernel/random/boot_id). A pid and these two together name one
 * process for good: a pid reused after a crash, a reboot or a wrap-around has
 * another start time or another boot id. Both are absent where the OS has no
 * such /proc (macOS, Windows) or hides the process (hidepid).
 */
export interface ProcessIdentity {
  readonly procStart?: number;
  readonly bootId?: string;
}

/** Reads a /proc file; undefined where it does not exist or may not be read (no /proc, process gone, hidepid). */
async function readProc(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ESRCH' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * The start time (clock ticks since boot) in the text of a /proc/PID/stat,
 * undefined if it is not one. Field 2 (the command, in parentheses) may hold
 * spaces and ')', so the fields are counted from the last ')'.
 */
export function parseProcStart(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ')' come fields 3 (state), 4, ...: field 22 is the 20th of them.
  const field = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/)[19];
  if (field === undefined || !/^\d+$/.test(field)) return undefined;
  const ticks = Number(field);
  return Number.isSafeInteger(ticks) ? ticks : undefined;
}

/** The identity of process `pid` as far as this OS reports it (nothing where there is no /proc). */
export async function processIdentity(pid: number): Promise<ProcessIdentity> {
  if (!Number.isInteger(pid) || pid <= 0) return {};
  const [stat, boot] = await Promise.all([readProc(`/proc/${pid}/stat`), readProc('/proc/sys/kernel/random/boot_id')]);
  const procStart = stat === undefined ? undefined : parseProcStart(stat);
  const bootId = boot?.trim() || undefined;
  return { ...(procStart !== undefined ? { procStart } : {}), ...(bootId !== undefined ? { bootId } : {}) };
}

/**
 * Whether a live pid is provably not the process `recorded` describes: its
 * boot id or its start time differs from what was recorded. False when
 * either side lacks the field (an old record, no /proc): then only the pid
 * can be trusted.
 */
export function isOtherProcess(recorded: ProcessIdentity, now: ProcessIdentity): boolean {
  if (recorded.bootId !== undefined && now.bootId !== undefined && recorded.bootId !== now.bootId) return true;
  // Start times only compare within one boot: a record without a boot id counts as this boot's.
  if (recorded.bootId !== undefined && now.bootId === undefined) return false;
  return recorded.procStart !== undefined && now.procStart !== undefined && recorded.procStart !== now.procStart;
}
