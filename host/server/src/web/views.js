// Warren's web client, what the page shows: the player's state, the guild, the battle,
// drawn from the server's frames (app.js reads the frames and calls these), and the page
// helpers. Loaded before app.js; the two share the page's global scope.
'use strict';

// ---- The player's state ----

let catalogue = new Map(); // item id -> shop entry
let shopShown = '';
let bag = { items: [], capacity: 20 }; // the last `bag` frame

function renderProfile(p) {
  $('profile-name').textContent = p.name;
  $('profile-id').textContent = p.id;
  $('level').textContent = p.level;
  $('gold').textContent = p.gold;
  $('hp').textContent = `${p.hp} / ${p.max_hp}`;
  $('xp').textContent = `${p.xp} / ${p.xp_to_next}`;
  $('hp-bar').style.width = percent(p.hp, p.max_hp);
  $('xp-bar').style.width = percent(p.xp, p.xp_to_next);
}

function itemName(id) {
  const def = catalogue.get(id);
  return def ? def.name : id;
}

function renderBag(b) {
  bag = b;
  $('bag-count').textContent = `${b.items.length} / ${b.capacity}`;
  const rows = b.items.map((it) => {
    const kind = catalogue.has(it.item) ? catalogue.get(it.item).kind.use : null;
    const buttons = [];
    if (kind === 'heal' || kind === 'xp') buttons.push(button('Use', () => act({ type: 'item.use', slot: it.slot }), 'use'));
    if (kind === 'gear') buttons.push(button('Equip', () => act({ type: 'equip', slot: it.slot }), 'equip'));
    buttons.push(button('Sell', () => act({ type: 'item.sell', slot: it.slot }), 'sell'));
    const tr = row([it.slot, itemName(it.item), '×' + it.count, buttons]);
    tr.dataset.item = it.item;
    tr.querySelector('td:nth-child(3)').className = 'count';
    return tr;
  });
  $('bag').replaceChildren(...rows);
  fillFoodChoices();
}

function describe(kind) {
  switch (kind.use) {
    case 'heal': return `heals ${kind.hp} hp`;
    case 'xp': return `${kind.xp} xp`;
    case 'food': return `pet food (+${kind.satiety} satiety)`;
    case 'gear': {
      const bonus = [kind.attack ? `attack +${kind.attack}` : '', kind.defense ? `defense +${kind.defense}` : '']
        .filter(Boolean).join(', ');
      return `${kind.slot}: ${bonus}` + (kind.min_level > 1 ? ` (level ${kind.min_level})` : '');
    }
    default: return kind.use;
  }
}

function renderShop(s) {
  catalogue = new Map(s.items.map((it) => [it.item, it]));
  const text = JSON.stringify(s.items);
  if (text === shopShown) return; // unchanged: the count a player typed stays
  shopShown = text;
  const rows = s.items.map((it) => {
    const count = document.createElement('input');
    count.type = 'number';
    count.min = '1';
    count.max = '999';
    count.value = '1';
    count.className = 'qty';
    const buy = button('Buy', () => act({ type: 'shop.buy', item: it.item, count: Number(count.value) || 1 }), 'buy');
    const tr = row([it.name, describe(it.kind), it.price + ' g', [count, buy]]);
    tr.dataset.item = it.item;
    tr.children[2].className = 'price';
    return tr;
  });
  $('shop').replaceChildren(...rows);
  renderBag(bag);
}

function renderEquipment(e) {
  const rows = Object.entries(e.slots).map(([slot, item]) => {
    const off = item ? [button('Unequip', () => act({ type: 'unequip', slot }))] : [];
    return row([slot, item ? itemName(item) : '—', off]);
  });
  $('equipment').replaceChildren(...rows);
  $('equip-attack').textContent = e.attack;
  $('equip-defense').textContent = e.defense;
}

function renderPets(p) {
  const cards = p.pets.map((pet) => {
    const card = el('div', 'pet');
    card.append(el('b', '', pet.name), ` the ${pet.species} `, el('span', 'note', `#${pet.id}`));
    card.append(meter('satiety', pet.satiety, 100), meter('affection', pet.affection, 100));
    const food = el('select', 'food');
    const feed = button('Feed', () => {
      if (food.value === '') return showError('no pet food in the bag: the shop sells berries, fish and meat');
      act({ type: 'pet.feed', pet: pet.id, slot: Number(food.value) });
    });
    const rename = button('Rename', () => {
      const name = prompt(`A new name for ${pet.name}`, pet.name);
      if (name) act({ type: 'pet.rename', pet: pet.id, name });
    });
    card.append(el('div', 'row', '', [food, feed, rename]));
    return card;
  });
  $('pets').replaceChildren(...(cards.length ? cards : [el('p', 'note', `No pets yet (up to ${p.max}).`)]));
  fillFoodChoices();
}

