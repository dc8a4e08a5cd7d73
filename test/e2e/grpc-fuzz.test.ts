// Every gRPC handler of the real coordinator, fed random, truncated,
// corrupted and out-of-range requests (with valid tokens, so the handlers
// themselves are reached): each call ends with a clear status, never an
// internal error from our code, and the coordinator stays up with its run intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, makeGenericClientConstructor, status, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { createRng } from '@cvc/core';
import {
  CancelRunRequest,
  CheckpointChunk,
  DownloadRequest,
  FailFoldRequest,
  FinishFoldRequest,
  GetRunRequest,
  ReportBadCheckpointRequest,
  ReportEpochRequest,
  RunServiceService,
  StartAttemptRequest,
  SubmitRunRequest,
  WatchRunRequest,
  WorkerServiceService,
  type AttemptRef,
  type StartAttemptResponse,
} from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { channel, getRun, importFashion, runClient, submitFashionRun, workerClient } from './helpers.js';

const rng = createRng(2026);
const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T;

/** A client whose methods take and return raw bytes, so anything can be sent. */
function rawClient(
  svc: Record<string, { path: string; requestStream: boolean; responseStream: boolean }>,
  address: string,
  ch: ReturnType<typeof channel>,
): Client & Record<string, (...a: unknown[]) => unknown> {
  const id = (b: Buffer): Buffer => b;
  const def: ServiceDefinition = Object.fromEntries(
    Object.entries(svc).map(([k, m]) => [
      k,
      {
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      },
    ]),
  );
  const Ctor = makeGenericClientConstructor(def, 'raw');
  return new Ctor(address, ch.creds, ch.options) as Client & Record<string, (...a: unknown[]) => unknown>;
}

