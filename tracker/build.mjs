// Builds tracker/dist/hubcap.min.js (run from anywhere: `node tracker/build.mjs`) and prints its sizes.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8'));
const outfile = join(here, 'dist', 'hubcap.min.js');

await build({
  entryPoints: [join(here, 'src', 'hubcap.js')],
  outfile,
  bundle: true,
  minify: true,
  format: 'iife',
  // ES2020 (optional chaining, spread) runs in every browser of the last four years; lowering it
  // for older ones would cost bytes for browsers the tracker does not aim at.
  target: ['es2020'],
  define: { __VERSION__: JSON.stringify(version) },
  legalComments: 'none',
  logLevel: 'warning',
});

const code = readFileSync(outfile);
const gzip = gzipSync(code, { level: 9 }).length;
const hash = createHash('sha256').update(code).digest('hex').slice(0, 12);
console.log(JSON.stringify({ file: 'tracker/dist/hubcap.min.js', version, bytes: code.length, gzip_bytes: gzip, budget_gzip_bytes: 2048, url: `/api/hubcap.js?v=${hash}` }));
