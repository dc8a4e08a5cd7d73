import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coordinatorConfigSchema } from '@cvc/coordinator';
import { workerConfigSchema } from '@cvc/worker';
import { clientSecurityFromEnv, grpcClientSetup, grpcServerSecurity, parseTokens } from '@cvc/security';
import { kustomizeBuild, OVERLAYS, repoRoot, type K8sObject } from './kustomize-build.js';

// The contract between the manifests and the code: what the services read, the Secrets the operator
// creates (README, `cvc secrets init`), where files are mounted and who can read them.

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: { resource: string; divisor?: string };
  };
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
}
interface Container {
  name: string;
  image: string;
  ports?: { name: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  volumeMounts?: Mount[];
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; runAsUser?: number };
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
}
interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string; mode?: number }[] };
  emptyDir?: { sizeLimit?: string };
  configMap?: { name: string };
}
interface PodSpec {
  securityContext?: { runAsUser?: number; runAsGroup?: number; fsGroup?: number; supplementalGroups?: number[] };
  containers: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
}
const podOf = (o: K8sObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;
const workload = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is in the build`);
  return o;
};

/** A Secret the operator creates: each key's value, or the local file it is made from. */
type DocumentedSecret = Map<string, { value?: string; file?: string }>;
const secrets = new Map<string, DocumentedSecret>();
let secretsDir = '';
let certNames: string[] = [];

/** The `kubectl -n cvc create secret generic NAME ...` commands in `text`, as key sets (env files are read). */
function parseCreateCommands(text: string, readEnvFiles: boolean): Map<string, DocumentedSecret> {
  const out = new Map<string, DocumentedSecret>();
  for (const m of text.matchAll(/kubectl -n cvc create secret generic (\S+)((?: --from-[a-z-]+=\S+)+)/g)) {
    const keys: DocumentedSecret = new Map();
    for (const [, kind, arg] of (m[2] ?? '').matchAll(/--from-([a-z-]+)=(\S+)/g)) {
      const eq = (arg ?? '').indexOf('=');
      if (kind === 'env-file') {
        if (!readEnvFiles) continue;
        for (const line of readFileSync(arg ?? '', 'utf8')
          .split('\n')
          .filter(Boolean)) {
          const i = line.indexOf('=');
          keys.set(line.slice(0, i), { value: line.slice(i + 1) });
        }
      } else if (kind === 'file') keys.set((arg ?? '').slice(0, eq), { file: (arg ?? '').slice(eq + 1) });
      else if (kind === 'literal') keys.set((arg ?? '').slice(0, eq), { value: (arg ?? '').slice(eq + 1) });
    }
    out.set(m[1] ?? '', keys);
  }
  return out;
}

before(() => {
  // The Secrets as `cvc secrets init` makes them (real certificate, tokens and NATS password)...
  secretsDir = mkdtempSync(join(tmpdir(), 'cvc-deploy-secrets-'));
  const r = spawnSync(process.execPath, [join(repoRoot, 'packages/cli/bin/cvc.js'), 'secrets', 'init', '--out', secretsDir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const [name, keys] of parseCreateCommands(r.stdout, true)) secrets.set(name, keys);
  certNames = (/\(for ([^)]+)\)/.exec(r.stdout)?.[1] ?? '').split(', ');
  // ...and the ones only the README's Deploy section creates (the S3 keys).
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const documented = parseCreateCommands(readme, false);
  for (const [name, keys] of documented) if (!secrets.has(name)) secrets.set(name, keys);
  // The README creates cvc-tls and cvc-auth with the same keys `cvc secrets init` prints.
  for (const name of ['cvc-tls', 'cvc-auth']) {
    const fromReadme = documented.get(name);
    assert.ok(fromReadme, `README creates the ${name} Secret`);
    if (name === 'cvc-tls') assert.deepEqual([...fromReadme.keys()].sort(), [...(secrets.get(name)?.keys() ?? [])].sort(), `README's ${name} keys`);
  }
});
after(() => rmSync(secretsDir, { recursive: true, force: true }));

