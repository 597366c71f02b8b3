// Warren's web client: an account, then one session socket (/ws) and, during a battle,
// the battle socket its `battle.started` names. Every frame is docs/protocol.md's.
// Pushes carry `seq`: each is shown once, in order, then acknowledged; a reconnect logs
// in with the last one shown (`ack`) and the server sends what came after.
'use strict';

const $ = (id) => document.getElementById(id);

// ---- Stored on the device: the session, the device id, the last push shown ----

const store = {
  get(key) {
    try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
  },
  set(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify(value));
    } catch { /* private mode: kept for this page only */ }
  },
};

// {player, username, token, refresh_token}, from the account endpoints.
let session = store.get('warren.session');
let ws = null;           // the session socket
let welcomed = false;    // the socket got its `welcome`
let me = null;           // this player's id
let mark = 0;            // the last push shown
let ackTimer = null;
let retry = 0;           // reconnects since the last welcome
let retryTimer = null;
let refreshTried = false;
const pending = new Map(); // request key -> frame, until its `done`
let keyCount = 0;

const markKey = () => 'warren.ack.' + session.player;

// ---- Accounts (HTTP) ----

async function post(path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(path, { method: 'POST', headers, body: body ? JSON.stringify(body) : undefined });
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { /* no body */ }
  if (!res.ok) {
    const err = new Error((data && data.error) || `the server answered ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function signedIn(data) {
  session = { player: data.player, username: data.username, token: data.token, refresh_token: data.refresh_token };
  store.set('warren.session', session);
  start();
}

async function authenticate(action) {
  const username = $('username').value.trim();
  const password = $('password').value;
  authError('');
  try {
    signedIn(await post('/auth/' + action, { username, password }));
  } catch (e) {
    authError(e.message);
  }
}

async function guest() {
  let device = store.get('warren.device');
  if (!device) {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    device = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    store.set('warren.device', device);
  }
  authError('');
  try {
    signedIn(await post('/auth/device', { device_id: device }));
  } catch (e) {
    authError(e.message);
  }
}

// A new session token from the refresh token; false if there is none or it is refused.
async function refresh() {
  if (!session || !session.refresh_token) return false;
  try {
    const data = await post('/auth/refresh', { refresh_token: session.refresh_token });
    session = { ...session, token: data.token, refresh_token: data.refresh_token };
    store.set('warren.session', session);
    return true;
  } catch {
    return false;
  }
}

function logout(reason) {
  session = null;
  store.set('warren.session', null);
  disconnect();
  pending.clear();
  showGame(false);
  authError(reason || '');
}

async function logoutEverywhere() {
  try {
    if (session && session.token) await post('/auth/logout-everywhere', null, session.token);
    logout('Logged out on every device.');
  } catch (e) {
    showError(e.message);
  }
}

// ---- The session socket ----

function wsUrl(path) {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}

// Opens the session socket and logs in: the session token goes as a subprotocol beside
// `warren` (a browser's WebSocket cannot set headers), and the token names the player.
function connect() {
  clearTimeout(retryTimer);
  welcomed = false;
  mark = store.get(markKey()) || 0;
  setStatus('connecting', 'connecting…');
  const socket = new WebSocket(wsUrl('/ws'), ['warren', 'bearer.' + session.token]);
  ws = socket;
  socket.onopen = () => socket.send(JSON.stringify({ type: 'login', ack: mark }));
  socket.onmessage = (e) => {
    if (ws !== socket) return;
    let frame;
    try { frame = JSON.parse(e.data); } catch { return showError('the server sent a frame that is not JSON'); }
    onFrame(frame);
  };
  socket.onclose = (e) => {
    if (ws === socket) closed(e.code, e.reason);
  };
}

function disconnect() {
  clearTimeout(retryTimer);
  if (ws) {
    const socket = ws;
    ws = null;
    socket.close(1000);
  }
  closeBattleSocket();
  welcomed = false;
  setStatus('offline', 'offline');
}

// The session socket closed (a battle socket stays: the room goes on without it).
async function closed(code, reason) {
  ws = null;
  welcomed = false;
  if (code >= 4400 && code < 4500) {
    // The token was refused: one refresh, else back to the login form.
    if (!refreshTried && (await refresh())) {
      refreshTried = true;
      return connect();
    }
    return logout(reason || 'Your session has ended: log in again.');
  }
  if (code === 4001) {
    setStatus('offline', 'logged in elsewhere');
    $('reconnect').hidden = false;
    return;
  }
  const wait = Math.min(10, 2 ** retry);
  retry += 1;
  setStatus('offline', `${reason || 'disconnected'}: reconnecting in ${wait} s`);
  retryTimer = setTimeout(connect, wait * 1000);
}

function send(frame) {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    showError('not connected: wait for the reconnect');
    return false;
  }
  ws.send(JSON.stringify(frame));
  return true;
}

// A frame that changes something goes with a request key: sent again after a reconnect
// or an `unknown`, it is applied once.
function act(frame) {
  keyCount += 1;
  frame.req = `${Date.now().toString(36)}-${keyCount}`;
  pending.set(frame.req, frame);
  send(frame);
}

// The pushes shown up to `seq` are acknowledged, a few at a time.
function shown(seq) {
  mark = seq;
  store.set(markKey(), mark);
  if (!ackTimer) {
    ackTimer = setTimeout(() => {
      ackTimer = null;
      if (welcomed && ws && ws.readyState === WebSocket.OPEN) send({ type: 'ack', seq: mark });
    }, 100);
  }
}

// ---- Frames ----

function onFrame(f) {
  if (typeof f.seq === 'number') {
    if (f.seq <= mark) return; // shown before a reconnect: sent again, skipped
    render(f);
    shown(f.seq);
  } else {
    render(f);
  }
}

const handlers = {
  welcome(f) {
    welcomed = true;
    retry = 0;
    refreshTried = false;
    me = f.player;
    if (f.last_push < mark) {
      mark = f.last_push;
      store.set(markKey(), mark);
    }
    if (f.missed) log(`${f.missed} older messages were dropped while you were away`);
    setStatus('online', 'online');
    $('reconnect').hidden = true;
    showGame(true);
    $('who').textContent = `${f.name} (player ${f.player})`;
    for (const type of ['bag', 'equipment', 'pets', 'shop']) send({ type });
    for (const frame of pending.values()) send(frame);
  },
  profile: renderProfile,
  bag: renderBag,
  shop: renderShop,
  equipment: renderEquipment,
  pets: renderPets,
  pong() {},
  done(f) { pending.delete(f.req); },
  unknown(f) {
    showError(f.reason);
    const frame = f.req && pending.get(f.req);
    if (frame) setTimeout(() => pending.has(f.req) && send(frame), 1000);
  },
  error(f) {
    showError(f.reason);
    reenableBattle();
  },
  'whisper.sent'(f) { addLine('whispers', `to ${f.to}: ${f.text}`, 'out'); },
  whisper(f) { addLine('whispers', `${f.from_name} (${f.from}): ${f.text}`, 'in'); },
  'guild.requested'() {},
  'guild.event': renderGuildEvent,
  'battle.started'(f) {
    // The room's first frame may have come first, through the session.
    if (!battle || battle.room !== f.room) startBattle(f.room);
    openBattleSocket(f.url, f.room, f.ticket);
  },
  'battle.moved'(f) {
    if (battle && battle.room === f.room) openBattleSocket(f.url, f.room, f.ticket);
  },
  'battle.reward'(f) {
    log(`Battle ${f.room}: ${f.won ? 'won' : 'not won'}, +${f.xp} xp, +${f.gold} gold` +
      (f.levels ? `, ${f.levels} level(s) up` : ''));
  },
};

function render(f) {
  const handler = handlers[f.type] || battleHandlers[f.type];
  if (handler) handler(f);
  else log(`(${f.type}) ${JSON.stringify(f)}`);
}

function start() {
  showGame(true);
  $('who').textContent = session.username;
  retry = 0;
  connect();
}

// ---- Wiring ----

function wire() {
  $('auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    authenticate(e.submitter ? e.submitter.dataset.action : 'login');
  });
  $('guest').addEventListener('click', guest);
  $('logout').addEventListener('click', () => logout(''));
  $('logout-everywhere').addEventListener('click', logoutEverywhere);
  $('reconnect').addEventListener('click', () => { retry = 0; connect(); });
  $('error-close').addEventListener('click', () => { $('error').hidden = true; });
  $('shop-refresh').addEventListener('click', () => send({ type: 'shop' }));
  $('battle-start').addEventListener('click', () => {
    if (send({ type: 'battle.start' })) $('battle-start').disabled = true;
  });
  $('act-attack').addEventListener('click', () => battleInput('attack'));
  $('act-defend').addEventListener('click', () => battleInput('defend'));
  $('act-heal').addEventListener('click', () => battleInput('heal'));
  $('adopt-form').addEventListener('submit', (e) => {
    e.preventDefault();
    act({ type: 'pet.adopt', species: $('adopt-species').value, name: $('adopt-name').value.trim() });
    $('adopt-name').value = '';
  });
  $('whisper-form').addEventListener('submit', (e) => {
    e.preventDefault();
    act({ type: 'whisper', to: Number($('whisper-to').value), text: $('whisper-text').value });
    $('whisper-text').value = '';
  });
  $('guild-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const type = e.submitter ? e.submitter.dataset.action : 'guild.join';
    act({ type, name: $('guild-input').value.trim() });
  });
  $('guild-info').addEventListener('click', () => {
    const name = $('guild-input').value.trim();
    act(name ? { type: 'guild.info', name } : { type: 'guild.info' });
  });
  $('guild-leave').addEventListener('click', () => act({ type: 'guild.leave' }));
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    act({ type: 'guild.chat', text: $('chat-text').value });
    $('chat-text').value = '';
  });
  // A module swapped on the server shows at the next look: the shop is asked again now
  // and then while the page is open.
  setInterval(() => {
    if (welcomed && document.visibilityState === 'visible') send({ type: 'shop' });
  }, 5000);
}

wire();
if (session) start();
else showGame(false);
