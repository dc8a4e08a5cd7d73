import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { COMMAND_HELP } from './help.js';

const SUBCOMMANDS = [
  'dataset list',
  'dataset inspect',
  'dataset download',
  'dataset import',
  'cv',
  'local up',
  'run submit',
  'run watch',
  'run show',
  'run list',
  'run cancel',
  'sweep submit',
  'sweep watch',
  'sweep show',
  'sweep list',
  'sweep cancel',
  'secrets init',
  'encoder fetch',
  'embed',
  'cluster',
  'cluster-job submit',
  'cluster-job watch',
  'cluster-job show',
  'cluster-job list',
  'cluster-job cancel',
  'cluster-job fetch',
  'report',
];

test('every subcommand has --help: usage, flags with defaults, an example; exit 0', async () => {
  assert.deepEqual(Object.keys(COMMAND_HELP).sort(), [...SUBCOMMANDS].sort());
  for (const name of SUBCOMMANDS) {
    for (const argv of [
      [...name.split(' '), '--help'],
      [...name.split(' '), '-h'],
      ['help', ...name.split(' ')],
    ]) {
      const env = captureEnv('/nonexistent');
      assert.equal(await main(argv, env), 0, `${argv.join(' ')}: ${env.err()}`);
      const out = env.out();
      assert.match(out, new RegExp(`^Usage: cvc ${name}`), argv.join(' '));
      assert.match(out, /\nExample:\n {2}cvc /, argv.join(' '));
      for (const f of COMMAND_HELP[name]?.flags ?? []) assert.ok(out.includes(f.flag), `${name} --help lists ${f.flag}`);
    }
  }
  const submit = captureEnv('/nonexistent');
  await main(['run', 'submit', '--help'], submit);
  assert.match(submit.out(), /--epochs N +epochs per fold \(default: 100\)/);
});

test('a group lists its subcommands; --help beats other flags and never runs the command', async () => {
  const env = captureEnv('/nonexistent');
  assert.equal(await main(['run', '--help'], env), 0);
  for (const s of ['submit', 'watch', 'show', 'list', 'cancel']) assert.match(env.out(), new RegExp(`cvc run ${s}`));
  const noCluster = captureEnv('/nonexistent');
  assert.equal(await main(['run', 'watch', 'r-1', '--cluster', '/nonexistent/cluster.json', '--help'], noCluster), 0, noCluster.err());
  assert.equal(noCluster.err(), '');
});

test('the top-level help shows every model form and the image-folder import; embed/cluster --fit defaults to the encoder metadata', async () => {
  const env = captureEnv(process.cwd());
  assert.equal(await main(['--help'], env), 0);
  const out = env.out();
  assert.match(out, /--model seed-mnist\|seed-cifar\|cae \| --model-config FILE/);
  assert.match(out, /cvc dataset import FOLDER --name NAME/);
  for (const cmd of ['embed', 'cluster']) {
    const fit = COMMAND_HELP[cmd]?.flags.find((f) => f.flag.startsWith('--fit'));
    assert.match(fit?.default ?? '', /metadata\.json, else cover/, cmd);
  }
});
