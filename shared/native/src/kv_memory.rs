//! The in-process counter store and cache of the embedded default: the same semantics as the
//! Redis store, for a single process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use feen_core::ports::{Adjustment, Admission, Counter, Guard, Kv, KvError};

#[derive(Debug)]
enum Entry {
    Count(i64),
    Text(String),
    List(VecDeque<String>),
}

/// Lists do not expire; their entries carry this far-off deadline.
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Counters and cache entries in a mutex-guarded map. Expired entries are dropped when touched
/// and swept every few thousand writes.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<Map>,
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<String, (Entry, Instant)>,
    writes: u64,
}

impl Map {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self
            .entries
            .get(key)
            .is_some_and(|(_, expires)| *expires <= now)
        {
            self.entries.remove(key);
        }
        self.entries.get_mut(key).map(|(entry, _)| entry)
    }

    fn count(&mut self, key: &str, now: Instant) -> i64 {
        match self.live(key, now) {
            Some(Entry::Count(n)) => *n,
            _ => 0,
        }
    }

    fn bump(&mut self, key: &str, delta: i64, ttl: Duration, now: Instant) -> i64 {
        self.writes += 1;
        if self.writes.is_multiple_of(4096) {
            self.entries.retain(|_, (_, expires)| *expires > now);
        }
        match self.live(key, now) {
            Some(Entry::Count(n)) => {
                *n += delta;
                *n
            }
            _ => {
                self.entries
                    .insert(key.to_owned(), (Entry::Count(delta), now + ttl));
                delta
            }
        }
    }
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Map>, KvError> {
        self.map
            .lock()
            .map_err(|_| KvError("in-process store poisoned".into()))
    }
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl Kv for MemoryKv {
    async fn admit(
        &self,
        guard: Option<Guard<'_>>,
        counters: &[Counter],
    ) -> Result<Admission, KvError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        if let Some(guard) = guard {
            let holds =
                matches!(map.live(guard.key, now), Some(Entry::Text(text)) if text == guard.value);
            if !holds {
                return Ok(Admission::Stale);
            }
        }
        for (index, c) in counters.iter().enumerate() {
            if c.seed > 0 && map.live(&c.key, now).is_none() {
                let seed = i64::try_from(c.seed).unwrap_or(i64::MAX);
                map.bump(&c.key, seed, Duration::from_millis(c.ttl_ms), now);
            }
            let value = unsigned(map.count(&c.key, now));
            if value.saturating_add(c.cost) > c.limit {
                return Ok(Admission::Refused { index, value });
            }
        }
        let values = counters
            .iter()
            .map(|c| {
                let cost = i64::try_from(c.cost).unwrap_or(i64::MAX);
                unsigned(map.bump(&c.key, cost, Duration::from_millis(c.ttl_ms), now))
            })
            .collect();
        Ok(Admission::Admitted { values })
    }

    async fn settle(&self, adjustments: &[Adjustment]) -> Result<(), KvError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        for a in adjustments {
            map.bump(&a.key, a.delta, Duration::from_millis(a.ttl_ms), now);
        }
        Ok(())
    }

    async fn add(&self, key: &str, delta: i64, ttl_ms: u64) -> Result<i64, KvError> {
        let now = Instant::now();
        Ok(self
            .lock()?
            .bump(key, delta, Duration::from_millis(ttl_ms), now))
    }

    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let now = Instant::now();
        Ok(match self.lock()?.live(key, now) {
            Some(Entry::Text(text)) => Some(text.clone()),
            Some(Entry::Count(n)) => Some(n.to_string()),
            // Redis answers WRONGTYPE; a list is never read as a value here.
            Some(Entry::List(_)) | None => None,
        })
    }

    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), KvError> {
        let expires = Instant::now() + Duration::from_millis(ttl_ms);
        self.lock()?
            .entries
            .insert(key.to_owned(), (Entry::Text(value.to_owned()), expires));
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, KvError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        if map.live(key, now).is_some() {
            return Ok(false);
        }
        map.entries.insert(
            key.to_owned(),
            (
                Entry::Text(value.to_owned()),
                now + Duration::from_millis(ttl_ms),
            ),
        );
        Ok(true)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        let mut map = self.lock()?;
        for key in keys {
            map.entries.remove(key);
        }
        Ok(())
    }

    async fn list_push(&self, key: &str, value: &str) -> Result<u64, KvError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        if let Some(Entry::List(list)) = map.live(key, now) {
            list.push_back(value.to_owned());
            return Ok(list.len() as u64);
        }
        let list = VecDeque::from([value.to_owned()]);
        map.entries
            .insert(key.to_owned(), (Entry::List(list), now + NEVER));
        Ok(1)
    }

    async fn list_front(&self, key: &str, n: usize) -> Result<Vec<String>, KvError> {
        let mut map = self.lock()?;
        Ok(match map.live(key, Instant::now()) {
            Some(Entry::List(list)) => list.iter().take(n).cloned().collect(),
            _ => Vec::new(),
        })
    }

    async fn list_drop_front(&self, key: &str, n: usize) -> Result<(), KvError> {
        let mut map = self.lock()?;
        if let Some(Entry::List(list)) = map.live(key, Instant::now()) {
            list.drain(..n.min(list.len()));
            if list.is_empty() {
                map.entries.remove(key);
            }
        }
        Ok(())
    }
}
