import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Metadata,
  Server,
  makeGenericClientConstructor,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceError,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { ConfigError, createJsonLogger } from '@cvc/core';
import { AuthError, createTokenAuthenticator, ensureLocalPki, generateToken, grpcClientSetup, grpcServerSecurity, parseTokens } from './index.js';

const user = generateToken();
const worker = generateToken();

test('tokens: roles, missing, malformed and unknown tokens, weak configuration refused', () => {
  const auth = createTokenAuthenticator({ userTokens: [user, 'second-user-token-xyz'], workerTokens: [worker] });
  assert.equal(auth.authenticate(`Bearer ${user}`), 'user');
  assert.equal(auth.authenticate(`bearer   second-user-token-xyz`), 'user');
  assert.equal(auth.authenticate(`Bearer ${worker}`), 'worker');
  const kind = (k: string, re: RegExp) => (e: unknown) => e instanceof AuthError && e.kind === k && re.test(e.message);
  assert.throws(() => auth.authenticate(undefined), kind('UNAUTHENTICATED', /missing bearer token/));
  assert.throws(() => auth.authenticate(user), kind('UNAUTHENTICATED', /malformed/));
  assert.throws(() => auth.authenticate(`Bearer ${user}x`), kind('UNAUTHENTICATED', /invalid token/));
  assert.throws(
    () => auth.authorize(`Bearer ${worker}`, 'user', 'RunService.SubmitRun'),
    kind('PERMISSION_DENIED', /worker token may not call RunService.SubmitRun/),
  );
  assert.throws(() => auth.authorize(`Bearer ${user}`, 'worker', 'WorkerService.ReportEpoch'), kind('PERMISSION_DENIED', /user token/));
  assert.throws(
    () => parseTokens('short', 'CVC_USER_TOKENS'),
    (e: unknown) => e instanceof ConfigError && /CVC_USER_TOKENS: token #1 is 5 characters/.test(e.message) && !e.message.includes('short'),
  );
  assert.deepEqual(parseTokens(` ${user} ,, ${worker} `, 'X'), [user, worker]);
  assert.throws(() => createTokenAuthenticator({ userTokens: [user], workerTokens: [user] }), /must not also be a user token/);
  assert.throws(() => createTokenAuthenticator({ userTokens: [], workerTokens: [worker] }), /CVC_USER_TOKENS/);
});

test('the server refuses to start without TLS and tokens unless CVC_INSECURE=true', async () => {
  await assert.rejects(
    grpcServerSecurity({ CVC_INSECURE: 'false' }),
    (e: unknown) => e instanceof ConfigError && /CVC_TLS_CERT, CVC_TLS_KEY, CVC_USER_TOKENS, CVC_WORKER_TOKENS: required/.test(e.message),
  );
  await assert.rejects(
    grpcServerSecurity({
      CVC_INSECURE: 'false',
      CVC_TLS_CERT: '/nonexistent.pem',
      CVC_TLS_KEY: '/nonexistent.pem',
      CVC_USER_TOKENS: user,
      CVC_WORKER_TOKENS: worker,
    }),
    /CVC_TLS_CERT: cannot read \/nonexistent.pem: ENOENT/,
  );
  const dev = await grpcServerSecurity({ CVC_INSECURE: 'true' });
  assert.equal(dev.tls, false);
  assert.equal(dev.auth, undefined);
});

test('logs never show secrets: credential-named fields and known secret values are redacted', () => {
  const lines: string[] = [];
  const log = createJsonLogger('debug', (l) => lines.push(l), {}, [user]);
  log.info('connecting', { url: `nats://cvc:${user}@host:4222`, token: 'abc', natsPass: 'p', secretKey: 's', authorization: 'Bearer x', key: 'runs/a/b.ckpt' });
  log.error(`failed with ${user} in the message`);
  const text = lines.join('');
  assert.ok(!text.includes(user));
  const first = JSON.parse(lines[0] ?? '{}') as Record<string, string>;
  assert.equal(first['token'], '[redacted]');
  assert.equal(first['natsPass'], '[redacted]');
  assert.equal(first['secretKey'], '[redacted]');
  assert.equal(first['authorization'], '[redacted]');
  assert.equal(first['key'], 'runs/a/b.ckpt', 'object keys are not secrets');
  assert.equal(first['url'], 'nats://cvc:[redacted]@host:4222');
});

