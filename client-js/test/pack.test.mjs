// `npm pack` gives a package that a fresh project installs and uses: ESM import, CommonJS
// require, and the type declarations under tsc.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const root = new URL('..', import.meta.url).pathname;
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test(
  'npm pack installs into a fresh project; ESM, CommonJS and types all work',
  { timeout: 120000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-client-pack-'));
    try {
      run('npm', ['pack', '--pack-destination', dir, '--silent'], root);
      const tarball = readdirSync(dir).find(name => name.endsWith('.tgz'));
      assert.ok(tarball, 'npm pack wrote a tarball');
      const listing = run('tar', ['-tzf', join(dir, tarball)], dir).split('\n');
      assert.ok(listing.includes('package/dist/esm/index.js'));
      assert.ok(listing.includes('package/dist/cjs/index.js'));
      assert.ok(listing.includes('package/dist/types/index.d.ts'));
      assert.ok(!listing.some(path => path.includes('test/')), 'no tests in the package');

      const app = join(dir, 'app');
      run('mkdir', ['-p', app], dir);
      writeFileSync(
        join(app, 'package.json'),
        '{ "name": "fresh-app", "private": true, "type": "module" }\n',
      );
      // Its dependencies come from the npm cache `npm ci` filled, else the registry.
      run(
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball)],
        app,
      );

      writeFileSync(
        join(app, 'esm.mjs'),
        "import { connect, user, HeraldAdmin } from '@herald/client';\n" +
          "if (user('/queue/a') !== '/user/queue/a' || typeof connect !== 'function' || !HeraldAdmin) process.exit(1);\n" +
          "console.log('esm ok');\n",
      );
      writeFileSync(
        join(app, 'cjs.cjs'),
        "const { userDestination, backoffOf } = require('@herald/client');\n" +
          "if (userDestination('a/b', '/queue/x') !== '/user/a%2Fb/queue/x' || backoffOf().minDelay !== 1000) process.exit(1);\n" +
          // Nothing listens on port 1: a refused attempt shows the `ws` dependency loads.
          "const client = require('@herald/client').connect({ url: 'ws://127.0.0.1:1/ws', reconnect: false });\n" +
          "client.on('closed', () => console.log('cjs ok'));\n",
      );
      assert.equal(run(process.execPath, ['esm.mjs'], app).trim(), 'esm ok');
      assert.equal(run(process.execPath, ['cjs.cjs'], app).trim(), 'cjs ok');

      writeFileSync(
        join(app, 'typed.ts'),
        "import { connect, type HeraldMessage } from '@herald/client';\n" +
          "const client = connect({ url: 'ws://localhost:15674/ws', reconnect: { minDelay: 500 } });\n" +
          "client.subscribe('/topic/x', (m: HeraldMessage) => m.ack());\n" +
          "const sent: Promise<void> = client.publish('/topic/x', { a: 1 }, { receipt: true });\n" +
          'void sent;\n',
      );
      const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
      run(
        process.execPath,
        [
          tsc,
          '--noEmit',
          '--strict',
          '--module',
          'nodenext',
          '--moduleResolution',
          'nodenext',
          '--skipLibCheck',
          'typed.ts',
        ],
        app,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