const cpuCount = (q: string): number => (q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));
const BYTES: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
const bytesOf = (q: string): number => {
  const m = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(q);
  assert.ok(m, `quantity ${q}`);
  return Number(m[1]) * (m[2] ? (BYTES[m[2]] ?? NaN) : 1);
};

/** The ENV of the final stage of the Dockerfile that builds `image` (cvc-coordinator, cvc-worker-cpu or cvc-worker-gpu). */
function imageEnv(image: string): Record<string, string> {
  const name = (image.split('/').pop() ?? '').split(':')[0] ?? '';
  const text = readFileSync(join(repoRoot, 'deploy/docker', `Dockerfile.${name.replace(/^cvc-/, '')}`), 'utf8');
  const final = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const m of final.matchAll(/^ENV (.+)$/gm)) {
    for (const kv of (m[1] ?? '').trim().split(/\s+/)) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  }
  return env;
}

/** A container's environment as the kubelet gives it (Secrets from the documented ones); problems are listed, not thrown. */
function resolveEnv(objs: K8sObject[], pod: PodSpec, c: Container, problems: string[]): Record<string, string> {
  const env: Record<string, string> = c.image.startsWith('cvc-') || c.image.includes('/cvc-') ? imageEnv(c.image) : {};
  for (const from of c.envFrom ?? []) {
    const cm = from.configMapRef && objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef?.name);
    if (!cm) problems.push(`${c.name}: envFrom ${JSON.stringify(from)} is not a ConfigMap of the build`);
    else Object.assign(env, cm.data);
  }
  for (const e of c.env ?? []) {
    const ref = e.valueFrom;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (ref?.secretKeyRef) {
      const s = secrets.get(ref.secretKeyRef.name)?.get(ref.secretKeyRef.key);
      if (!s) problems.push(`${c.name}: ${e.name} reads Secret ${ref.secretKeyRef.name} key ${ref.secretKeyRef.key}, which no documented command creates`);
      else env[e.name] = s.value ?? (s.file ? readFileSync(s.file, 'utf8') : '');
    } else if (ref?.fieldRef)
      env[e.name] = { 'metadata.name': 'cvc-pod-0', 'metadata.namespace': 'cvc' }[ref.fieldRef.fieldPath] ?? `?${ref.fieldRef.fieldPath}`;
    else if (ref?.resourceFieldRef) {
      const q = c.resources?.[ref.resourceFieldRef.resource.startsWith('limits.') ? 'limits' : 'requests']?.[ref.resourceFieldRef.resource.split('.')[1] ?? ''];
      if (q === undefined) problems.push(`${c.name}: ${e.name} reads ${ref.resourceFieldRef.resource}, which is not set`);
      // The kubelet rounds up to the divisor (default 1: whole CPUs).
      else env[e.name] = String(Math.ceil(cpuCount(q) / cpuCount(ref.resourceFieldRef.divisor ?? '1')));
    } else problems.push(`${c.name}: ${e.name} has no value`);
  }
  void pod;
  return env;
}

/** Whether the container's user can read `file` (a path under a Secret volume), with the kubelet's ownership rules. */
function secretFile(pod: PodSpec, c: Container, file: string): { secret: string; key: string; readable: boolean } | string {
  const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  if (!mount) return `${file} is on no volume mount`;
  const vol = (pod.volumes ?? []).find((v) => v.name === mount.name);
  if (!vol?.secret) return `${file} is on volume ${mount.name}, which is not a Secret`;
  const rel = file.slice(mount.mountPath.replace(/\/$/, '').length + 1);
  const item = vol.secret.items ? vol.secret.items.find((i) => i.path === rel) : { key: rel, path: rel };
  if (!item) return `${file}: Secret volume ${mount.name} projects no ${rel}`;
  const sc = pod.securityContext ?? {};
  const fsGroup = sc.fsGroup;
  // Files are owned by root; with an fsGroup they belong to that group and the kubelet adds group read.
  let mode = ('mode' in item && item.mode !== undefined ? item.mode : undefined) ?? vol.secret.defaultMode ?? 0o644;
  if (fsGroup !== undefined) mode |= 0o440;
  const uid = c.securityContext?.runAsUser ?? sc.runAsUser ?? 0;
  const groups = [sc.runAsGroup ?? 0, ...(fsGroup !== undefined ? [fsGroup] : []), ...(sc.supplementalGroups ?? [])];
  const readable = uid === 0 || (mode & 0o004) !== 0 || ((mode & 0o040) !== 0 && groups.includes(fsGroup ?? 0));
  return { secret: vol.secret.secretName, key: item.key, readable };
}