// A one-method service with raw-buffer messages: enough to exercise the transport.
const echo: ServiceDefinition = {
  echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

test('TLS and mutual TLS with the generated CA: plaintext, unknown CAs and clients without a certificate are refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-pki-'));
  try {
    const pki = await ensureLocalPki(join(dir, 'pki'));
    assert.equal((await stat(pki.keyFile)).mode & 0o077, 0, 'private keys are 0600');
    const again = await ensureLocalPki(join(dir, 'pki'));
    assert.deepEqual(again, pki, 'an existing PKI is kept');
    const sec = await grpcServerSecurity({
      CVC_INSECURE: 'false',
      CVC_TLS_CERT: pki.certFile,
      CVC_TLS_KEY: pki.keyFile,
      CVC_TLS_CLIENT_CA: pki.caFile,
      CVC_USER_TOKENS: user,
      CVC_WORKER_TOKENS: worker,
    });
    assert.ok(sec.tls && sec.mutualTls);
    const server = new Server();
    server.addService(echo, {
      echo: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
        try {
          const role = sec.auth?.authenticate(call.metadata.get('authorization')[0] as string | undefined);
          cb(null, Buffer.concat([call.request, Buffer.from(`:${role}`)]));
        } catch (err) {
          cb({ code: status.UNAUTHENTICATED, details: (err as Error).message });
        }
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', sec.credentials, (e, p) => (e ? rej(e) : res(p))));
    const Client = makeGenericClientConstructor(echo, 'Echo');
    const ask = async (setup: Awaited<ReturnType<typeof grpcClientSetup>>): Promise<string> => {
      const c = new Client(`127.0.0.1:${port}`, setup.credentials, setup.options);
      try {
        return await new Promise<string>((res, rej) =>
          (c as unknown as { echo: (r: Buffer, m: Metadata, o: object, cb: (e: ServiceError | null, r: Buffer) => void) => void }).echo(
            Buffer.from('hi'),
            new Metadata(),
            { deadline: Date.now() + 5000 },
            (e, r) => (e ? rej(e) : res(r.toString())),
          ),
        );
      } finally {
        c.close();
      }
    };
    const full = { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, serverName: 'localhost', token: worker };
    assert.equal(await ask(await grpcClientSetup(full)), 'hi:worker');
    const refused = (e: ServiceError) => e.code === status.UNAVAILABLE || e.code === status.DEADLINE_EXCEEDED;
    await assert.rejects(ask(await grpcClientSetup({ ...full, certFile: undefined, keyFile: undefined })), refused, 'no client certificate');
    await assert.rejects(ask(await grpcClientSetup({ ...full, caFile: undefined })), refused, 'the system roots do not trust the local CA');
    await assert.rejects(ask(await grpcClientSetup({ insecure: true, token: worker })), refused, 'plaintext');
    await assert.rejects(ask(await grpcClientSetup({ ...full, token: 'x'.repeat(20) })), (e: ServiceError) => e.code === status.UNAUTHENTICATED);
    await assert.rejects(grpcClientSetup({ ...full, keyFile: undefined }), /needs its key/);
    server.forceShutdown();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an existing local PKI is kept while it is valid, and made again once a certificate has expired', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-pki-'));
  const { X509Certificate } = await import('node:crypto');
  const notAfter = async (file: string): Promise<number> => Date.parse(new X509Certificate(await readFile(file)).validTo);
  try {
    const fresh = await ensureLocalPki(join(dir, 'fresh'));
    const ca = await readFile(fresh.caFile, 'utf8');
    await ensureLocalPki(join(dir, 'fresh'));
    assert.equal(await readFile(fresh.caFile, 'utf8'), ca, 'a valid PKI is kept, byte for byte');

    // Valid for 0 days: expired by the next start of the local cluster.
    const old = await ensureLocalPki(join(dir, 'old'), ['localhost'], 0);
    assert.ok((await notAfter(old.certFile)) <= Date.now());
    const renewed = await ensureLocalPki(join(dir, 'old'));
    for (const f of [renewed.caFile, renewed.certFile, renewed.clientCertFile]) {
      assert.ok((await notAfter(f)) > Date.now() + 300 * 24 * 3600 * 1000, `${f} is valid again`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an existing local PKI whose server certificate does not cover the names asked for now is made again', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-pki-'));
  const { X509Certificate } = await import('node:crypto');
  try {
    const pki = await ensureLocalPki(dir, ['localhost']);
    const server = async (): Promise<InstanceType<typeof X509Certificate>> => new X509Certificate(await readFile(pki.certFile));
    assert.equal((await server()).checkHost('cvc.example.org'), undefined);
    await ensureLocalPki(dir, ['localhost', 'cvc.example.org', '10.1.2.3']);
    assert.equal((await server()).checkHost('cvc.example.org'), 'cvc.example.org');
    assert.equal((await server()).checkIP('10.1.2.3'), '10.1.2.3');
    // A subset of the names it has: kept.
    const ca = await readFile(pki.caFile, 'utf8');
    await ensureLocalPki(dir, ['cvc.example.org']);
    assert.equal(await readFile(pki.caFile, 'utf8'), ca);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
