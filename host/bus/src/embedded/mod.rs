//! The in-process backend: one mutex over all queues and state, so every commit is
//! trivially atomic. For `warren dev` and unit tests; it keeps nothing across restarts.

use crate::types::{
    Address, BusError, Commit, DeadLetter, Delivery, EntityState, Envelope, Lease, MessageId, ModuleAnnouncement,
    Outbound, Push, PushLog, Receipt,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

mod accounts;
mod books;
mod commit;
use books::{Decided, PushBook, Requests};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, broadcast};

/// One queue: its undelivered messages and the delivered ones awaiting an ack.
#[derive(Default)]
struct Queue {
    /// Not yet delivered, oldest first.
    fresh: VecDeque<(Seq, Envelope)>,
    /// Delivered, not yet acknowledged: message and delivery count.
    pending: BTreeMap<Seq, (Envelope, u32)>,
    /// Wakes a reader waiting on this queue.
    arrived: Arc<Notify>,
    /// Messages set aside after failing, oldest first.
    dead: Vec<DeadLetter>,
}

/// A message id as numbers (`<ms>-<seq>`), so ids order as numbers, not as strings.
type Seq = (u64, u64);

fn id_of(seq: Seq) -> MessageId {
    format!("{}-{}", seq.0, seq.1)
}

/// Parses an id; one that does not parse matches no message.
fn key_of(id: &str) -> Seq {
    id.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))).unwrap_or((u64::MAX, u64::MAX))
}

#[derive(Default)]
struct Center {
    queues: HashMap<Address, Queue>,
    states: HashMap<Address, EntityState>,
    /// Account ids by login.
    accounts: HashMap<String, u64>,
    /// The last account id handed out.
    accounts_made: u64,
    /// Each account's fields.
    account_fields: HashMap<u64, HashMap<String, Vec<u8>>>,
    modules: HashMap<String, Vec<u8>>,
    current: HashMap<String, String>,
    /// Last id handed out, for increasing ids.
    last_id: (u64, u64),
    /// Counter behind message seeds.
    seeds: u64,
    /// Live leases: holder, token, expiry.
    leases: HashMap<Address, (String, u64, std::time::Instant)>,
    /// The last fencing token handed out per owner (tokens only grow).
    fences: HashMap<Address, u64>,
    /// Live members per role, by instance.
    members: HashMap<String, BTreeMap<String, Member>>,
    /// The last id handed out per named counter.
    counters: HashMap<String, u64>,
    /// Registries of live entities: per registry, each entity's value by id.
    registries: HashMap<String, BTreeMap<u64, String>>,
    /// The cluster secret, made by the first caller.
    secret: Option<[u8; crate::CLUSTER_SECRET_LEN]>,
    /// Per lease holder: the queues that got messages since it last looked, and its wake-up.
    bells: HashMap<String, Bell>,
    /// How many groups guilds are split into.
    groups: u32,
    /// Per owner: its push log.
    pushes: HashMap<Address, PushBook>,
    /// Per owner: the requests it remembers.
    requests: HashMap<Address, Requests>,
}

/// A member of a role: until when it is alive, and its latest report.
struct Member {
    /// When its heartbeat expires.
    expiry: std::time::Instant,
    /// Its latest report in this membership (dropped when the membership lapses).
    report: Option<Vec<u8>>,
}

/// A lease holder's doorbell.
#[derive(Default)]
struct Bell {
    rung: BTreeSet<Address>,
    wake: Arc<Notify>,
}

/// A bus operation that a test can make fail ([`EmbeddedBus::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`crate::Bus::send`].
    Send,
    /// [`crate::Bus::read`].
    Read,
    /// [`crate::Bus::read_pending`].
    ReadPending,
    /// [`crate::Bus::load_state`].
    LoadState,
    /// [`crate::Bus::commit`].
    Commit,
    /// [`crate::Bus::dead_letter`].
    DeadLetter,
}

/// The in-process message center.
pub struct EmbeddedBus {
    center: Mutex<Center>,
    /// Failures a test asked for: how many of the next calls of each operation fail.
    faults: Mutex<HashMap<Op, u32>>,
    announcements: broadcast::Sender<ModuleAnnouncement>,
    pub(crate) groups: u32,
}

