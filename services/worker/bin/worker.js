#!/usr/bin/env node
import { main } from '../dist/main.js';

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`cvc-worker: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);
