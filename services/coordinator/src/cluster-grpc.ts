import type { Server, ServerWritableStream } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import {
  CHECKPOINT_CHUNK_BYTES,
  ClusterJobServiceService,
  ClusterWorkerServiceService,
  type Chunk,
  type ClusterJobServiceServer,
  type ClusterWorkerServiceServer,
  type DownloadClusterArtifactRequest,
} from '@cvc/proto';
import type { ClusterJobs } from './cluster-jobs.js';
import { unary, type Guard, type GrpcCallObserver } from './grpc-server.js';

/** Streams `stream` as Chunks (the total size in the first, the sha256 of all the data in the last). */
export async function writeChunks(call: { write(c: Chunk): boolean }, size: number, stream: AsyncIterable<Uint8Array>): Promise<void> {
  const hash = createHash('sha256');
  let first = true;
  for await (const chunk of stream) {
    for (let i = 0; i < chunk.length; i += CHECKPOINT_CHUNK_BYTES) {
      const part = Buffer.from(chunk.buffer, chunk.byteOffset + i, Math.min(CHECKPOINT_CHUNK_BYTES, chunk.length - i));
      hash.update(part);
      call.write({ data: part, sha256: '', size: first ? size : 0 });
      first = false;
    }
  }
  call.write({ data: Buffer.alloc(0), sha256: hash.digest('hex'), size: first ? size : 0 });
}

/** Adds ClusterJobService (users) and ClusterWorkerService (workers) over `jobs` to `server`. */
export function addClusterServices(
  server: Server,
  jobs: ClusterJobs,
  guard: Guard,
  observe: GrpcCallObserver,
  fail: (call: { emit(event: 'error', err: Error): boolean }, err: unknown) => void,
): void {
  const user: ClusterJobServiceServer = {
    submitClusterJob: unary('SubmitClusterJob', 'user', guard, (r) => jobs.submit(r.spec), observe),
    getClusterJob: unary('GetClusterJob', 'user', guard, (r) => jobs.get(r.jobId), observe),
    listClusterJobs: unary('ListClusterJobs', 'user', guard, async () => ({ jobs: await jobs.list() }), observe),
    cancelClusterJob: unary('CancelClusterJob', 'user', guard, (r) => jobs.cancel(r.jobId), observe),
    watchClusterJob: (call) => {
      try {
        guard(call.metadata, 'user', 'WatchClusterJob');
      } catch (err) {
        fail(call, err);
        return;
      }
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      jobs
        .watch(call.request.jobId, (e) => call.write(e), ac.signal)
        .then(
          () => call.end(),
          (err: unknown) => fail(call, err),
        );
    },
    downloadClusterArtifact: (call: ServerWritableStream<DownloadClusterArtifactRequest, Chunk>) => {
      void (async () => {
        try {
          guard(call.metadata, 'user', 'DownloadClusterArtifact');
          const { size, stream } = await jobs.openArtifact(call.request.jobId, call.request.name);
          await writeChunks(call, size, stream);
          call.end();
        } catch (err) {
          fail(call, err);
        }
      })();
    },
  };
  const worker: ClusterWorkerServiceServer = {
    startClusterAttempt: unary('StartClusterAttempt', 'worker', guard, (r) => jobs.startAttempt(r), observe),
    reportClusterProgress: unary('ReportClusterProgress', 'worker', guard, (r) => jobs.reportProgress(r.attempt, r.progress), observe),
    finishClusterJob: unary(
      'FinishClusterJob',
      'worker',
      guard,
      async (r) => {
        await jobs.finish(r);
        return { stop: false, reason: '' };
      },
      observe,
    ),
  };
  server.addService(ClusterJobServiceService, user);
  server.addService(ClusterWorkerServiceService, worker);
}
