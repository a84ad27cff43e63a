// `npm run demo`: builds herald if needed and runs it with this folder's page as its
// websocket.static_dir and three demo users (alice, bob, carol; each password is the name).
// Open http://127.0.0.1:15674/ in two windows (PORT=... picks another port).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const repo = join(here, '../../..');
const port = process.env.PORT ?? '15674';
const config = join(mkdtempSync(join(tmpdir(), 'herald-chat-')), 'herald.toml');
writeFileSync(
  config,
  `[websocket]\nbind = "127.0.0.1:${port}"\nstatic_dir = ${JSON.stringify(join(here, 'public'))}\n\n` +
    `[tcp]\nenabled = false\n`,
);
const users = ['alice', 'bob', 'carol'].flatMap(name => ['--user', `${name}:${name}`]);
console.log(`chat demo: http://127.0.0.1:${port}/ (open it twice, log in as two users)`);
const herald = spawn('cargo', ['run', '-p', 'herald', '--', '--config', config, ...users], {
  cwd: repo,
  stdio: 'inherit',
});
herald.on('exit', code => process.exit(code ?? 1));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => herald.kill(signal));
