import {
  Server,
  ServerCredentials,
  status,
  type Metadata,
  type sendUnaryData,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import type { Logger } from '@cvc/core';
import {
  HealthCheckResponse_ServingStatus,
  MESSAGE_SIZE_OPTIONS,
  HealthService,
  RunServiceService,
  SweepServiceService,
  WorkerServiceService,
  type CheckpointChunk,
  type Chunk,
  type CheckpointChunk_Header,
  type HealthServer,
  type RunServiceServer,
  type SweepServiceServer,
  type WorkerServiceServer,
  type WatchRunRequest,
  type SweepRef,
} from '@cvc/proto';
import type { Authenticator, Role } from '@cvc/security';
import type { Coordinator } from './coordinator.js';
import { addClusterServices } from './cluster-grpc.js';
import type { ClusterJobs } from './cluster-jobs.js';
import { CoordinatorError, UploadsBusyError } from './errors.js';
import type { SweepManager } from './sweeps.js';
import { listing } from './run-list.js';
import { pageFields } from './paging.js';
import { toStatus } from './to-status.js';
import { watchHandler, writeChunks, type FailStream } from './grpc-streams.js';
import { WatchSlots } from './watch-slots.js';

/**
 * At most `limit` checkpoint uploads are processed at once. Beyond that an
 * upload waits for a slot, up to `waitMs` and with at most `maxWaiting`
 * others (flow control holds its bytes back meanwhile); then it is refused.
 */
export class UploadSlots {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    readonly limit: number,
    readonly waitMs: number,
    readonly maxWaiting = limit * 8,
  ) {}

  /** True once a slot is held (call release()), false when none came in time. */
  acquire(): Promise<boolean> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve(true);
    }
    if (this.waitMs <= 0 || this.waiters.length >= this.maxWaiting) return Promise.resolve(false);
    return new Promise((resolve) => {
      const handOver = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(handOver);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, this.waitMs);
      this.waiters.push(handOver);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    // The slot passes straight to the next waiter; otherwise it is freed.
    if (next) next();
    else this.active--;
  }

  get inUse(): number {
    return this.active;
  }
}

/** Default of `GrpcServerOptions.uploadIdleMs`. */
export const DEFAULT_UPLOAD_IDLE_MS = 120_000;
/** Default of `GrpcServerOptions.keepaliveMs` (CVC_GRPC_KEEPALIVE_MS). */
export const DEFAULT_KEEPALIVE_MS = 60_000;
/** Default of `GrpcServerOptions.keepaliveTimeoutMs` (CVC_GRPC_KEEPALIVE_TIMEOUT_MS). */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000;

/** The iterator's next item, or the error `timeout()` makes when none comes within `ms` (time spent by the consumer does not count). */
async function nextWithin<T>(it: AsyncIterator<T>, ms: number, timeout: () => Error): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface GrpcCallObserver {
  (method: string, code: status, seconds: number): void;
}

/** Checks the call's bearer token for `role`; a no-op without an authenticator (insecure development mode). */
export type Guard = (metadata: Metadata, role: Role, method: string) => void;

export function guardFor(auth: Authenticator | undefined): Guard {
  if (!auth) return () => {};
  return (metadata, role, method) => {
    const v = metadata.get('authorization')[0];
    auth.authorize(typeof v === 'string' ? v : undefined, role, `${role === 'user' ? 'RunService' : 'WorkerService'}.${method}`);
  };
}

