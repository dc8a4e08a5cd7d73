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

/**
 * Starts `nats-server -js -sd DIR -a 127.0.0.1 -p PORT` (Debian's package; found
 * on PATH or at `bin`). Port 0 picks a free port. With `user` and `pass`,
 * clients must authenticate. Resolves once the server accepts clients.
 */
export async function startNatsServer(storeDir: string, opts: { port?: number; bin?: string; user?: string; pass?: string } = {}): Promise<NatsServer> {
  await mkdir(storeDir, { recursive: true });
  const bin = opts.bin ?? process.env['CVC_NATS_SERVER'] ?? 'nats-server';
  const args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(opts.port && opts.port > 0 ? opts.port : -1)];
  if (opts.user && opts.pass) {
    // A config file (mode 0600), so the password never shows in the process list.
    const conf = join(storeDir, 'cvc-auth.conf');
    await writeFile(conf, `authorization {\n  user: ${JSON.stringify(opts.user)}\n  password: ${JSON.stringify(opts.pass)}\n}\n`, { mode: 0o600 });
    args.push('-c', conf);
  }
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new MessagingError('NATS_START', `could not start ${bin}: ${(err as Error).message}`, { cause: err });
  }
  const port = await new Promise<number>((resolve, reject) => {
    let log = '';
    const onData = (c: Buffer): void => {
      log += c.toString();
      const m = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
      if (m && /Server is ready/.test(log)) {
        child.stderr?.off('data', onData);
        child.stdout?.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('error', (err) =>
      reject(new MessagingError('NATS_START', `could not start ${bin} (${(err as NodeJS.ErrnoException).code ?? err.message}); install Debian's nats-server package or set CVC_NATS_SERVER`, { cause: err })),
    );
    child.once('exit', (code) => reject(new MessagingError('NATS_START', `${bin} exited with code ${code} before it was ready:\n${log.slice(-2000)}`)));
  });
  // Keep draining output so the pipe never fills.
  child.stderr?.resume();
  child.stdout?.resume();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
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
