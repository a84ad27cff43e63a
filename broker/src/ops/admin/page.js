// The admin page: polls /admin/summary, turns counters into rates, draws them.
// Names come from clients (destinations, users): they are only ever set as text.
'use strict';

const EVERY_MS = 2000;
const KEPT = 60;
const history = [];
let previous = null;

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function number(n) {
  return n >= 100 ? Math.round(n).toLocaleString('en') : (Math.round(n * 10) / 10).toString();
}

function rows(id, entries) {
  const body = document.getElementById(id);
  body.replaceChildren(
    ...entries.map(([name, value]) => {
      const row = document.createElement('tr');
      const nameCell = document.createElement('td');
      nameCell.textContent = name;
      const valueCell = document.createElement('td');
      valueCell.className = 'n';
      valueCell.textContent = value;
      row.append(nameCell, valueCell);
      return row;
    }),
  );
}

function draw() {
  const canvas = document.getElementById('chart');
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(1, ...history.flatMap((h) => [h.published, h.delivered]));
  g.fillStyle = '#667';
  g.fillText(number(top), 2, 10);
  const x = (i) => 40 + (i * (canvas.width - 45)) / (KEPT - 1);
  const y = (v) => canvas.height - 5 - (v / top) * (canvas.height - 20);
  for (const [key, color] of [['published', '#2a6fdb'], ['delivered', '#1a9e5f']]) {
    g.strokeStyle = color;
    g.beginPath();
    history.forEach((h, i) => (i ? g.lineTo(x(i), y(h[key])) : g.moveTo(x(i), y(h[key]))));
    g.stroke();
  }
}

async function poll() {
  try {
    const response = await fetch('/admin/summary', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const s = await response.json();
    const now = performance.now();
    text('node', s.node);
    text('status', s.cluster_link === 'disconnected' ? 'cluster link down' : '');
    document.getElementById('status').className = s.cluster_link === 'disconnected' ? 'down' : '';
    const open = Object.values(s.connections).reduce((a, b) => a + b, 0);
    const byTransport = Object.entries(s.connections).map(([t, n]) => `${t} ${n}`).join(', ');
    text('connections', open.toLocaleString('en'));
    document.getElementById('connections').title = byTransport;
    text('users-online', `${s.users.online} (${s.users.sessions} sessions)`);
    text('cluster', s.cluster_link === 'standalone' ? 'single node' : `${1 + s.other_nodes} nodes`);
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      const rate = (key) => Math.max(0, (s.totals[key] - previous.totals[key]) / seconds);
      const sample = { published: rate('published'), delivered: rate('delivered') };
      text('published-rate', number(sample.published));
      text('delivered-rate', number(sample.delivered));
      text('dropped-rate', number(rate('dropped')));
      history.push(sample);
      if (history.length > KEPT) history.shift();
      draw();
    }
    previous = { at: now, totals: s.totals };
    rows('destinations', s.top_destinations.map((d) => [d.destination, number(d.per_second)]));
    rows('users', s.users.busiest.map((u) => [u.user, u.sessions]));
  } catch (e) {
    text('status', `cannot reach the broker (${e.message})`);
    document.getElementById('status').className = 'down';
  }
}

poll();
setInterval(poll, EVERY_MS);
