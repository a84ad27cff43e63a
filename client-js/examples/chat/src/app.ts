// The chat demo: a room on a topic, per-user notifications on /user/queue/notifications, and
// presence announced on a topic. Served by Herald itself (websocket.static_dir), so the socket
// is on the page's own origin.
import { type HeraldClient, connect } from '../../../src/index.js';

const ROOM = '/topic/chat/lobby';
const PRESENCE = '/topic/chat/presence';
const NOTIFICATIONS = '/queue/notifications';
/** Everyone says they are here this often; someone unheard of for 3 periods has left. */
const ANNOUNCE_MS = 5000;

interface ChatMessage {
  from: string;
  text: string;
}
interface PresenceNote {
  user: string;
  state: 'joined' | 'here' | 'left';
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const seen = new Map<string, number>();
let client: HeraldClient;
let me = '';

function item(list: HTMLElement, parts: [string, string][]): HTMLLIElement {
  const li = document.createElement('li');
  for (const [className, text] of parts) {
    const span = document.createElement('span');
    span.className = className;
    span.textContent = text;
    li.append(span);
  }
  list.append(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

function showStatus(state: string, text: string): void {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
}

function renderPresence(): void {
  const list = $('presence');
  list.replaceChildren();
  const now = Date.now();
  for (const [user, at] of [...seen].sort()) {
    if (now - at > 3 * ANNOUNCE_MS) {
      seen.delete(user);
      continue;
    }
    const li = document.createElement('li');
    li.dataset.user = user;
    li.append(user === me ? `${user} (you)` : user);
    if (user !== me) {
      const nudge = document.createElement('button');
      nudge.textContent = 'nudge';
      nudge.onclick = () =>
        void client.sendToUser(user, NOTIFICATIONS, { from: me, text: `${me} nudged you` });
      li.append(nudge);
    }
    list.append(li);
  }
}

function announce(state: PresenceNote['state']): Promise<void> {
  return client.publish(PRESENCE, { user: me, state } satisfies PresenceNote, { receipt: false });
}

function join(name: string, password: string): void {
  me = name;
  client = connect({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    login: name,
    passcode: password,
    reconnect: { minDelay: 500, maxDelay: 10000 },
  });
  client.on('connecting', () => showStatus('connecting', 'connecting…'));
  client.on('reconnecting', ({ delay }) =>
    showStatus('reconnecting', `reconnecting in ${delay} ms`),
  );
  client.on('connected', ({ user }) => {
    showStatus('connected', `connected as ${user}`);
    void announce('joined');
  });
  client.onError(({ message }) => showStatus('error', `broker said: ${message}`));

  client.subscribe(ROOM, message => {
    const { from, text } = message.body as ChatMessage;
    item($('messages'), [
      ['from', from],
      ['text', text],
    ]);
  });
  client.subscribe(PRESENCE, message => {
    const note = message.body as PresenceNote;
    if (note.state === 'left') seen.delete(note.user);
    else seen.set(note.user, Date.now());
    // A newcomer learns who is here from everyone's answer.
    if (note.state === 'joined' && note.user !== me) void announce('here');
    renderPresence();
  });
  client.subscribe(client.user(NOTIFICATIONS), message => {
    const { from, text } = message.body as ChatMessage;
    item($('notifications'), [
      ['from', `${from}: `],
      ['text', text],
    ]);
  });

  setInterval(() => {
    if (client.connected) void announce('here');
    renderPresence();
  }, ANNOUNCE_MS);
  addEventListener('pagehide', () => void announce('left'));

  $('me').textContent = `as ${name}`;
  $('login').hidden = true;
  $('room').hidden = false;
  $('message-input').focus();
}

async function send(text: string): Promise<void> {
  await client.publish(ROOM, { from: me, text } satisfies ChatMessage);
  // `@name` in a message notifies that user, in every tab they have open.
  for (const [, name] of text.matchAll(/@([\w.-]+)/g)) {
    if (name && name !== me) await client.sendToUser(name, NOTIFICATIONS, { from: me, text });
  }
}

$('login').addEventListener('submit', event => {
  event.preventDefault();
  join(
    ($('login-name') as HTMLInputElement).value.trim(),
    ($('login-password') as HTMLInputElement).value,
  );
});

$('composer').addEventListener('submit', event => {
  event.preventDefault();
  const input = $('message-input') as HTMLInputElement;
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  send(text).catch(error => showStatus('error', `not sent: ${error.message}`));
});