function fillFoodChoices() {
  const foods = bag.items.filter((it) => catalogue.has(it.item) && catalogue.get(it.item).kind.use === 'food');
  for (const select of document.querySelectorAll('select.food')) {
    select.replaceChildren(...foods.map((it) => {
      const o = el('option', '', `${itemName(it.item)} ×${it.count}`);
      o.value = it.slot;
      return o;
    }));
  }
}

// ---- Guild ----

let guild = null; // {id, name}

function renderGuildEvent(g) {
  const who = (id, name) => (id === me ? 'you' : `${name} (${id})`);
  switch (g.event) {
    case 'created':
      guild = { id: g.guild, name: g.name };
      addLine('guild-log', `You founded ${g.name}.`);
      break;
    case 'joined':
      if (g.player === me && !(guild && guild.id === g.guild)) {
        guild = { id: g.guild, name: null };
        act({ type: 'guild.info' }); // for the guild's name
      }
      addLine('guild-log', `${who(g.player, g.player_name)} joined (${g.members} members).`);
      break;
    case 'left':
      if (g.player === me) guild = null;
      addLine('guild-log', `${who(g.player, g.player_name)} left (${g.members} members).`);
      break;
    case 'leader':
      addLine('guild-log', `${who(g.player, g.player_name)} now leads the guild.`);
      break;
    case 'disbanded':
      guild = null;
      addLine('guild-log', `${g.name} was disbanded.`);
      break;
    case 'chat':
      addLine('guild-log', `${g.from_name}: ${g.text}`, g.from === me ? 'out' : 'in');
      break;
    case 'info':
      if (g.members.some((m) => m.id === me)) guild = { id: g.guild, name: g.name };
      addLine('guild-log', `${g.name}: ${g.members.length} members — ${g.members.map((m) => m.name).join(', ')}`);
      break;
    case 'refused':
      showError(`guild: ${g.reason}`);
      break;
    default:
      addLine('guild-log', JSON.stringify(g));
  }
  $('guild-name').textContent = guild ? guild.name || `#${guild.id}` : 'none';
}

// ---- Battle: drawn from the room's frames, which come on the battle socket once it
// joined and through the session before (a tick already drawn is skipped) ----

let battle = null; // {room, tick, fighters, over}
let battleWs = null;
let acted = false;

function startBattle(room) {
  battle = { room, tick: -1, fighters: [], over: false };
  acted = false;
  $('battle-result').hidden = true;
  $('battle-events').replaceChildren();
  $('fighters').replaceChildren();
  $('battle-status').textContent = `room ${room}: joining…`;
  $('battle-start').disabled = true;
  setBattleButtons(false);
}

function openBattleSocket(url, room, ticket) {
  closeBattleSocket();
  const socket = new WebSocket(url);
  battleWs = socket;
  socket.onopen = () => socket.send(JSON.stringify({ type: 'battle.join', room, ticket }));
  socket.onmessage = (e) => {
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    render(frame);
  };
  socket.onclose = () => {
    if (battleWs === socket) battleWs = null; // the room's frames come through the session
  };
}

function closeBattleSocket() {
  if (battleWs) {
    const socket = battleWs;
    battleWs = null;
    socket.close(1000);
  }
}

const battleHandlers = {
  'battle.joined'(f) {
    $('battle-status').textContent = `room ${f.room}: joined`;
  },
  'battle.start'(f) {
    if (!battle || battle.room !== f.room) startBattle(f.room);
    if (battle.tick >= 0) return;
    battle.tick = 0;
    drawFighters(f.fighters);
    addLine('battle-events', `Battle ${f.room} begins${f.practice ? ' (practice)' : ''}.`);
    setBattleButtons(true);
  },
  'battle.state'(f) {
    // A page opened during a battle picks it up from its next state.
    if (!battle || (battle.room < f.room)) startBattle(f.room);
    if (battle.room !== f.room || battle.over || f.tick <= battle.tick) return;
    battle.tick = f.tick;
    drawFighters(f.fighters);
    for (const ev of f.events) addLine('battle-events', `tick ${f.tick}: ${eventText(ev)}`, ev.kind);
    acted = false;
    setBattleButtons(true);
  },
  'battle.end'(f) {
    if (!battle || battle.room !== f.room || battle.over) return;
    battle.over = true;
    let text;
    if (f.winner === null || f.winners.length === 0) text = 'Draw';
    else if (f.winners.includes(me)) text = 'You won';
    else text = 'You lost';
    const result = $('battle-result');
    result.textContent = `${text} — ${f.reason === 'time' ? 'time ran out' : 'knockout'} at tick ${f.tick}`;
    result.className = 'result ' + (text === 'You won' ? 'good' : 'bad');
    result.hidden = false;
    $('battle-status').textContent = `room ${f.room}: over`;
    $('battle-start').disabled = false;
    setBattleButtons(false);
    closeBattleSocket();
  },
};