/** Replaces each file setting by the local file its Secret key is created from; problems are listed. */
function localFiles(pod: PodSpec, c: Container, env: Record<string, string>, problems: string[]): Record<string, string> {
  const out = { ...env };
  for (const name of ['CVC_TLS_CERT', 'CVC_TLS_KEY', 'CVC_TLS_CA', 'CVC_TLS_CLIENT_CA']) {
    const path = env[name];
    if (path === undefined) continue;
    const f = secretFile(pod, c, path);
    if (typeof f === 'string') {
      problems.push(`${c.name}: ${name}=${f}`);
      continue;
    }
    if (!f.readable) problems.push(`${c.name}: ${name}=${path} is not readable by the container's user (Secret ${f.secret}: mode and fsGroup)`);
    const local = secrets.get(f.secret)?.get(f.key)?.file;
    if (!local) problems.push(`${c.name}: ${name}=${path} is Secret ${f.secret} key ${f.key}, which no documented command creates from a file`);
    else out[name] = local;
  }
  return out;
}

const schemaKeys = {
  coordinator: new Set(Object.keys(coordinatorConfigSchema.shape)),
  worker: new Set(Object.keys(workerConfigSchema.shape)),
};
/** Variables a manifest may set that cvc's code does not read, and who reads them. */
const READ_ELSEWHERE: Record<string, string> = {
  TF_NUM_INTRAOP_THREADS: "libtensorflow (tfjs-node)'s intra-op thread pool",
  NODE_ENV: 'Node.js and npm (the images set production)',
};