impl EmbeddedBus {
    pub(crate) fn new(groups: u32) -> EmbeddedBus {
        let groups = groups.max(1);
        let center = Center { groups, ..Center::default() };
        EmbeddedBus {
            center: Mutex::new(center),
            faults: Mutex::default(),
            announcements: broadcast::channel(64).0,
            groups,
        }
    }

    /// Makes the next `times` calls of `op` fail with [`BusError::Unavailable`] and do
    /// nothing, as a Redis that went away would: for tests of the code above the bus.
    pub fn fail_next(&self, op: Op, times: u32) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).insert(op, times);
    }

    /// Fails if a test asked this call of `op` to fail.
    pub(crate) fn check(&self, op: Op) -> Result<(), BusError> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match faults.get_mut(&op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(BusError::Unavailable(format!("injected fault in {op:?}")))
            }
            _ => Ok(()),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Center {
    fn enqueue(&mut self, msg: Outbound) -> MessageId {
        let now = now_ms();
        let seq = self.next_seq();
        self.seeds += 1;
        // A seed that differs per message, mixed so that consecutive seeds look unrelated.
        let seed = self.seeds.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ now;
        let address = crate::queue_of(&msg.to, self.groups);
        let envelope = Envelope {
            to: msg.to,
            sender: msg.sender,
            kind: msg.kind,
            body: msg.body,
            now_ms: now,
            seed,
            hops: msg.hops,
        };
        self.append(address, seq, envelope);
        id_of(seq)
    }

    /// Refuses a commit fenced by `token` unless it is the live lease's on `owner`.
    fn fenced(&self, owner: &Address, token: u64) -> Result<(), BusError> {
        let current = self.leases.get(owner).filter(|l| l.2 > std::time::Instant::now()).map(|l| l.1);
        if current != Some(token) {
            return Err(BusError::StaleOwner { owner: owner.tag(), token });
        }
        Ok(())
    }

    fn append(&mut self, address: Address, seq: Seq, envelope: Envelope) {
        let holder = self.leases.get(&address).filter(|l| l.2 > std::time::Instant::now()).map(|l| l.0.clone());
        if let Some(holder) = holder {
            let bell = self.bells.entry(holder).or_default();
            bell.rung.insert(address.clone());
            bell.wake.notify_one();
        }
        let queue = self.queues.entry(address).or_default();
        queue.fresh.push_back((seq, envelope));
        queue.arrived.notify_one();
    }

    fn next_seq(&mut self) -> Seq {
        let now = now_ms();
        self.last_id = if now > self.last_id.0 { (now, 0) } else { (self.last_id.0, self.last_id.1 + 1) };
        self.last_id
    }
}

