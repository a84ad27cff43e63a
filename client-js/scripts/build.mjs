// Builds dist/: ESM and type declarations with tsc, a CommonJS build with esbuild, and the
// chat demo's bundle (examples/chat/public/app.js).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);
rmSync('dist', { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
// esbuild only strips types: the demo is type-checked here.
execFileSync(process.execPath, [tsc, '-p', 'examples/chat/tsconfig.json'], { stdio: 'inherit' });

await build({
  entryPoints: ['src/index.ts'],
  outfile: 'dist/cjs/index.js',
  bundle: true,
  format: 'cjs',
  platform: 'neutral',
  target: 'es2022',
  external: ['@stomp/stompjs', 'ws'],
  sourcemap: true,
  logLevel: 'warning',
});
mkdirSync('dist/cjs', { recursive: true });
// dist/ sits in a "type": "module" package; this marks the CommonJS half as such.
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n');

await build({
  entryPoints: ['examples/chat/src/app.ts'],
  outfile: 'examples/chat/public/app.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
});