for (const overlay of OVERLAYS) {
  test(`${overlay}: the coordinator's and the workers' environments parse with the services' own schemas, from the documented Secrets`, async () => {
    const objs = kustomizeBuild(overlay);
    const problems: string[] = [];
    const coordPod = podOf(workload(objs, 'Deployment', 'cvc-coordinator'));
    const workerPod = podOf(workload(objs, 'Deployment', 'cvc-worker'));
    const coordC = coordPod.containers[0];
    const workerC = workerPod.containers[0];
    assert.ok(coordC && workerC);
    const coordEnv = resolveEnv(objs, coordPod, coordC, problems);
    const workerEnv = resolveEnv(objs, workerPod, workerC, problems);

    // Every variable set is read by the service it is set on (a shared ConfigMap's by one of the services that load it).
    const shared = new Set<string>();
    for (const c of [coordC, workerC])
      for (const f of c.envFrom ?? []) Object.keys(objs.find((o) => o.metadata.name === f.configMapRef?.name)?.data ?? {}).forEach((k) => shared.add(k));
    for (const [who, c, env] of [
      ['coordinator', coordC, coordEnv],
      ['worker', workerC, workerEnv],
    ] as const) {
      for (const name of Object.keys(env)) {
        const read = schemaKeys[who].has(name) || READ_ELSEWHERE[name] !== undefined;
        const readByOther =
          shared.has(name) && !(c.env ?? []).some((e) => e.name === name) && (schemaKeys.coordinator.has(name) || schemaKeys.worker.has(name));
        if (!read && !readByOther) problems.push(`${who}: ${name} is set but nothing reads it`);
      }
    }
    for (const k of shared) if (!schemaKeys.coordinator.has(k) && !schemaKeys.worker.has(k)) problems.push(`cvc-config: ${k} is read by neither service`);
    assert.deepEqual(problems, []);

    // Required settings are set and every value is valid (a bad unit or name fails here, not in the pod).
    const coord = coordinatorConfigSchema.safeParse(coordEnv);
    assert.ok(coord.success, `coordinator: ${JSON.stringify(coord.error?.issues)}`);
    const worker = workerConfigSchema.safeParse(workerEnv);
    assert.ok(worker.success, `worker: ${JSON.stringify(worker.error?.issues)}`);
    assert.notEqual(coord.data.CVC_INSECURE, 'true');
    assert.notEqual(worker.data.CVC_INSECURE, 'true');

    // TLS files are mounted where the settings point, readable by the service's user, and usable.
    const coordFiles = localFiles(coordPod, coordC, coordEnv, problems);
    const workerFiles = localFiles(workerPod, workerC, workerEnv, problems);
    assert.deepEqual(problems, []);
    const server = await grpcServerSecurity(coordinatorConfigSchema.parse(coordFiles));
    assert.equal(server.tls, true);
    await grpcClientSetup(clientSecurityFromEnv(workerFiles));
    // The worker's token is a worker token of the coordinator; the name it verifies is in the certificate.
    assert.ok(parseTokens(coord.data.CVC_WORKER_TOKENS, 'CVC_WORKER_TOKENS').includes(worker.data.CVC_TOKEN ?? ''), 'the worker token is accepted');
    const host = worker.data.CVC_TLS_SERVER_NAME ?? worker.data.CVC_COORDINATOR.split(':')[0];
    assert.ok(certNames.includes(host ?? ''), `${host} is a name of the certificate (${certNames.join(', ')})`);

    // The ports the services listen on (settings, image ENV or defaults) are the ports the pods declare and the probes and Services use.
    const port = (c: Container, name: string): number | undefined => c.ports?.find((p) => p.name === name)?.containerPort;
    assert.equal(coord.data.CVC_GRPC_PORT, port(coordC, 'grpc'));
    assert.equal(coord.data.CVC_METRICS_PORT, port(coordC, 'metrics'));
    assert.equal(worker.data.CVC_METRICS_PORT, port(workerC, 'metrics'));
    for (const c of [coordC, workerC]) for (const p of [c.livenessProbe, c.startupProbe]) assert.equal(p?.httpGet?.port, 'metrics');
    const servicePort = (name: string, target: string): number | undefined =>
      (objs.find((o) => o.kind === 'Service' && o.metadata.name === name)?.spec as { ports: { port: number; targetPort: string }[] } | undefined)?.ports.find(
        (p) => p.targetPort === target,
      )?.port;
    assert.equal(worker.data.CVC_COORDINATOR, `cvc-coordinator:${servicePort('cvc-coordinator', 'grpc')}`);
    assert.equal(coord.data.CVC_S3_PORT, servicePort(coord.data.CVC_S3_ENDPOINT, 's3'), 'CVC_S3_ENDPOINT/PORT name the MinIO Service');
    // Series of ended runs and tasks stay long enough to be scraped with their final values.
    for (const [kind, value] of [
      ['ServiceMonitor', coord.data.CVC_METRICS_RETENTION_MS],
      ['PodMonitor', worker.data.CVC_METRICS_RETENTION_MS],
    ] as const) {
      const mon = objs.find((o) => o.kind === kind)?.spec as { endpoints?: { interval: string }[]; podMetricsEndpoints?: { interval: string }[] } | undefined;
      const interval = Number(/^(\d+)s$/.exec((mon?.endpoints ?? mon?.podMetricsEndpoints ?? [])[0]?.interval ?? '')?.[1]);
      assert.ok(value >= 4 * interval * 1000, `${kind}: CVC_METRICS_RETENTION_MS ${value} covers several scrapes of ${interval} s`);
    }

    // NATS and MinIO are given the credentials the services use.
    const natsSts = workload(objs, 'StatefulSet', 'cvc-nats');
    const natsEnv = resolveEnv(objs, podOf(natsSts), podOf(natsSts).containers[0] as Container, problems);
    assert.equal(natsEnv['NATS_USER'], coord.data.CVC_NATS_USER);
    assert.equal(natsEnv['NATS_PASS'], coord.data.CVC_NATS_PASS);
    assert.equal(worker.data.CVC_NATS_PASS, coord.data.CVC_NATS_PASS);
    const minio = objs.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'cvc-minio');
    if (minio) {
      const minioEnv = resolveEnv(objs, podOf(minio), podOf(minio).containers[0] as Container, problems);
      assert.equal(minioEnv['MINIO_ROOT_USER'], coord.data.CVC_S3_ACCESS_KEY);
      assert.equal(minioEnv['MINIO_ROOT_PASSWORD'], coord.data.CVC_S3_SECRET_KEY);
    }
    assert.deepEqual(problems, []);

    // The shard cache is a writable volume that holds CVC_CACHE_MAX_BYTES (past its sizeLimit the kubelet evicts the pod).
    const cacheMount = (workerC.volumeMounts ?? []).find((m) => m.mountPath === worker.data.CVC_CACHE_DIR);
    assert.ok(cacheMount && !cacheMount.readOnly, `CVC_CACHE_DIR=${worker.data.CVC_CACHE_DIR} is a writable mount`);
    const cacheVol = (workerPod.volumes ?? []).find((v) => v.name === cacheMount.name);
    assert.ok(cacheVol?.emptyDir?.sizeLimit, 'the cache volume has a sizeLimit');
    assert.ok(
      worker.data.CVC_CACHE_MAX_BYTES > 0 && worker.data.CVC_CACHE_MAX_BYTES <= 0.9 * bytesOf(cacheVol.emptyDir.sizeLimit),
      'the cache stays under the sizeLimit',
    );
    // ...and the scheduler places the worker where that much disk is free.
    const disk = workerC.resources?.requests?.['ephemeral-storage'];
    assert.ok(disk && bytesOf(disk) >= worker.data.CVC_CACHE_MAX_BYTES, `the worker requests ephemeral-storage for its cache (${disk})`);

    // Thread pools follow the container's CPU limit, not the node's cores (availableParallelism sees the node).
    const cpuLimit = Math.ceil(cpuCount(workerC.resources?.limits?.['cpu'] ?? 'NaN'));
    assert.ok(workerEnv['CVC_WASM_THREADS'] !== undefined, 'CVC_WASM_THREADS is set (its default is the node cores)');
    assert.equal(worker.data.CVC_WASM_THREADS, cpuLimit);
    assert.equal(workerEnv['TF_NUM_INTRAOP_THREADS'], String(cpuLimit));
  });
}