const fighterName = (id) => (id === me ? 'You' : id === 0 ? 'Bot' : `Player ${id}`);

function eventText(ev) {
  const actor = fighterName(ev.actor);
  switch (ev.kind) {
    case 'attack':
      return `${actor} hit ${fighterName(ev.target)} for ${ev.damage}${ev.blocked ? ' (blocked)' : ''}`;
    case 'heal': return `${actor} healed ${ev.hp}`;
    case 'defend': return `${actor} defended`;
    case 'down': return `${actor} went down`;
    default: return JSON.stringify(ev);
  }
}

function drawFighters(fighters) {
  battle.fighters = fighters;
  $('fighters').replaceChildren(...fighters.map((f) => {
    const card = el('div', 'fighter' + (f.id === me ? ' mine' : '') + (f.hp === 0 ? ' down' : ''));
    card.dataset.fighter = f.id;
    card.append(el('b', '', fighterName(f.id)), el('span', 'note', ` team ${f.team}`));
    card.append(meter('hp', f.hp, f.max_hp));
    const last = f.last ? `last: ${f.last}` : '';
    const heal = f.heal_in ? `heal in ${f.heal_in}` : '';
    card.append(el('div', 'note', [last, heal].filter(Boolean).join(' · ') || '\u00a0'));
    return card;
  }));
}

function setBattleButtons(on) {
  for (const id of ['act-attack', 'act-defend', 'act-heal']) $(id).disabled = !on || acted;
}

function reenableBattle() {
  if (!battle || battle.over) $('battle-start').disabled = false;
  if (battle && !battle.over && acted) {
    acted = false;
    setBattleButtons(true);
  }
}

// One input per tick: the buttons wait for the next state.
function battleInput(action) {
  if (!battle || battle.over) return;
  const frame = { type: 'battle.input', action };
  if (action === 'attack') {
    const foe = battle.fighters.find((f) => f.hp > 0 && f.team !== (battle.fighters.find((x) => x.id === me) || {}).team);
    if (foe) frame.target = foe.id;
  }
  const text = JSON.stringify(frame);
  if (battleWs && battleWs.readyState === WebSocket.OPEN) battleWs.send(text);
  else if (!send(frame)) return;
  acted = true;
  setBattleButtons(false);
}

// ---- Page helpers ----

function el(tag, className, text, children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  if (children) node.append(...children);
  return node;
}

function button(label, onClick, className) {
  const b = el('button', className, label);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    if (Array.isArray(cell)) td.append(...cell);
    else td.textContent = String(cell);
    tr.append(td);
  }
  return tr;
}

function percent(value, max) {
  return `${max > 0 ? Math.max(0, Math.min(100, (100 * value) / max)) : 0}%`;
}

function meter(label, value, max) {
  const fill = el('div');
  fill.style.width = percent(value, max);
  return el('div', 'meter', '', [el('span', '', label), el('div', 'bar ' + label, '', [fill]), el('span', '', `${value}/${max}`)]);
}

// Newest first, at most 50 lines.
function addLine(listId, text, className) {
  const list = $(listId);
  list.prepend(el('li', className || '', text));
  while (list.children.length > 50) list.lastChild.remove();
}

function log(text) { addLine('log', text); }

let errorTimer = null;
function showError(text) {
  $('error-text').textContent = text;
  $('error').hidden = false;
  addLine('log', 'error: ' + text, 'bad');
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { $('error').hidden = true; }, 10000);
}

function authError(text) { $('auth-error').textContent = text; }

function setStatus(state, text) {
  const status = $('status');
  status.textContent = text;
  status.dataset.state = state;
}

function showGame(on) {
  $('auth-view').hidden = on;
  $('game-view').hidden = !on;
  $('logout').hidden = !on;
  $('logout-everywhere').hidden = !on || !session || !session.token;
  if (!on) $('who').textContent = '';
}
