import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { credentials, Metadata, Server, ServerCredentials, status, type ServiceError, type ServerErrorResponse } from '@grpc/grpc-js';
import {
  CHECKPOINT_CHUNK_BYTES,
  CheckpointKind,
  RETRY_AFTER_MS_KEY,
  WorkerServiceService,
  type CheckpointChunk,
  type StartAttemptRequest,
  type WorkerServiceServer,
} from '@cvc/proto';
import { CoordinatorClient } from './client.js';

// A fake coordinator: a real grpc-js server on 127.0.0.1 whose StartAttempt
// answers are scripted per run id, so each test drives the client's retries.

/** Per run id: the status codes StartAttempt fails with, in order, before it succeeds. */
const script = new Map<string, (Partial<ServerErrorResponse> & { code: status })[]>();
const calls = new Map<string, number>();
const uploads: { chunks: number; bytes: number; sha256: string; size: number }[] = [];
let uploadRefusals: (Partial<ServerErrorResponse> & { code: status })[] = [];
let uploadHangs = 0;
let server: Server;
let address: string;

const fail = (code: status, hintMs?: number): Partial<ServerErrorResponse> & { code: status } => {
  if (hintMs === undefined) return { code, details: `scripted ${status[code]}` };
  const metadata = new Metadata();
  metadata.set(RETRY_AFTER_MS_KEY, String(hintMs));
  return { code, details: `scripted ${status[code]}`, metadata };
};

const unimplemented = (_call: unknown, cb: (e: Partial<ServerErrorResponse>) => void): void => cb({ code: status.UNIMPLEMENTED });

const fake: WorkerServiceServer = {
  startAttempt: (call, cb) => {
    const r: StartAttemptRequest = call.request;
    calls.set(r.runId, (calls.get(r.runId) ?? 0) + 1);
    // A coordinator that hangs on its first answer to this run (never calls back).
    if (r.runId === 'hangs' && calls.get(r.runId) === 1) return;
    const next = script.get(r.runId)?.shift();
    if (next) {
      cb(next);
      return;
    }
    cb(null, { proceed: true, token: `token-${r.runId}`, datasetVersion: 'v1', manifest: 'm', resumeCheckpoint: '', reason: '' });
  },
  reportEpoch: unimplemented,
  reportProgress: unimplemented,
  finishFold: unimplemented,
  failFold: unimplemented,
  reportBadCheckpoint: unimplemented,
  uploadCheckpoint: (call, cb) => {
    let chunks = 0;
    let bytes = 0;
    let sha256 = '';
    let size = 0;
    const hash = createHash('sha256');
    call.on('data', (m: CheckpointChunk) => {
      if (m.header) size = m.header.size;
      if (m.data.length > 0) {
        chunks++;
        bytes += m.data.length;
        assert.ok(m.data.length <= CHECKPOINT_CHUNK_BYTES);
        hash.update(m.data);
      }
      if (m.sha256) sha256 = m.sha256;
    });
    call.on('end', () => {
      // A coordinator whose object store stalls: it never answers this upload.
      if (uploadHangs > 0) {
        uploadHangs--;
        return;
      }
      const refusal = uploadRefusals.shift();
      if (refusal) {
        cb(refusal);
        return;
      }
      assert.equal(hash.digest('hex'), sha256, 'the last message carries the sha256 of the data');
      uploads.push({ chunks, bytes, sha256, size });
      cb(null, { key: 'runs/r/fold-0/checkpoints/epoch-0001.ckpt', size: bytes });
    });
  },
};

before(async () => {
  server = new Server();
  server.addService(WorkerServiceService, fake);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});
after(() => {
  server.forceShutdown();
});

/** A client with millisecond backoff; the deadline is generous unless a test shortens it. */
const client = (deadlineMs = 10_000): CoordinatorClient =>
  new CoordinatorClient(address, { credentials: credentials.createInsecure() }, { deadlineMs, initialDelayMs: 1, maxDelayMs: 5 });
const start = (c: CoordinatorClient, runId: string): ReturnType<CoordinatorClient['startAttempt']> =>
  c.startAttempt({ runId, fold: 0, worker: 'w', delivery: 1 });

test('UNAVAILABLE is retried until the call succeeds', async () => {
  script.set('flaky', [fail(status.UNAVAILABLE), fail(status.UNAVAILABLE), fail(status.UNAVAILABLE)]);
  const c = client();
  try {
    const r = await start(c, 'flaky');
    assert.equal(r.token, 'token-flaky');
    assert.equal(calls.get('flaky'), 4, 'three refusals, then the answer');
  } finally {
    c.close();
  }
});

test('a try that hangs ends at its per-call deadline (DEADLINE_EXCEEDED) and is retried', async () => {
  const c = new CoordinatorClient(
    address,
    { credentials: credentials.createInsecure() },
    { deadlineMs: 10_000, initialDelayMs: 1, maxDelayMs: 5, callDeadlineMs: 200 },
  );
  try {
    const r = await start(c, 'hangs');
    assert.equal(r.token, 'token-hangs');
    assert.equal(calls.get('hangs'), 2, 'the hung try, then the answer');
  } finally {
    c.close();
  }
});

test('INVALID_ARGUMENT, FAILED_PRECONDITION, DATA_LOSS, UNKNOWN and auth refusals are not retried', async () => {
  const c = client();
  try {
    for (const code of [
      status.INVALID_ARGUMENT,
      status.FAILED_PRECONDITION,
      status.DATA_LOSS,
      status.UNKNOWN,
      status.UNAUTHENTICATED,
      status.PERMISSION_DENIED,
      status.INTERNAL,
    ]) {
      const runId = `final-${status[code]}`;
      script.set(runId, [fail(code)]);
      await assert.rejects(start(c, runId), (e: unknown) => (e as ServiceError).code === code, status[code]);
      assert.equal(calls.get(runId), 1, `${status[code]} is answered once, not retried`);
    }
  } finally {
    c.close();
  }
});

