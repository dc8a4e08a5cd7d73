import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathExists } from '@cvc/core';
import { ensureLocalPki, generateToken } from '@cvc/security';
import type { CliEnv } from './env.js';
import { parse } from './args.js';
import { UsageError } from './errors.js';

const DEFAULT_NAMES = ['cvc-coordinator', 'cvc-coordinator.cvc', 'cvc-coordinator.cvc.svc', 'cvc-coordinator.cvc.svc.cluster.local', 'localhost', '127.0.0.1'];

/**
 * `cvc secrets init --out DIR [--names a,b,...]`: a private CA, the
 * coordinator's certificate for the given names, user and worker tokens and a
 * NATS password, as files (keys and tokens mode 0600), plus the kubectl
 * commands that turn them into the cvc-tls and cvc-auth Secrets.
 */
export async function secretsCommand(argv: string[], env: CliEnv): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'init') throw new UsageError(`unknown 'secrets ${sub ?? ''}' (use: cvc secrets init --out DIR [--names a,b])`);
  const { values } = parse(rest, { out: { type: 'string' }, names: { type: 'string' } }, 'secrets init');
  if (typeof values['out'] !== 'string') throw new UsageError('secrets init: --out DIR is required');
  const out = resolve(values['out']);
  const names =
    typeof values['names'] === 'string'
      ? values['names']
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean)
      : DEFAULT_NAMES;
  if (names.length === 0) throw new UsageError('--names needs at least one DNS name or IP address');
  const tokensFile = join(out, 'auth.env');
  if (await pathExists(tokensFile)) throw new UsageError(`${tokensFile} exists: refusing to replace credentials in use (choose another --out)`);
  const pki = await ensureLocalPki(out, names, 825);
  const worker = generateToken();
  const lines = [
    `CVC_USER_TOKENS=${generateToken()}`,
    `CVC_WORKER_TOKENS=${worker}`,
    `CVC_WORKER_TOKEN=${worker}`,
    'NATS_USER=cvc',
    `NATS_PASS=${randomBytes(24).toString('base64url')}`,
  ];
  await writeFile(tokensFile, lines.join('\n') + '\n', { mode: 0o600 });
  await chmod(tokensFile, 0o600);
  env.stdout.write(
    [
      `wrote ${out}: ca.pem, server.pem + server-key.pem (for ${names.join(', ')}), client.pem + client-key.pem (mutual TLS), auth.env (tokens, NATS password; mode 0600)`,
      'Create the Secrets (namespace cvc):',
      `  kubectl -n cvc create secret generic cvc-tls --from-file=tls.crt=${pki.certFile} --from-file=tls.key=${pki.keyFile} --from-file=ca.crt=${pki.caFile}`,
      `  kubectl -n cvc create secret generic cvc-auth --from-env-file=${tokensFile}`,
      'Users then set CVC_TOKEN (the CVC_USER_TOKENS value), CVC_TLS_CA=ca.pem and CVC_COORDINATOR.',
      '',
    ].join('\n'),
  );
  return 0;
}
