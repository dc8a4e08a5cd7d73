import { Server, ServerCredentials, status, type ServerErrorResponse, type sendUnaryData, type ServerReadableStream, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { CvcError, type Logger } from '@cvc/core';
import {
  HealthCheckResponse_ServingStatus,
  HealthService,
  RunServiceService,
  WorkerServiceService,
  type CheckpointChunk,
  type Chunk,
  type CheckpointChunk_Header,
  type HealthServer,
  type RunServiceServer,
  type WorkerServiceServer,
} from '@cvc/proto';
import { StorageError } from '@cvc/storage';
import { isNatsUnavailable } from '@cvc/messaging';
import type { Coordinator } from './coordinator.js';
import { CoordinatorError } from './errors.js';

/** Largest gRPC message accepted (checkpoint chunks are 1 MiB). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const codes: Record<string, status> = {
  NOT_FOUND: status.NOT_FOUND,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  CANCELLED: status.CANCELLED,
  DATA_LOSS: status.DATA_LOSS,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  UNAVAILABLE: status.UNAVAILABLE,
};

/** Maps typed errors to gRPC status codes; only here, at the edge. */
export function toStatus(err: unknown): Partial<ServerErrorResponse> {
  // Retryable: callers (workers) retry UNAVAILABLE, so a broker restart does not fail a fold attempt.
  if (isNatsUnavailable(err)) return { code: status.UNAVAILABLE, details: `run state temporarily unavailable (NATS): ${(err as Error).message}` };
  if (err instanceof CoordinatorError) return { code: codes[err.outcome] ?? status.INTERNAL, details: err.message };
  if (err instanceof StorageError) {
    if (err.code === 'NOT_FOUND') return { code: status.NOT_FOUND, details: err.message };
    if (err.code === 'KEY_INVALID' || err.code === 'NAME_INVALID') return { code: status.INVALID_ARGUMENT, details: err.message };
    return { code: status.UNAVAILABLE, details: err.message };
  }
  if (err instanceof CvcError) return { code: status.INTERNAL, details: err.message };
  return { code: status.INTERNAL, details: `internal error: ${(err as Error).message ?? String(err)}` };
}

export interface GrpcCallObserver {
  (method: string, code: status, seconds: number): void;
}

function unary<Req, Res>(method: string, fn: (req: Req) => Promise<Res>, observe: GrpcCallObserver) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const t0 = performance.now();
    fn(call.request).then(
      (res) => {
        observe(method, status.OK, (performance.now() - t0) / 1000);
        callback(null, res);
      },
      (err: unknown) => {
        const s = toStatus(err);
        observe(method, s.code ?? status.INTERNAL, (performance.now() - t0) / 1000);
        callback(s);
      },
    );
  };
}

export interface GrpcServerOptions {
  readonly coordinator: Coordinator;
  readonly logger: Logger;
  readonly healthy: () => Promise<boolean>;
  readonly observe?: GrpcCallObserver;
}

