import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { createCoordinatorMetrics, createWorkerMetrics } from '@cvc/metrics';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const deploy = join(root, 'deploy');

interface Container {
  name: string;
  image: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: unknown;
  livenessProbe?: unknown;
  securityContext?: { allowPrivilegeEscalation?: boolean };
}
interface PodSpec {
  securityContext?: { runAsNonRoot?: boolean };
  containers: Container[];
  tolerations?: { key: string }[];
  nodeSelector?: Record<string, string>;
}
type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { template: { spec: PodSpec } } & Record<string, unknown>;
  data?: Record<string, string>;
};

// Each kind is checked against its published schema (kubernetes-models validates with JSON Schema).
const models: Record<string, new (o: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

function build(path: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', join(deploy, path)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize ${path}: ${r.error?.message ?? r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}

for (const overlay of ['k8s/base', 'k8s/overlays/gpu', 'k8s/overlays/cpu', 'k8s/overlays/ha']) {
  test(`${overlay} builds and every object validates against the Kubernetes schemas`, () => {
    const objs = build(overlay);
    assert.ok(objs.length >= 14);
    for (const o of objs) {
      const Model = models[`${o.apiVersion}/${o.kind}`];
      assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind}/${o.metadata.name}`);
    }
    for (const o of objs.filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet')) {
      const pod = (o.spec as { template: { spec: PodSpec } }).template.spec;
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${o.metadata.name} runs as non-root`);
      for (const c of pod.containers) {
        assert.ok(c.resources?.requests && c.resources?.limits, `${o.metadata.name}/${c.name} has requests and limits`);
        assert.ok(c.readinessProbe && c.livenessProbe, `${o.metadata.name}/${c.name} has probes`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      }
    }
    const worker = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'cvc-worker');
    const podSpec = worker?.spec?.template.spec;
    const c = podSpec?.containers[0];
    assert.ok(podSpec && c);
    if (overlay.endsWith('gpu')) {
      assert.equal(c.resources?.limits?.['nvidia.com/gpu'], '1');
      assert.match(c.image, /^cvc-worker-gpu/);
      assert.ok(podSpec.tolerations?.some((t) => t.key === 'nvidia.com/gpu'));
      assert.ok(podSpec.nodeSelector);
    } else {
      assert.equal(c.resources?.limits?.['nvidia.com/gpu'], undefined);
      assert.match(c.image, /^cvc-worker-cpu/);
    }
    const secretRefs = JSON.stringify(objs.filter((o) => o.kind === 'Deployment'));
    assert.ok(!/SECRET_KEY","value"/.test(secretRefs), 'secrets come from the Secret, never inline');
  });
}

type Labels = Record<string, string>;
interface Peer {
  podSelector?: { matchLabels?: Labels };
  namespaceSelector?: { matchLabels?: Labels };
}
interface Policy {
  spec: { podSelector: { matchLabels?: Labels }; policyTypes: string[]; ingress?: { from?: Peer[]; ports?: { port: number }[] }[] };
}
const matches = (sel: { matchLabels?: Labels } | undefined, labels: Labels): boolean =>
  Object.entries(sel?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

/** Whether the policies let `src` (pod labels, namespace labels) reach `dst` (pod labels in the cvc namespace) on `port`: the NetworkPolicy ingress rules. */
function allowed(policies: Policy[], src: { pod: Labels; ns: Labels }, dst: Labels, port: number): boolean {
  const selecting = policies.filter((p) => p.spec.policyTypes.includes('Ingress') && matches(p.spec.podSelector, dst));
  if (selecting.length === 0) return true;
  const sameNs = src.ns['kubernetes.io/metadata.name'] === 'cvc';
  return selecting.some((p) =>
    (p.spec.ingress ?? []).some(
      (rule) =>
        (rule.ports ?? []).some((q) => q.port === port) &&
        (rule.from ?? []).some((peer) => (peer.namespaceSelector ? matches(peer.namespaceSelector, src.ns) : sameNs) && matches(peer.podSelector, src.pod)),
    ),
  );
}

test('NetworkPolicies: only workers and users reach the coordinator, only the services reach NATS and MinIO', () => {
  const objs = build('k8s/base');
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy') as unknown as Policy[];
  const app = (name: string): Labels => ({ 'app.kubernetes.io/name': name });
  const cvcNs = { 'kubernetes.io/metadata.name': 'cvc' };
  const inCvc = (name: string) => ({ pod: app(name), ns: cvcNs });
  const user = { pod: { 'cvc.io/client': 'true' }, ns: { 'kubernetes.io/metadata.name': 'research' } };
  const stranger = { pod: { app: 'something-else' }, ns: cvcNs };
  const outsider = { pod: {}, ns: { 'kubernetes.io/metadata.name': 'default' } };
  const prometheus = { pod: { app: 'prometheus' }, ns: { 'kubernetes.io/metadata.name': 'monitoring' } };
  const coordinator = app('cvc-coordinator');
  const cases: [string, { pod: Labels; ns: Labels }, Labels, number, boolean][] = [
    ['worker -> coordinator gRPC', inCvc('cvc-worker'), coordinator, 50051, true],
    ['user pod -> coordinator gRPC', user, coordinator, 50051, true],
    ['other pod in the namespace -> coordinator', stranger, coordinator, 50051, false],
    ['pod elsewhere -> coordinator', outsider, coordinator, 50051, false],
    ['MinIO -> coordinator', inCvc('cvc-minio'), coordinator, 50051, false],
    ['Prometheus -> coordinator metrics', prometheus, coordinator, 9464, true],
    ['Prometheus -> coordinator gRPC', prometheus, coordinator, 50051, false],
    ['coordinator -> NATS', inCvc('cvc-coordinator'), app('cvc-nats'), 4222, true],
    ['worker -> NATS', inCvc('cvc-worker'), app('cvc-nats'), 4222, true],
    ['user pod -> NATS', user, app('cvc-nats'), 4222, false],
    ['other pod -> NATS', stranger, app('cvc-nats'), 4222, false],
    ['coordinator -> MinIO', inCvc('cvc-coordinator'), app('cvc-minio'), 9000, true],
    ['worker -> MinIO', inCvc('cvc-worker'), app('cvc-minio'), 9000, true],
    ['user pod -> MinIO', user, app('cvc-minio'), 9000, false],
    ['other pod -> MinIO', stranger, app('cvc-minio'), 9000, false],
    ['NATS node -> NATS routes', inCvc('cvc-nats'), app('cvc-nats'), 6222, true],
    ['worker -> NATS routes', inCvc('cvc-worker'), app('cvc-nats'), 6222, false],
    ['coordinator -> NATS routes', inCvc('cvc-coordinator'), app('cvc-nats'), 6222, false],
    ['anyone -> worker', stranger, app('cvc-worker'), 9465, false],
    ['Prometheus -> worker metrics', prometheus, app('cvc-worker'), 9465, true],
  ];
  for (const [what, src, dst, port, want] of cases) assert.equal(allowed(policies, src, dst, port), want, what);
  // Every workload is covered by the default deny.
  assert.ok(policies.some((p) => Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0 && p.spec.ingress === undefined));

  // Credentials come from Secrets: tokens, the NATS password and the TLS key are never inline.
  const text = JSON.stringify(objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet'));
  for (const name of ['CVC_USER_TOKENS', 'CVC_WORKER_TOKENS', 'CVC_TOKEN', 'CVC_NATS_PASS', 'NATS_PASS']) {
    assert.ok(new RegExp(`"name":"${name}","valueFrom":\\{"secretKeyRef"`).test(text), `${name} comes from a Secret`);
  }
  const coord = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'cvc-coordinator');
  assert.match(JSON.stringify(coord), /"secretName":"cvc-tls"/);
  assert.match(JSON.stringify(coord), /CVC_TLS_CERT/);
});

test('promtool accepts the scrape config and the alert rules, whose unit tests pass; the PrometheusRule has the same rules', () => {
  for (const args of [
    ['check', 'config', join(deploy, 'prometheus/local.yml')],
    ['check', 'rules', join(deploy, 'prometheus/rules/cvc-alerts.yml')],
    // Unit tests of every alert on synthetic series: each fires when it should and not before.
    ['test', 'rules', join(deploy, 'prometheus/rules/cvc-alerts.test.yml')],
  ]) {
    const r = spawnSync('promtool', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool ${args.join(' ')}: ${r.error?.message ?? ''}${r.stdout}${r.stderr}`);
  }
  const local = parse(readFileSync(join(deploy, 'prometheus/rules/cvc-alerts.yml'), 'utf8')) as unknown;
  const rule = build('k8s/base').find((o) => o.kind === 'PrometheusRule');
  assert.deepEqual(rule?.spec, local);
  const names = ((local as { groups: { rules: { alert: string }[] }[] }).groups[0]?.rules ?? []).map((r) => r.alert);
  assert.deepEqual(names, ['CvcWorkerDown', 'CvcCoordinatorDown', 'CvcNoWorkers', 'CvcFoldNoProgress', 'CvcLossNaN', 'CvcFoldFailed', 'CvcClusterJobFailed']);
});

/** Every series name the services export, with its label names (registered, default, and the target's job and instance). */
async function exportedMetrics(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const target = ['job', 'instance'];
  for (const [reg, defaults] of [
    [createCoordinatorMetrics().registry, []],
    [createWorkerMetrics('w').registry, ['worker']],
  ] as const) {
    for (const m of await reg.getMetricsAsJSON()) {
      const labelNames = (reg.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ?? [];
      const labels = new Set([...labelNames, ...defaults, ...target]);
      out.set(m.name, labels);
      if (String(m.type) === 'histogram') {
        for (const s of ['_sum', '_count']) out.set(m.name + s, labels);
        out.set(`${m.name}_bucket`, new Set([...labels, 'le']));
      }
    }
  }
  out.set('up', new Set(target));
  return out;
}

/** The metric names in `expr` that no service exports, and the label matchers or groupings no metric of `expr` has. */
function unknownNames(expr: string, exported: Map<string, Set<string>>): string[] {
  const bad: string[] = [];
  const names = [...new Set(expr.match(/\b(cvc_[a-z0-9_]+|up)\b(?!\s*\()/g) ?? [])];
  for (const n of names) if (!exported.has(n)) bad.push(`metric ${n}`);
  for (const m of expr.matchAll(/\b(cvc_[a-z0-9_]+|up)\{([^}]*)\}/g)) {
    for (const [, label] of (m[2] ?? '').matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g))
      if (!exported.get(m[1] ?? '')?.has(label ?? '')) bad.push(`label ${label} of ${m[1]}`);
  }
  const anyHas = (label: string): boolean => names.some((n) => exported.get(n)?.has(label));
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of (m[1] ?? '')
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean))
      if (!anyHas(label)) bad.push(`grouping label ${label}`);
  }
  return bad;
}

test('the alert rules only use metrics and labels the services export', async () => {
  const exported = await exportedMetrics();
  const rules = (
    parse(readFileSync(join(deploy, 'prometheus/rules/cvc-alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }
  ).groups.flatMap((g) => g.rules);
  for (const r of rules) assert.deepEqual(unknownNames(r.expr, exported), [], `${r.alert}: ${r.expr}`);
});

test('the Grafana dashboard is provisioned for the sidecar and only queries metrics the services export', async () => {
  const cm = build('k8s/base').find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cvc-grafana-dashboard');
  assert.equal(cm?.metadata.labels?.['grafana_dashboard'], '1');
  const dash = JSON.parse(cm?.data?.['cvc-dashboard.json'] ?? '{}') as {
    templating: { list: { name: string; type: string }[] };
    panels: { title: string; targets: { expr: string; datasource: { uid: string } }[] }[];
  };
  assert.ok(dash.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  const exported = await exportedMetrics();
  for (const p of dash.panels) {
    for (const t of p.targets) {
      assert.equal(t.datasource.uid, '${datasource}', `${p.title} uses the datasource variable`);
      assert.deepEqual(unknownNames(t.expr, exported), [], `${p.title}: ${t.expr}`);
    }
  }
  const titles = dash.panels.map((p) => p.title).join(' | ');
  for (const want of [
    'loss per fold',
    'Throughput per worker',
    'Queue depth',
    'Folds by state',
    'Failures and redeliveries',
    'Checkpoint traffic',
    'Clustering jobs by state',
    'Clustering job loss',
  ])
    assert.ok(titles.includes(want), want);
});

test('Dockerfiles are multi-stage, run as non-root, and start entry points that exist', () => {
  const expect: Record<string, { bin: string; tf?: string }> = {
    'Dockerfile.coordinator': { bin: 'services/coordinator/bin/coordinator.js' },
    'Dockerfile.worker-cpu': { bin: 'services/worker/bin/worker.js', tf: '@tensorflow/tfjs-node@4.22.0' },
    'Dockerfile.worker-gpu': { bin: 'services/worker/bin/worker.js', tf: '@tensorflow/tfjs-node-gpu@4.22.0' },
  };
  for (const [file, want] of Object.entries(expect)) {
    const text = readFileSync(join(deploy, 'docker', file), 'utf8');
    const stages = text.split('\n').filter((l) => /^FROM /.test(l));
    assert.ok(stages.length >= 2, `${file} is multi-stage`);
    const finalStage = text.slice(text.lastIndexOf('\nFROM '));
    const user = /\nUSER (\S+)/.exec(finalStage)?.[1];
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `${file} runs as ${user}`);
    const cmd = /\nCMD \["node", "([^"]+)"\]/.exec(finalStage)?.[1];
    assert.equal(cmd, want.bin);
    assert.doesNotThrow(() => readFileSync(join(root, want.bin)), `${want.bin} exists`);
    if (want.tf) assert.ok(text.includes(want.tf), `${file} installs ${want.tf}`);
    else assert.ok(!text.includes('tfjs-node'), `${file} carries no native TensorFlow`);
  }
  assert.match(readFileSync(join(deploy, 'docker', 'Dockerfile.worker-gpu'), 'utf8'), /cuda:11\.2\.\d+-cudnn8/);
});

interface Sts {
  kind: string;
  metadata: { name: string };
  spec: {
    replicas: number;
    serviceName: string;
    podManagementPolicy?: string;
    volumeClaimTemplates?: unknown[];
    template: {
      spec: {
        affinity?: { podAntiAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { topologyKey: string; labelSelector: { matchLabels: Labels } }[] } };
        containers: {
          name: string;
          args?: string[];
          env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
          envFrom?: { configMapRef?: { name: string } }[];
        }[];
      };
    };
  };
}
const find = (objs: Obj[], kind: string, name: string): Obj | undefined =>
  objs.find((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)));
const spreadOverNodes = (s: Sts, app: string): boolean =>
  (s.spec.template.spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []).some(
    (t) => t.topologyKey === 'kubernetes.io/hostname' && t.labelSelector.matchLabels['app.kubernetes.io/name'] === app,
  );
const pdbAllows = (objs: Obj[], app: string): number | undefined => {
  const pdb = objs.find(
    (o) =>
      o.kind === 'PodDisruptionBudget' && (o.spec as unknown as { selector: { matchLabels: Labels } }).selector.matchLabels['app.kubernetes.io/name'] === app,
  );
  return (pdb?.spec as { maxUnavailable?: number } | undefined)?.maxUnavailable;
};

test('base: NATS is a 3-node JetStream cluster (routes by pod DNS name, server_name from the pod, a PVC each, PDB, anti-affinity); the services keep 3 copies', () => {
  const objs = build('k8s/base');
  const nats = find(objs, 'StatefulSet', 'cvc-nats') as unknown as Sts;
  assert.equal(nats.spec.replicas, 3);
  assert.equal(nats.spec.podManagementPolicy, 'Parallel');
  assert.equal(nats.spec.volumeClaimTemplates?.length, 1, 'a PVC per pod');
  assert.ok(spreadOverNodes(nats, 'cvc-nats'), 'one NATS pod per Kubernetes node');
  assert.equal(pdbAllows(objs, 'cvc-nats'), 1, 'drains take one NATS node at a time');
  const headless = find(objs, 'Service', nats.spec.serviceName) as unknown as {
    spec: { clusterIP: string; publishNotReadyAddresses: boolean; ports: { port: number }[] };
  };
  assert.equal(headless.spec.clusterIP, 'None');
  assert.equal(headless.spec.publishNotReadyAddresses, true);
  assert.ok(headless.spec.ports.some((p) => p.port === 6222));
  const container = nats.spec.template.spec.containers[0];
  assert.equal(container?.env?.find((e) => e.name === 'SERVER_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
  const conf = (find(objs, 'ConfigMap', 'cvc-nats-config')?.data ?? {})['nats.conf'] ?? '';
  assert.match(conf, /server_name: \$SERVER_NAME/);
  assert.match(conf, /jetstream \{ store_dir: \/data\/jetstream \}/);
  const cluster = /cluster \{([\s\S]*?)\n {0,4}\}/.exec(conf)?.[1] ?? '';
  assert.match(cluster, /port: 6222/);
  const routes = [...cluster.matchAll(/nats:\/\/([a-z0-9-]+)\.([a-z0-9-]+):6222/g)].map((m) => `${m[1]}.${m[2]}`);
  assert.deepEqual(
    routes,
    [0, 1, 2].map((i) => `cvc-nats-${i}.${nats.spec.serviceName}`),
    'a route to every pod, by its DNS name',
  );
  const config = find(objs, 'ConfigMap', 'cvc-config')?.data ?? {};
  assert.equal(config['CVC_NATS_REPLICAS'], '3');
  assert.deepEqual(
    config['CVC_NATS_URL']?.split(','),
    [0, 1, 2].map((i) => `nats://cvc-nats-${i}.${nats.spec.serviceName}:4222`),
  );
  for (const name of ['cvc-coordinator', 'cvc-worker']) {
    const d = find(objs, 'Deployment', name) as unknown as Sts;
    assert.ok(
      d.spec.template.spec.containers[0]?.envFrom?.some((e) => e.configMapRef?.name.startsWith('cvc-config')),
      `${name} reads cvc-config`,
    );
  }
  // The base keeps one MinIO (trial deployments); the ha overlay distributes it.
  const minio = find(objs, 'StatefulSet', 'cvc-minio') as unknown as Sts;
  assert.equal(minio.spec.replicas, 1);
  assert.deepEqual(minio.spec.template.spec.containers[0]?.args, ['server', '/data']);
});

test('ha overlay: MinIO runs distributed, 4 pods erasure-coding one drive each, found by their DNS names; NATS stays a 3-node cluster', () => {
  const objs = build('k8s/overlays/ha');
  const minio = find(objs, 'StatefulSet', 'cvc-minio') as unknown as Sts;
  assert.equal(minio.spec.replicas, 4);
  assert.equal(minio.spec.podManagementPolicy, 'Parallel');
  assert.equal(minio.spec.volumeClaimTemplates?.length, 1);
  assert.ok(spreadOverNodes(minio, 'cvc-minio'), 'one MinIO pod per Kubernetes node');
  assert.equal(pdbAllows(objs, 'cvc-minio'), 1);
  const c = minio.spec.template.spec.containers[0];
  assert.deepEqual(c?.args, ['server', `http://cvc-minio-{0...3}.${minio.spec.serviceName}.$(POD_NAMESPACE).svc.cluster.local/data`]);
  assert.equal(c?.env?.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
  const headless = find(objs, 'Service', minio.spec.serviceName) as unknown as { spec: { clusterIP: string; selector: Labels } };
  assert.equal(headless.spec.clusterIP, 'None');
  assert.equal(headless.spec.selector['app.kubernetes.io/name'], 'cvc-minio');
  // The S3 clients still use the cvc-minio service; the MinIO nodes reach each other.
  assert.equal(find(objs, 'ConfigMap', 'cvc-config')?.data?.['CVC_S3_ENDPOINT'], 'cvc-minio');
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy') as unknown as Policy[];
  const inCvc = { ns: { 'kubernetes.io/metadata.name': 'cvc' } };
  assert.ok(allowed(policies, { pod: { 'app.kubernetes.io/name': 'cvc-minio' }, ...inCvc }, { 'app.kubernetes.io/name': 'cvc-minio' }, 9000), 'MinIO -> MinIO');
  assert.ok(!allowed(policies, { pod: { app: 'x' }, ...inCvc }, { 'app.kubernetes.io/name': 'cvc-minio' }, 9000), 'other pods still cannot reach MinIO');
  assert.equal((find(objs, 'StatefulSet', 'cvc-nats') as unknown as Sts).spec.replicas, 3);
});