export function unary<Req, Res>(method: string, role: Role, guard: Guard, fn: (req: Req) => Promise<Res>, observe: GrpcCallObserver) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const t0 = performance.now();
    Promise.resolve()
      .then(() => guard(call.metadata, role, method))
      .then(() => fn(call.request))
      .then(
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
  /** Serves SweepService when given. */
  readonly sweeps?: SweepManager;
  readonly logger: Logger;
  readonly healthy: () => Promise<boolean>;
  readonly observe?: GrpcCallObserver;
  /** Bearer-token checks; undefined only in insecure development mode. */
  readonly auth?: Authenticator | undefined;
  /** Checkpoint uploads streamed at once (default 8); more wait for a slot, then get RESOURCE_EXHAUSTED with a retry hint. */
  readonly maxConcurrentUploads?: number;
  /** How long an upload waits for a slot (ms, default 10 000; 0: refuse at once). */
  readonly uploadQueueMs?: number;
  /**
   * How long an upload may send nothing before it is dropped with DEADLINE_EXCEEDED and its slot freed (ms, default
   * 120 000): a worker whose machine vanished mid-upload leaves a half-open connection that would hold a slot for hours.
   */
  readonly uploadIdleMs?: number;
  /** Clustering jobs: serves ClusterJobService and ClusterWorkerService, and job attempts' FailFold, UploadCheckpoint and ReportBadCheckpoint. */
  readonly clusterJobs?: ClusterJobs;
  /**
   * How often the server pings each connection (ms, default 60 000), and how long it waits for the answer before it
   * drops the connection (default 20 000). Without pings a client that vanished (a laptop that slept, a half-open TCP
   * connection) keeps its watch streams and uploads open for hours (grpc-js's default is no pings).
   */
  readonly keepaliveMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /** Caps on open watch streams, per client and in all (default: 64 and 2048). */
  readonly watches?: WatchSlots;
}

