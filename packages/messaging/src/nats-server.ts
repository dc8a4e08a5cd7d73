import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MessagingError } from './errors.js';

/** A nats-server process with JetStream, started by cvc on loopback. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Stops the server (SIGTERM, then SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** Kills it at once (fault tests). */
  kill(): void;
}

/** The nats-server binary: `bin`, else CVC_NATS_SERVER, else `nats-server` on PATH (Debian's package). */
export const natsServerBin = (bin?: string): string => bin ?? process.env['CVC_NATS_SERVER'] ?? 'nats-server';

/** A spawned nats-server that printed "Server is ready", with its client port. */
export interface SpawnedNats extends NatsServer {
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
}

/**
 * Spawns `bin args` and resolves once it logs that it is ready and listening
 * for clients; the process's output keeps being drained so its pipe never
 * fills (into `log` when given).
 */
export async function spawnNats(bin: string, args: readonly string[], log?: NodeJS.WritableStream): Promise<SpawnedNats> {
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new MessagingError('NATS_START', `could not start ${bin}: ${(err as Error).message}`, { cause: err });
  }
  let text = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      text += c.toString();
      const m = /Listening for client connections on [\d.]+:(\d+)/.exec(text);
      if (m && /Server is ready/.test(text)) {
        child.stderr?.off('data', onData);
        child.stdout?.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('error', (err) =>
      reject(
        new MessagingError(
          'NATS_START',
          `could not start ${bin} (${(err as NodeJS.ErrnoException).code ?? err.message}); install Debian's nats-server package or set CVC_NATS_SERVER`,
          { cause: err },
        ),
      ),
    );
    child.once('exit', (code) => reject(new MessagingError('NATS_START', `${bin} exited with code ${code} before it was ready:\n${text.slice(-2000)}`)));
  });
  // Keep draining output so the pipe never fills.
  if (log) {
    log.write(text);
    child.stderr?.pipe(log, { end: false });
    child.stdout?.pipe(log, { end: false });
  } else {
    child.stderr?.resume();
    child.stdout?.resume();
  }
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    exited,
    kill: () => void child.kill('SIGKILL'),
    stop: async (graceMs = 5000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * Starts `nats-server -js -sd DIR -a 127.0.0.1 -p PORT` (Debian's package; found
 * on PATH or at `bin`). Port 0 picks a free port. With `user` and `pass`,
 * clients must authenticate. Resolves once the server accepts clients.
 */
export async function startNatsServer(storeDir: string, opts: { port?: number; bin?: string; user?: string; pass?: string } = {}): Promise<NatsServer> {
  await mkdir(storeDir, { recursive: true });
  const args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(opts.port && opts.port > 0 ? opts.port : -1)];
  if (opts.user && opts.pass) {
    // A config file (mode 0600), so the password never shows in the process list.
    const conf = join(storeDir, 'cvc-auth.conf');
    await writeFile(conf, `authorization {\n  user: ${JSON.stringify(opts.user)}\n  password: ${JSON.stringify(opts.pass)}\n}\n`, { mode: 0o600 });
    args.push('-c', conf);
  }
  const s = await spawnNats(natsServerBin(opts.bin), args);
  return { url: s.url, port: s.port, pid: s.pid, kill: () => s.kill(), stop: (graceMs) => s.stop(graceMs) };
}
