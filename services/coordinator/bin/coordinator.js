#!/usr/bin/env node
import { main } from '../dist/main.js';

main().catch((err) => {
  process.stderr.write(`cvc-coordinator: ${err?.message ?? err}\n`);
  process.exit(1);
});