/** Builds the gRPC server with the run, worker and health services. */
export function createGrpcServer(o: GrpcServerOptions): Server {
  const c = o.coordinator;
  const observe = o.observe ?? (() => {});
  const guard = guardFor(o.auth);
  const slots = new UploadSlots(o.maxConcurrentUploads ?? 8, o.uploadQueueMs ?? 10_000);
  const idleMs = o.uploadIdleMs ?? DEFAULT_UPLOAD_IDLE_MS;
  // grpc-js sends a server stream's status when 'error' is emitted on it (destroy() does not).
  const fail: FailStream = (call, err): void => {
    const s = toStatus(err);
    call.emit('error', Object.assign(new Error(s.details), s));
  };
  const watches = o.watches ?? new WatchSlots();
  const server = new Server({
    ...MESSAGE_SIZE_OPTIONS,
    'grpc.keepalive_time_ms': o.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': o.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
  });

  const runService: RunServiceServer = {
    submitRun: unary('SubmitRun', 'user', guard, (r) => c.submitRun(r.spec), observe),
    getRun: unary('GetRun', 'user', guard, (r) => c.getRun(r.runId), observe),
    listRuns: unary(
      'ListRuns',
      'user',
      guard,
      async (r) => {
        const page = await c.listRunsPage(r);
        // A page too large for one message is cut short: the rest comes with the next page.
        const { runs, omitted } = listing(page.items);
        if (omitted > 0 && !r.pageToken && r.pageSize === 0)
          o.logger.warn('ListRuns answer (a client that does not page) left out the oldest runs to fit in one gRPC message', { listed: runs.length, omitted });
        return { runs, ...pageFields(runs, page.remaining + omitted) };
      },
      observe,
    ),
    cancelRun: unary('CancelRun', 'user', guard, (r) => c.cancelRun(r.runId), observe),
    watchRun: watchHandler('WatchRun', guard, fail, (r: WatchRunRequest, send, signal) => c.watchRun(r.runId, send, signal), watches),
    downloadCheckpoint: (call: ServerWritableStream<{ runId: string; fold: number }, Chunk>) => {
      void (async () => {
        try {
          guard(call.metadata, 'user', 'DownloadCheckpoint');
          const { size, stream } = await c.openBestCheckpoint(call.request.runId, call.request.fold);
          await writeChunks(call, size, stream);
          call.end();
        } catch (err) {
          fail(call, err);
        }
      })();
    },
  };

  const workerService: WorkerServiceServer = {
    startAttempt: unary('StartAttempt', 'worker', guard, (r) => c.startAttempt(r), observe),
    reportEpoch: unary('ReportEpoch', 'worker', guard, (r) => c.reportEpoch(r.attempt, r.metrics), observe),
    reportProgress: unary('ReportProgress', 'worker', guard, (r) => c.reportProgress(r.attempt, r.progress), observe),
    finishFold: unary('FinishFold', 'worker', guard, (r) => c.finishFold(r), observe),
    failFold: unary(
      'FailFold',
      'worker',
      guard,
      async (r) => {
        await (r.attempt?.jobId && o.clusterJobs ? o.clusterJobs.fail(r) : c.failFold(r));
        return { stop: false, reason: '' };
      },
      observe,
    ),
    reportBadCheckpoint: unary(
      'ReportBadCheckpoint',
      'worker',
      guard,
      (r) => (r.attempt?.jobId && o.clusterJobs ? o.clusterJobs.reportBadCheckpoint(r) : c.reportBadCheckpoint(r)),
      observe,
    ),
    uploadCheckpoint: (call: ServerReadableStream<CheckpointChunk, { key: string; size: number }>, callback) => {
      const t0 = performance.now();
      const refuse = (err: unknown): void => {
        const s = toStatus(err);
        observe('UploadCheckpoint', s.code ?? status.INTERNAL, (performance.now() - t0) / 1000);
        callback(s);
      };
      try {
        guard(call.metadata, 'worker', 'UploadCheckpoint');
      } catch (err) {
        refuse(err);
        return;
      }
      let header: CheckpointChunk_Header | undefined;
      let sha: string | undefined;
      let resolveHeader: (h: CheckpointChunk_Header | undefined) => void = () => {};
      const headerReady = new Promise<CheckpointChunk_Header | undefined>((r) => (resolveHeader = r));
      async function* data(): AsyncGenerator<Uint8Array> {
        const src = (call as AsyncIterable<CheckpointChunk>)[Symbol.asyncIterator]();
        let seenFirst = false;
        for (;;) {
          const next = await nextWithin(src, idleMs, () => {
            const a = header?.attempt;
            const what = !a
              ? 'a checkpoint upload'
              : a.jobId
                ? `the checkpoint upload of clustering job ${a.jobId}`
                : `the checkpoint upload of run ${a.runId} fold ${a.fold}`;
            return new CoordinatorError('DEADLINE_EXCEEDED', `${what} sent nothing for ${idleMs} ms (its worker is gone?); it was dropped`);
          });
          if (next.done) break;
          const m = next.value;
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
        if (!(await slots.acquire())) {
          refuse(new UploadsBusyError(slots.limit, 500 + Math.floor(Math.random() * 1000)));
          return;
        }
        try {
          const first = await it.next();
          const h = await headerReady;
          async function* rest(): AsyncGenerator<Uint8Array> {
            if (!first.done && first.value.length > 0) yield first.value;
            yield* it;
          }
          const r = await (h?.attempt?.jobId && o.clusterJobs
            ? o.clusterJobs.uploadCheckpoint(h, rest(), () => sha)
            : c.uploadCheckpoint(h, rest(), () => sha));
          observe('UploadCheckpoint', status.OK, (performance.now() - t0) / 1000);
          callback(null, r);
        } catch (err) {
          refuse(err);
        } finally {
          slots.release();
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
  const sw = o.sweeps;
  if (sw) {
    const sweepService: SweepServiceServer = {
      submitSweep: unary('SubmitSweep', 'user', guard, (r) => sw.submitSweep(r.spec), observe),
      getSweep: unary('GetSweep', 'user', guard, (r) => sw.getSweep(r.sweepId), observe),
      listSweeps: unary(
        'ListSweeps',
        'user',
        guard,
        async (r) => {
          const page = await sw.listSweepsPage(r);
          return { sweeps: page.items, ...pageFields(page.items, page.remaining) };
        },
        observe,
      ),
      cancelSweep: unary('CancelSweep', 'user', guard, (r) => sw.cancelSweep(r.sweepId), observe),
      watchSweep: watchHandler('WatchSweep', guard, fail, (r: SweepRef, send, signal) => sw.watchSweep(r.sweepId, send, signal), watches),
    };
    server.addService(SweepServiceService, sweepService);
  }
  server.addService(WorkerServiceService, workerService);
  server.addService(HealthService, health);
  if (o.clusterJobs) addClusterServices(server, o.clusterJobs, guard, observe, fail, watches);
  return server;
}

/** Binds `server` on host:port (port 0: ephemeral) and returns the bound port. */
export function bindServer(server: Server, host: string, port: number, credentials = ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(`${host}:${port}`, credentials, (err, p) => (err ? reject(err) : resolve(p))));
}