test('the base carries no credentials: every Secret a workload reads is one the operator creates with the documented commands', () => {
  for (const overlay of OVERLAYS) {
    const objs = kustomizeBuild(overlay);
    assert.deepEqual(
      objs.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name),
      [],
      `${overlay}: no Secret with placeholder values is applied (a kubectl-created Secret of the same name would be shadowed)`,
    );
    for (const o of objs.filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet')) {
      const pod = podOf(o);
      const refs = [
        ...pod.containers.flatMap((c) => (c.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : []))),
        ...(pod.volumes ?? []).flatMap((v) =>
          v.secret ? (v.secret.items ?? [{ key: '' }]).map((i) => ({ name: v.secret?.secretName ?? '', key: i.key })) : [],
        ),
      ];
      for (const ref of refs) {
        assert.ok(secrets.has(ref.name), `${overlay} ${o.metadata.name}: Secret ${ref.name} is created by a documented command`);
        if (ref.key) assert.ok(secrets.get(ref.name)?.has(ref.key), `${overlay} ${o.metadata.name}: Secret ${ref.name} has key ${ref.key}`);
      }
    }
  }
});

test('probes: the cvc services get a startup probe long enough for their dependencies, then liveness on the same endpoint', () => {
  const objs = kustomizeBuild('k8s/base');
  for (const name of ['cvc-coordinator', 'cvc-worker']) {
    const c = podOf(workload(objs, 'Deployment', name)).containers[0];
    const s = c?.startupProbe;
    assert.ok(s?.httpGet, `${name} has a startup probe`);
    assert.deepEqual(s.httpGet, c?.livenessProbe?.httpGet, `${name}: the startup probe checks what liveness checks`);
    // The metrics listener starts only once NATS, S3 (and for a worker the backend and the coordinator) answer;
    // a worker retries the coordinator for 2 minutes before it gives up.
    assert.ok((s.periodSeconds ?? 10) * (s.failureThreshold ?? 3) >= 300, `${name}: the startup probe allows at least 5 minutes`);
  }
});