/** Builds the gRPC server with the run, worker and health services. */
export function createGrpcServer(o: GrpcServerOptions): Server {
  const c = o.coordinator;
  const observe = o.observe ?? (() => {});
  const server = new Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });

  const runService: RunServiceServer = {
    submitRun: unary('SubmitRun', (r) => c.submitRun(r.spec), observe),
    getRun: unary('GetRun', (r) => c.getRun(r.runId), observe),
    listRuns: unary('ListRuns', async () => ({ runs: await c.listRuns() }), observe),
    cancelRun: unary('CancelRun', (r) => c.cancelRun(r.runId), observe),
    watchRun: (call) => {
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      c.watchRun(call.request.runId, (e) => call.write(e), ac.signal).then(
        () => call.end(),
        (err: unknown) => call.destroy(Object.assign(new Error(toStatus(err).details), toStatus(err))),
      );
    },
    downloadCheckpoint: (call: ServerWritableStream<{ runId: string; fold: number }, Chunk>) => {
      void (async () => {
        try {
          const { size, stream } = await c.openBestCheckpoint(call.request.runId, call.request.fold);
          const hash = createHash('sha256');
          let first = true;
          for await (const chunk of stream) {
            for (let i = 0; i < chunk.length; i += 1 << 20) {
              const part = Buffer.from(chunk.buffer, chunk.byteOffset + i, Math.min(1 << 20, chunk.length - i));
              hash.update(part);
              call.write({ data: part, sha256: '', size: first ? size : 0 });
              first = false;
            }
          }
          call.write({ data: Buffer.alloc(0), sha256: hash.digest('hex'), size: first ? size : 0 });
          call.end();
        } catch (err) {
          call.destroy(Object.assign(new Error(toStatus(err).details), toStatus(err)));
        }
      })();
    },
  };

  const workerService: WorkerServiceServer = {
    startAttempt: unary('StartAttempt', (r) => c.startAttempt(r), observe),
    reportEpoch: unary('ReportEpoch', async (r) => {
      await c.reportEpoch(r.attempt, r.metrics);
      return {};
    }, observe),
    finishFold: unary('FinishFold', async (r) => {
      await c.finishFold(r);
      return {};
    }, observe),
    failFold: unary('FailFold', async (r) => {
      await c.failFold(r);
      return {};
    }, observe),
    uploadCheckpoint: (call: ServerReadableStream<CheckpointChunk, { key: string; size: number }>, callback) => {
      const t0 = performance.now();
      let header: CheckpointChunk_Header | undefined;
      let sha: string | undefined;
      let resolveHeader: (h: CheckpointChunk_Header | undefined) => void = () => {};
      const headerReady = new Promise<CheckpointChunk_Header | undefined>((r) => (resolveHeader = r));
      async function* data(): AsyncGenerator<Uint8Array> {
        let seenFirst = false;
        for await (const m of call as AsyncIterable<CheckpointChunk>) {
          if (!seenFirst) {
            seenFirst = true;
            header = m.header;
            resolveHeader(header);
          }
          if (m.sha256) sha = m.sha256;
          if (m.data.length > 0) yield m.data;
        }
        if (!seenFirst) resolveHeader(undefined);
      }
      const it = data();
      // Pull the first message to learn the header, then stream the rest.
      void (async () => {
        try {
          const first = await it.next();
          const h = await headerReady;
          async function* rest(): AsyncGenerator<Uint8Array> {
            if (!first.done && first.value.length > 0) yield first.value;
            yield* it;
          }
          const r = await c.uploadCheckpoint(h, rest(), () => sha);
          observe('UploadCheckpoint', status.OK, (performance.now() - t0) / 1000);
          callback(null, r);
        } catch (err) {
          const s = toStatus(err);
          observe('UploadCheckpoint', s.code ?? status.INTERNAL, (performance.now() - t0) / 1000);
          callback(s);
        }
      })();
    },
  };

  const health: HealthServer = {
    check: (_call, callback) => {
      o.healthy().then(
        (ok) => callback(null, { status: ok ? HealthCheckResponse_ServingStatus.SERVING : HealthCheckResponse_ServingStatus.NOT_SERVING }),
        () => callback(null, { status: HealthCheckResponse_ServingStatus.NOT_SERVING }),
      );
    },
    watch: (call) => {
      void o.healthy().then((ok) => {
        call.write({ status: ok ? HealthCheckResponse_ServingStatus.SERVING : HealthCheckResponse_ServingStatus.NOT_SERVING });
      });
    },
  };

  server.addService(RunServiceService, runService);
  server.addService(WorkerServiceService, workerService);
  server.addService(HealthService, health);
  return server;
}

/** Binds `server` on host:port (port 0: ephemeral) and returns the bound port. */
export function bindServer(server: Server, host: string, port: number, credentials = ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(`${host}:${port}`, credentials, (err, p) => (err ? reject(err) : resolve(p))));
}