test('gRPC handlers: random, truncated, corrupted and out-of-range requests always get a clear status; the coordinator survives', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-fuzz-'));
  const cluster = await startLocalCluster({ dir, workers: 0 });
  const rc = runClient(cluster);
  const wc = workerClient(cluster);
  const userRaw = rawClient(RunServiceService, cluster.endpoints.coordinator, channel(cluster, cluster.credentials.userToken));
  const workerRaw = rawClient(WorkerServiceService, cluster.endpoints.coordinator, channel(cluster, cluster.credentials.workerToken));
  try {
    await importFashion(cluster, 3, 60);
    const runId = await submitFashionRun(cluster, 3, 2);
    // A live attempt, so worker calls with its token get past the token check into validation.
    const started = await new Promise<StartAttemptResponse>((res, rej) =>
      wc.startAttempt({ runId, fold: 1, worker: 'fuzz', delivery: 1 }, (e, r) => (e ? rej(e) : res(r))),
    );
    const live = { runId, fold: 1, token: started.token, jobId: '' };

    const str = (): string =>
      pick([
        '',
        'a',
        runId,
        '../../etc/passwd',
        'runs/../x',
        'x'.repeat(5000),
        '\u0000\u0001',
        'sp ace',
        '💥'.repeat(10),
        'fashion-mnist',
        'seed-mnist',
        'seed-cifar',
        'nearest',
        String(rng.int(1e9)),
      ]);
    const u32 = (): number => pick([0, 1, 2, 3, 5, 100, 65_536, 100_001, 2 ** 31, 2 ** 32 - 1]);
    // RunSpec's numeric fields are optional int32s: unset, negatives and both ends of the range.
    const i32 = (): number | undefined => pick([undefined, 0, 1, 2, 3, 5, -1, 100, 65_536, 100_001, -(2 ** 31), 2 ** 31 - 1]);
    const dbl = (): number => pick([0, -1, 0.5, 1e-9, 1, 2, NaN, Infinity, -Infinity, 1e308, -0]);
    const attempt = (): AttemptRef => pick([live, { ...live, token: str() }, { runId: str(), fold: u32(), token: str(), jobId: '' }, { ...live, fold: u32() }]);
    const evalm = () => pick([undefined, { loss: dbl(), mse: dbl(), count: u32() }, { loss: dbl(), mse: dbl(), cosine: dbl(), count: u32() }]);
    const header = () => pick([undefined, { attempt: attempt(), epoch: u32(), kind: pick([0, 1, 2, 7]), size: pick([0, 1, 100, 2 ** 40, 2 ** 53 - 1]) }]);
    const structured: Record<string, () => Uint8Array[]> = {
      submitRun: () => [
        SubmitRunRequest.encode(
          SubmitRunRequest.fromPartial({
            spec: pick([
              undefined,
              {
                name: str(),
                dataset: str(),
                model: str(),
                folds: i32(),
                epochs: i32(),
                batchSize: i32(),
                learningRate: pick([undefined, dbl()]),
                seed: i32(),
                upsample: str(),
                datasetVersion: str(),
                modelConfigJson: pick([str(), '{"encoder":[{"filters":0}],"codeSize":2}', '{"encoder":[{"filters":8,"pool":64}],"codeSize":2}', '[]', 'null']),
              },
            ]),
          }),
        ).finish(),
      ],
      getRun: () => [GetRunRequest.encode({ runId: str() }).finish()],
      listRuns: () => [new Uint8Array(0)],
      cancelRun: () => [CancelRunRequest.encode({ runId: pick(['', 'nope', '../x', 'x'.repeat(300)]) }).finish()],
      watchRun: () => [WatchRunRequest.encode({ runId: str() }).finish()],
      downloadCheckpoint: () => [DownloadRequest.encode({ runId: str(), fold: u32() }).finish()],
      startAttempt: () => [StartAttemptRequest.encode({ runId: pick([str(), runId]), fold: pick([u32(), 0, 2]), worker: str(), delivery: u32() }).finish()],
      reportEpoch: () => [
        ReportEpochRequest.encode(
          ReportEpochRequest.fromPartial({
            attempt: attempt(),
            metrics: pick([undefined, { epoch: u32(), loss: dbl(), valLoss: dbl(), valMse: dbl(), seconds: dbl(), imagesPerSec: dbl() }]),
          }),
        ).finish(),
      ],
      finishFold: () => [
        FinishFoldRequest.encode(FinishFoldRequest.fromPartial({ attempt: attempt(), bestEpoch: u32(), train: evalm(), val: evalm(), test: evalm() })).finish(),
      ],
      failFold: () => [FailFoldRequest.encode({ attempt: attempt(), error: str(), final: false }).finish()],
      reportBadCheckpoint: () => [ReportBadCheckpointRequest.encode({ attempt: attempt(), checkpoint: str(), reason: str() }).finish()],
      uploadCheckpoint: () =>
        Array.from({ length: 1 + rng.int(4) }, () =>
          CheckpointChunk.encode(
            CheckpointChunk.fromPartial({ header: header(), data: Buffer.alloc(rng.int(3000), rng.int(256)), sha256: pick(['', 'ab', 'f'.repeat(64), str()]) }),
          ).finish(),
        ),
    };
    const mangle = (b: Uint8Array): Buffer => {
      const x = Buffer.from(b);
      switch (rng.int(3)) {
        case 0:
          return x.subarray(0, rng.int(x.length + 1));
        case 1:
          for (let i = 0; i < 1 + rng.int(4) && x.length > 0; i++) x[rng.int(x.length)] = rng.int(256);
          return x;
        default:
          return Buffer.from(Array.from({ length: rng.int(200) }, () => rng.int(256)));
      }
    };

    const seen = new Map<string, Map<string, number>>();
    const ALLOWED = new Set<number>([
      status.OK,
      status.INVALID_ARGUMENT,
      status.NOT_FOUND,
      status.FAILED_PRECONDITION,
      status.RESOURCE_EXHAUSTED,
      status.DATA_LOSS,
      status.CANCELLED,
      status.DEADLINE_EXCEEDED,
    ]);
    const check = (method: string, code: number, details: string, sample: string): void => {
      const m = seen.get(method) ?? new Map<string, number>();
      seen.set(method, m);
      m.set(status[code] ?? String(code), (m.get(status[code] ?? String(code)) ?? 0) + 1);
      // grpc-js itself answers INTERNAL for bytes that are not a protobuf message: that one is clear too.
      const undecodable = code === Number(status.INTERNAL) && details.startsWith('Error deserializing request');
      assert.ok(ALLOWED.has(code) || undecodable, `${method} answered ${status[code]} "${details}" to ${sample}`);
      assert.ok(code === Number(status.OK) || details.length > 0, `${method}: a status without an explanation (${status[code]})`);
    };
    const metadata = (): Metadata => new Metadata();
    const deadline = (): { deadline: number } => ({ deadline: Date.now() + 5000 });

    for (const [method, gen] of Object.entries(structured)) {
      const svc = method in RunServiceService ? userRaw : workerRaw;
      const def = (method in RunServiceService ? RunServiceService : WorkerServiceService) as Record<
        string,
        { requestStream: boolean; responseStream: boolean }
      >;
      for (let i = 0; i < 120; i++) {
        const messages = gen().map((m) => (rng.next() < 0.35 ? mangle(m) : Buffer.from(m)));
        const sample = messages.map((m) => m.subarray(0, 24).toString('hex')).join('|');
        const d = def[method];
        const result = await new Promise<{ code: number; details: string }>((resolve) => {
          if (d?.requestStream) {
            const call = svc[method]?.(metadata(), deadline(), (e: ServiceError | null) =>
              resolve(e ? { code: e.code, details: e.details } : { code: status.OK, details: '' }),
            ) as NodeJS.WritableStream & { on(ev: string, f: () => void): void };
            call.on('error', () => {});
            for (const m of messages) call.write(m);
            call.end();
          } else if (d?.responseStream) {
            const call = svc[method]?.(messages[0], metadata(), { deadline: Date.now() + 1500 }) as NodeJS.ReadableStream & { cancel(): void };
            call.on('data', () => {});
            call.on('error', (e: ServiceError) => resolve({ code: e.code, details: e.details }));
            call.on('end', () => resolve({ code: status.OK, details: '' }));
          } else {
            svc[method]?.(messages[0], metadata(), deadline(), (e: ServiceError | null) =>
              resolve(e ? { code: e.code, details: e.details } : { code: status.OK, details: '' }),
            );
          }
        });
        check(method, result.code, result.details, sample);
      }
    }
    // Each handler was exercised beyond its first check.
    for (const m of ['submitRun', 'reportEpoch', 'finishFold', 'uploadCheckpoint', 'startAttempt']) {
      const codes = [...(seen.get(m)?.keys() ?? [])];
      assert.ok(codes.length >= 2, `${m} answered with several codes: ${codes.join(', ')}`);
    }
    assert.equal(cluster.coordinatorProcess.exitCode, null, 'the coordinator is still running');
    const run = await getRun(rc, runId);
    assert.equal(run.folds.length, 3);
    assert.equal(run.id, runId);
    process.stdout.write(`# codes per method: ${JSON.stringify(Object.fromEntries([...seen].map(([k, v]) => [k, Object.fromEntries(v)])))}\n`);
  } finally {
    userRaw.close();
    workerRaw.close();
    rc.close();
    wc.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