impl EmbeddedBus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Center> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.center.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn send(&self, msg: Outbound) -> Result<MessageId, BusError> {
        Ok(self.lock().enqueue(msg))
    }

    pub(crate) fn backlogs(&self, destinations: &[Address]) -> Vec<u64> {
        let center = self.lock();
        destinations
            .iter()
            .map(|to| {
                let queue = crate::queue_of(to, center.groups);
                center.queues.get(&queue).map_or(0, |q| (q.fresh.len() + q.pending.len()) as u64)
            })
            .collect()
    }

    pub(crate) async fn read(&self, queue: &Address, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = {
                let mut center = self.lock();
                let q = center.queues.entry(queue.clone()).or_default();
                let n = max.min(q.fresh.len());
                if n > 0 {
                    let taken: Vec<_> = q.fresh.drain(..n).collect();
                    let out = taken
                        .into_iter()
                        .map(|(seq, envelope)| {
                            q.pending.insert(seq, (envelope.clone(), 1));
                            Delivery { id: id_of(seq), envelope, attempts: 1 }
                        })
                        .collect();
                    return Ok(out);
                }
                q.arrived.clone()
            };
            // `notify_one` stores a permit if nobody waits yet, so an arrival between the
            // unlock above and this wait is not missed.
            if tokio::time::timeout_at(deadline, arrived.notified()).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    pub(crate) fn read_pending(&self, queue: &Address) -> Vec<Delivery> {
        let mut center = self.lock();
        let Some(q) = center.queues.get_mut(queue) else { return Vec::new() };
        q.pending
            .iter_mut()
            .map(|(seq, (envelope, attempts))| {
                *attempts += 1;
                Delivery { id: id_of(*seq), envelope: envelope.clone(), attempts: *attempts }
            })
            .collect()
    }

    pub(crate) fn commit(&self, commit: Commit) -> Result<Receipt, BusError> {
        self.lock().commit(commit)
    }

    /// Commits in order, one step each under one lock, until one is refused.
    pub(crate) fn commit_all(&self, commits: Vec<Commit>) -> Vec<Result<Receipt, BusError>> {
        let mut center = self.lock();
        let mut results = Vec::with_capacity(commits.len());
        for commit in commits {
            let result = center.commit(commit);
            let refused = result.is_err();
            results.push(result);
            if refused {
                break;
            }
        }
        results
    }

    pub(crate) fn take_pushes(&self, owner: &Address, fence: u64, ids: &[MessageId]) -> Result<Vec<Push>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut center = self.lock();
        center.fenced(owner, fence)?;
        let mut frames = Vec::with_capacity(ids.len());
        if let Some(q) = center.queues.get_mut(owner) {
            for id in ids {
                if let Some((envelope, _)) = q.pending.remove(&key_of(id)) {
                    frames.push(envelope.body);
                }
            }
        }
        let book = center.pushes.entry(owner.clone()).or_default();
        Ok(frames.into_iter().map(|f| book.append(f)).collect())
    }

    pub(crate) fn pushes(&self, owner: &Address, after: u64) -> PushLog {
        let center = self.lock();
        let Some(book) = center.pushes.get(owner) else { return PushLog::default() };
        let pushes = book.log.iter().filter(|p| p.seq > after).cloned().collect();
        PushLog { pushes, last: book.last, acked: book.acked }
    }

    pub(crate) fn trim_pushes(&self, owner: &Address, upto: u64) {
        let mut center = self.lock();
        let book = center.pushes.entry(owner.clone()).or_default();
        let upto = upto.min(book.last);
        book.acked = book.acked.max(upto);
        while book.log.front().is_some_and(|p| p.seq <= upto) {
            book.log.pop_front();
        }
    }

    pub(crate) fn requests(&self, owner: &Address) -> Vec<String> {
        let center = self.lock();
        let Some(r) = center.requests.get(owner) else { return Vec::new() };
        r.order.iter().filter(|k| matches!(r.by_key.get(*k), Some(Decided::Applied(_)))).cloned().collect()
    }

    pub(crate) fn request_outcome(&self, owner: &Address, key: &str) -> Option<Vec<u8>> {
        match self.lock().requests.get(owner)?.by_key.get(key)? {
            Decided::Applied(outcome) => Some(outcome.clone()),
            Decided::Void(_) => None,
        }
    }

    pub(crate) fn resolve(&self, owner: &Address, key: &str, attempt: u64) -> Option<Vec<u8>> {
        let mut center = self.lock();
        let requests = center.requests.entry(owner.clone()).or_default();
        let mut voided = match requests.by_key.get(key) {
            Some(Decided::Applied(outcome)) => return Some(outcome.clone()),
            Some(Decided::Void(attempts)) => attempts.clone(),
            None => Vec::new(),
        };
        voided.push(attempt);
        requests.record(key, Decided::Void(voided));
        None
    }

    pub(crate) fn take_over_lease(
        &self,
        owner: &Address,
        holder: &str,
        ttl: Duration,
        from: &(String, u64),
    ) -> Option<Lease> {
        let mut center = self.lock();
        let now = std::time::Instant::now();
        let current = center.leases.get(owner).filter(|l| l.2 > now).map(|l| (l.0.clone(), l.1));
        if current.as_ref() != Some(from) {
            return None;
        }
        let fence = center.fences.entry(owner.clone()).or_default();
        *fence += 1;
        let token = *fence;
        center.leases.insert(owner.clone(), (holder.to_owned(), token, now + ttl));
        Some(Lease { owner: owner.clone(), holder: holder.to_owned(), token })
    }

    pub(crate) fn dead_letter(&self, queue: &Address, delivery: &Delivery, error: &str) -> Result<(), BusError> {
        let mut center = self.lock();
        let q = center.queues.entry(queue.clone()).or_default();
        let Some((envelope, _)) = q.pending.remove(&key_of(&delivery.id)) else {
            return Err(BusError::NotPending { queue: queue.tag(), id: delivery.id.clone() });
        };
        let id = delivery.id.clone();
        q.dead.push(DeadLetter { queue: queue.clone(), id, envelope, error: error.to_owned() });
        if q.dead.len() > crate::MAX_DEAD_LETTERS {
            q.dead.remove(0);
        }
        Ok(())
    }

    pub(crate) fn dead_letters(&self, queue: &Address) -> Vec<DeadLetter> {
        self.lock().queues.get(queue).map(|q| q.dead.clone()).unwrap_or_default()
    }

    pub(crate) async fn doorbell(&self, holder: &str, wait: Duration) -> Vec<Address> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let wake = {
                let mut center = self.lock();
                let bell = center.bells.entry(holder.to_owned()).or_default();
                if !bell.rung.is_empty() {
                    return std::mem::take(&mut bell.rung).into_iter().collect();
                }
                bell.wake.clone()
            };
            if tokio::time::timeout_at(deadline, wake.notified()).await.is_err() {
                return Vec::new();
            }
        }
    }

    pub(crate) fn lease_holder(&self, owner: &Address) -> Option<(String, u64)> {
        let center = self.lock();
        center.leases.get(owner).filter(|l| l.2 > std::time::Instant::now()).map(|l| (l.0.clone(), l.1))
    }

    pub(crate) fn dead_letter_queues(&self) -> Vec<Address> {
        let center = self.lock();
        let mut queues: Vec<Address> =
            center.queues.iter().filter(|(_, q)| !q.dead.is_empty()).map(|(a, _)| a.clone()).collect();
        queues.sort();
        queues
    }

    pub(crate) fn replay_dead_letter(&self, queue: &Address, id: &str) -> Option<MessageId> {
        let mut center = self.lock();
        let q = center.queues.get_mut(queue)?;
        let at = q.dead.iter().position(|d| d.id == id)?;
        let letter = q.dead.remove(at);
        let seq = center.next_seq();
        center.append(queue.clone(), seq, letter.envelope);
        Some(id_of(seq))
    }

    pub(crate) fn acquire_lease(&self, owner: &Address, holder: &str, ttl: Duration) -> Option<Lease> {
        let mut center = self.lock();
        let now = std::time::Instant::now();
        let token = match center.leases.get(owner) {
            Some((h, token, expiry)) if *expiry > now => {
                if h != holder {
                    return None;
                }
                *token
            }
            _ => {
                let fence = center.fences.entry(owner.clone()).or_default();
                *fence += 1;
                *fence
            }
        };
        center.leases.insert(owner.clone(), (holder.to_owned(), token, now + ttl));
        Some(Lease { owner: owner.clone(), holder: holder.to_owned(), token })
    }

    pub(crate) fn renew_lease(&self, lease: &Lease, ttl: Duration) -> bool {
        let mut center = self.lock();
        let now = std::time::Instant::now();
        match center.leases.get_mut(&lease.owner) {
            Some((h, token, expiry)) if *h == lease.holder && *token == lease.token && *expiry > now => {
                *expiry = now + ttl;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn release_lease(&self, lease: &Lease) {
        let mut center = self.lock();
        if center.leases.get(&lease.owner).is_some_and(|(h, t, _)| *h == lease.holder && *t == lease.token) {
            center.leases.remove(&lease.owner);
        }
    }

    /// Keeps `instance` alive for `ttl` more and, with `report`, replaces its report. A
    /// membership that had lapsed starts again without the report it had.
    pub(crate) fn heartbeat(&self, role: &str, instance: &str, ttl: Duration, report: Option<&[u8]>) {
        let now = std::time::Instant::now();
        let mut center = self.lock();
        let members = center.members.entry(role.to_owned()).or_default();
        let member = members.entry(instance.to_owned()).or_insert(Member { expiry: now, report: None });
        if member.expiry <= now {
            member.report = None;
        }
        member.expiry = now + ttl;
        if let Some(report) = report {
            member.report = Some(report.to_vec());
        }
    }

    pub(crate) fn leave(&self, role: &str, instance: &str) {
        if let Some(m) = self.lock().members.get_mut(role) {
            m.remove(instance);
        }
    }

    pub(crate) fn members(&self, role: &str) -> Vec<String> {
        let now = std::time::Instant::now();
        let mut center = self.lock();
        let Some(m) = center.members.get_mut(role) else { return Vec::new() };
        m.retain(|_, member| member.expiry > now);
        m.keys().cloned().collect()
    }

    pub(crate) fn reports(&self, role: &str) -> Vec<(String, Vec<u8>)> {
        let now = std::time::Instant::now();
        let mut center = self.lock();
        let Some(m) = center.members.get_mut(role) else { return Vec::new() };
        m.retain(|_, member| member.expiry > now);
        m.iter().filter_map(|(instance, member)| Some((instance.clone(), member.report.clone()?))).collect()
    }

    pub(crate) fn ring(&self, holder: &str, queue: &Address) {
        let mut center = self.lock();
        let bell = center.bells.entry(holder.to_owned()).or_default();
        bell.rung.insert(queue.clone());
        bell.wake.notify_one();
    }

    pub(crate) fn next_id(&self, counter: &str) -> u64 {
        let mut center = self.lock();
        let last = center.counters.entry(counter.to_owned()).or_default();
        *last += 1;
        *last
    }

    pub(crate) fn register(&self, registry: &str, id: u64, value: &str) {
        self.lock().registries.entry(registry.to_owned()).or_default().insert(id, value.to_owned());
    }

    pub(crate) fn unregister(&self, registry: &str, id: u64) {
        if let Some(r) = self.lock().registries.get_mut(registry) {
            r.remove(&id);
        }
    }

    pub(crate) fn registered(&self, registry: &str) -> Vec<(u64, String)> {
        let center = self.lock();
        let Some(r) = center.registries.get(registry) else { return Vec::new() };
        r.iter().map(|(id, value)| (*id, value.clone())).collect()
    }

    pub(crate) fn cluster_secret(&self) -> Result<Vec<u8>, BusError> {
        let mut center = self.lock();
        if let Some(secret) = center.secret {
            return Ok(secret.to_vec());
        }
        let mut secret = [0u8; crate::CLUSTER_SECRET_LEN];
        getrandom::fill(&mut secret)
            .map_err(|e| BusError::Unavailable(format!("no randomness for the secret: {e}")))?;
        center.secret = Some(secret);
        Ok(secret.to_vec())
    }

    pub(crate) fn load_state(&self, owner: &Address) -> EntityState {
        self.lock().states.get(owner).cloned().unwrap_or_default()
    }

    pub(crate) fn publish_module(&self, role: &str, bytes: Vec<u8>) -> String {
        let digest = hex::encode(Sha256::digest(&bytes));
        {
            let mut center = self.lock();
            center.modules.insert(digest.clone(), bytes);
            center.current.insert(role.to_owned(), digest.clone());
        }
        // No subscriber is not an error: hosts that start later read the pointer.
        let _ = self.announcements.send(ModuleAnnouncement { role: role.to_owned(), digest: digest.clone() });
        digest
    }

    pub(crate) fn module(&self, digest: &str) -> Result<Vec<u8>, BusError> {
        self.lock().modules.get(digest).cloned().ok_or_else(|| BusError::ModuleNotFound(digest.to_owned()))
    }

    pub(crate) fn current_module(&self, role: &str) -> Option<String> {
        self.lock().current.get(role).cloned()
    }

    pub(crate) fn module_announcements(&self) -> broadcast::Receiver<ModuleAnnouncement> {
        self.announcements.subscribe()
    }
}