test("RESOURCE_EXHAUSTED is retried only with the coordinator's retry-after hint", async () => {
  const c = client();
  try {
    script.set('busy', [fail(status.RESOURCE_EXHAUSTED, 20), fail(status.RESOURCE_EXHAUSTED, 20)]);
    assert.equal((await start(c, 'busy')).token, 'token-busy');
    assert.equal(calls.get('busy'), 3);
    script.set('full', [fail(status.RESOURCE_EXHAUSTED)]);
    await assert.rejects(start(c, 'full'), (e: unknown) => (e as ServiceError).code === status.RESOURCE_EXHAUSTED);
    assert.equal(calls.get('full'), 1, 'no hint: a limit, not worth retrying');
  } finally {
    c.close();
  }
});

test('the retry deadline ends the retries with the last UNAVAILABLE', async () => {
  script.set(
    'down',
    Array.from({ length: 10_000 }, () => fail(status.UNAVAILABLE)),
  );
  const c = client(100);
  try {
    await assert.rejects(start(c, 'down'), (e: unknown) => (e as ServiceError).code === status.UNAVAILABLE);
    const n = calls.get('down') ?? 0;
    assert.ok(n >= 2 && n < 10_000, `retried within the deadline (${n} calls)`);
  } finally {
    script.delete('down');
    c.close();
  }
});

test('a checkpoint upload is chunked, carries its sha256, and is retried whole after a busy refusal with a hint', async () => {
  const c = client();
  const bytes = new Uint8Array(2 * CHECKPOINT_CHUNK_BYTES + 123).map((_, i) => i % 251);
  uploadRefusals = [fail(status.RESOURCE_EXHAUSTED, 10), fail(status.UNAVAILABLE)];
  try {
    const r = await c.uploadCheckpoint({ runId: 'r', fold: 0, token: 't', jobId: '' }, 1, CheckpointKind.CHECKPOINT_KIND_EPOCH, bytes);
    assert.equal(r.size, bytes.length);
    assert.equal(uploadRefusals.length, 0, 'both refusals were met');
    assert.deepEqual(uploads, [{ chunks: 3, bytes: bytes.length, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }]);
    uploadRefusals = [fail(status.DATA_LOSS)];
    await assert.rejects(
      c.uploadCheckpoint({ runId: 'r', fold: 0, token: 't', jobId: '' }, 2, CheckpointKind.CHECKPOINT_KIND_EPOCH, bytes),
      (e: unknown) => (e as ServiceError).code === status.DATA_LOSS,
    );
    assert.equal(uploads.length, 1, 'DATA_LOSS is not retried');
  } finally {
    c.close();
  }
});

test('a checkpoint upload that the coordinator never answers ends at its deadline and is retried; past the retry budget it fails DEADLINE_EXCEEDED', async () => {
  const c = new CoordinatorClient(
    address,
    { credentials: credentials.createInsecure() },
    { deadlineMs: 10_000, initialDelayMs: 1, maxDelayMs: 5, uploadDeadlineMs: 300 },
  );
  const bytes = new Uint8Array(1000).map((_, i) => i % 7);
  try {
    uploadHangs = 1;
    const before = uploads.length;
    const r = await c.uploadCheckpoint({ runId: 'r', fold: 0, token: 't', jobId: '' }, 3, CheckpointKind.CHECKPOINT_KIND_EPOCH, bytes);
    assert.equal(r.size, bytes.length);
    assert.equal(uploadHangs, 0, 'the first try hung');
    assert.equal(uploads.length, before + 1, 'the second try landed');
  } finally {
    c.close();
  }
  const once = new CoordinatorClient(
    address,
    { credentials: credentials.createInsecure() },
    { deadlineMs: 1, initialDelayMs: 1, maxDelayMs: 1, uploadDeadlineMs: 300 },
  );
  try {
    uploadHangs = 1;
    await assert.rejects(
      once.uploadCheckpoint({ runId: 'r', fold: 0, token: 't', jobId: '' }, 4, CheckpointKind.CHECKPOINT_KIND_EPOCH, bytes),
      (e: unknown) => (e as ServiceError).code === status.DEADLINE_EXCEEDED,
    );
  } finally {
    uploadHangs = 0;
    once.close();
  }
});

test("each retry event names the call's run and fold, so the worker's retry log lines say which fold waited", async () => {
  const events: { what: string; run?: string; fold?: number }[] = [];
  const c = new CoordinatorClient(
    address,
    { credentials: credentials.createInsecure() },
    {
      deadlineMs: 10_000,
      initialDelayMs: 1,
      maxDelayMs: 5,
      onRetry: (e: { what: string; run?: string; fold?: number }) => void events.push({ what: e.what, run: e.run, fold: e.fold }),
    },
  );
  script.set('named', [fail(status.UNAVAILABLE)]);
  uploadRefusals = [fail(status.UNAVAILABLE)];
  try {
    await c.startAttempt({ runId: 'named', fold: 2, worker: 'w', delivery: 1 });
    await c.uploadCheckpoint({ runId: 'named', fold: 2, token: 't', jobId: '' }, 1, CheckpointKind.CHECKPOINT_KIND_EPOCH, new Uint8Array(10));
    assert.deepEqual(events, [
      { what: 'StartAttempt', run: 'named', fold: 2 },
      { what: 'UploadCheckpoint', run: 'named', fold: 2 },
    ]);
  } finally {
    uploadRefusals = [];
    c.close();
  }
});
