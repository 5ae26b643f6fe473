// Builds dashboard/dist/dashboard.min.js (run from anywhere: `node dashboard/build.mjs`) and prints its
// sizes. uPlot and its stylesheet are bundled in: the page loads one script and nothing else.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, 'dist', 'dashboard.min.js');
export const BUDGET_GZIP_BYTES = 32768;

await build({
  entryPoints: [join(here, 'src', 'dashboard.js')],
  outfile,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  // The stylesheet as text, put into a <style> by the script: one file to serve.
  loader: { '.css': 'text' },
  legalComments: 'none',
  logLevel: 'warning',
});

const code = readFileSync(outfile);
const gzip = gzipSync(code, { level: 9 }).length;
console.log(JSON.stringify({ file: 'dashboard/dist/dashboard.min.js', bytes: code.length, gzip_bytes: gzip, budget_gzip_bytes: BUDGET_GZIP_BYTES }));