test('NATS stops in lame duck mode: a preStop hook signals it through the pid file its config writes, within the grace period', () => {
  const objs = kustomizeBuild('k8s/base');
  const sts = workload(objs, 'StatefulSet', 'cvc-nats');
  const pod = podOf(sts);
  const c = pod.containers[0];
  assert.ok(c);
  const conf = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('cvc-nats-config'))?.data?.['nats.conf'] ?? '';
  const pidFile = /^\s*pid_file: "?([^"\s]+)"?/m.exec(conf)?.[1];
  assert.ok(pidFile, 'nats.conf writes a pid file');
  // Without it, SIGTERM shuts the server down at once; with it, clients and stream leaders move first.
  assert.deepEqual(c.lifecycle?.preStop?.exec?.command, ['nats-server', `-sl=ldm=${pidFile}`]);
  if (c.securityContext?.readOnlyRootFilesystem) {
    const dir = pidFile.slice(0, pidFile.lastIndexOf('/'));
    const m = (c.volumeMounts ?? []).find((v) => v.mountPath === dir);
    assert.ok(m && !m.readOnly && (pod.volumes ?? []).some((v) => v.name === m.name && v.emptyDir), `${dir} is a writable volume`);
  }
  const secs = (key: string): number => Number(new RegExp(`^\\s*${key}: (\\d+)s`, 'm').exec(conf)?.[1] ?? NaN);
  // The NATS chart's rule: grace period + lame duck duration + 20 s to shut down.
  assert.ok((pod.terminationGracePeriodSeconds ?? 30) >= secs('lame_duck_grace_period') + secs('lame_duck_duration') + 20);
  // nats-server itself accepts the configuration (variables from the container's environment).
  const dir = mkdtempSync(join(tmpdir(), 'cvc-nats-conf-'));
  try {
    const file = join(dir, 'nats.conf');
    writeFileSync(file, conf);
    const r = spawnSync('nats-server', ['-t', '-c', file], {
      encoding: 'utf8',
      env: { ...process.env, SERVER_NAME: 'cvc-nats-0', NATS_USER: 'cvc', NATS_PASS: 'a-password-for-the-test' },
    });
    assert.equal(r.status, 0, `nats-server -t: ${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the cvc services are not PID 1: a SIGTERM before their handler is installed (during start-up) stops them at once', () => {
  // Node as PID 1 ignores SIGTERM until main() installs its handler, which comes after NATS, S3, the
  // backend and (for a worker) the coordinator answer: a pod deleted while it starts would wait out its
  // whole grace period. With a shared process namespace the pause container is PID 1 (and reaps zombies).
  for (const overlay of OVERLAYS) {
    const objs = kustomizeBuild(overlay);
    for (const name of ['cvc-coordinator', 'cvc-worker']) {
      const pod = podOf(workload(objs, 'Deployment', name)) as PodSpec & { shareProcessNamespace?: boolean };
      assert.equal(pod.shareProcessNamespace, true, `${overlay} ${name}`);
      assert.equal(pod.containers.length, 1, `${overlay} ${name}: one container (nothing else sees its processes)`);
    }
  }
});
