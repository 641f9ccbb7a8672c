//! Plugins: hooks that run before and after every cache command.
//!
//! Hooks run outside every backend lock, so a plugin may itself use caches. A hook that panics is caught and
//! logged; the command and the cache go on as if the plugin had not been there.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;

/// A cache command, as plugins see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Command {
    /// `add`
    Add,
    /// `get`
    Get,
    /// `multi_get`
    MultiGet,
    /// `set`
    Set,
    /// `multi_set`
    MultiSet,
    /// `exists`
    Exists,
    /// `increment`
    Increment,
    /// `delete`
    Delete,
    /// `expire`
    Expire,
    /// `clear`
    Clear,
    /// `keys`
    Keys,
    /// `raw`
    Raw,
    /// `close`
    Close,
}

impl Command {
    /// Every command, in declaration order.
    pub const ALL: [Command; 13] = [
        Command::Add,
        Command::Get,
        Command::MultiGet,
        Command::Set,
        Command::MultiSet,
        Command::Exists,
        Command::Increment,
        Command::Delete,
        Command::Expire,
        Command::Clear,
        Command::Keys,
        Command::Raw,
        Command::Close,
    ];

    /// The command's name as used in stats (`get`, `multi_get`, ...).
    ///
    /// ```
    /// assert_eq!(cache_runtime::Command::MultiGet.name(), "multi_get");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Command::Add => "add",
            Command::Get => "get",
            Command::MultiGet => "multi_get",
            Command::Set => "set",
            Command::MultiSet => "multi_set",
            Command::Exists => "exists",
            Command::Increment => "increment",
            Command::Delete => "delete",
            Command::Expire => "expire",
            Command::Clear => "clear",
            Command::Keys => "keys",
            Command::Raw => "raw",
            Command::Close => "close",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A command about to run (or that just ran).
#[derive(Debug)]
pub struct Call<'a> {
    /// Which command.
    pub command: Command,
    /// The keys as the caller gave them (without namespace); empty for keyless commands.
    pub keys: &'a [&'a str],
    /// The namespace in force.
    pub namespace: Option<&'a str>,
}

/// What a finished command produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// `get`: whether the key was found.
    Get {
        /// Found.
        hit: bool,
    },
    /// `multi_get`: whether each key was found, in input order.
    MultiGet {
        /// One flag per key.
        hits: &'a [bool],
    },
    /// `exists`.
    Exists(bool),
    /// `increment`: the new value.
    Increment(i64),
    /// `delete`: how many were deleted.
    Deleted(u64),
    /// `expire`: whether the key existed.
    Expired(bool),
    /// `clear`: how many were deleted.
    Cleared(u64),
    /// `keys`: how many matched.
    Keys(usize),
    /// A command that returns nothing (`add`, `set`, `multi_set`, `raw`, `close`) succeeded.
    Done,
    /// The command failed.
    Failed(&'a Error),
}

/// The result of a command, seen by post hooks.
#[derive(Debug)]
pub struct Done<'a> {
    /// Wall time the command took, hooks excluded.
    pub elapsed: Duration,
    /// What it produced.
    pub outcome: Outcome<'a>,
}

macro_rules! hooks {
    ($($variant:ident $pre:ident $post:ident $cmd:literal),* $(,)?) => {
        /// Hooks around every command. Every method has a default that does nothing, so implement only what
        /// you need: [`pre`](Plugin::pre)/[`post`](Plugin::post) see every command, `pre_<command>` /
        /// `post_<command>` one command (and by default forward to `pre`/`post`).
        ///
        /// ```
        /// use std::sync::atomic::{AtomicU64, Ordering};
        /// use std::sync::Arc;
        /// use cache_runtime::{Cache, Call, Done, Plugin, Ttl};
        ///
        /// #[derive(Default)]
        /// struct CountWrites(AtomicU64);
        ///
        /// impl Plugin for CountWrites {
        ///     fn post_set(&self, _call: &Call<'_>, _done: &Done<'_>) {
        ///         self.0.fetch_add(1, Ordering::Relaxed);
        ///     }
        /// }
        ///
        /// let counter = Arc::new(CountWrites::default());
        /// let cache = Cache::builder().plugin_shared(counter.clone()).build().unwrap();
        /// cache.set("a", &1, Ttl::Default).unwrap();
        /// cache.set("b", &2, Ttl::Default).unwrap();
        /// assert_eq!(counter.0.load(Ordering::Relaxed), 2);
        /// ```
        pub trait Plugin: std::any::Any + Send + Sync {
            /// Runs before every command whose `pre_<command>` is not overridden.
            fn pre(&self, call: &Call<'_>) {
                let _ = call;
            }
            /// Runs after every command whose `post_<command>` is not overridden.
            fn post(&self, call: &Call<'_>, done: &Done<'_>) {
                let _ = (call, done);
            }
            $(
                #[doc = concat!("Runs before `", $cmd, "`.")]
                fn $pre(&self, call: &Call<'_>) {
                    self.pre(call)
                }
                #[doc = concat!("Runs after `", $cmd, "` with its elapsed time and result.")]
                fn $post(&self, call: &Call<'_>, done: &Done<'_>) {
                    self.post(call, done)
                }
            )*
        }

        fn dispatch_pre(plugin: &dyn Plugin, call: &Call<'_>) {
            match call.command {
                $(Command::$variant => plugin.$pre(call),)*
            }
        }

        fn dispatch_post(plugin: &dyn Plugin, call: &Call<'_>, done: &Done<'_>) {
            match call.command {
                $(Command::$variant => plugin.$post(call, done),)*
            }
        }
    };
}

hooks! {
    Add pre_add post_add "add",
    Get pre_get post_get "get",
    MultiGet pre_multi_get post_multi_get "multi_get",
    Set pre_set post_set "set",
    MultiSet pre_multi_set post_multi_set "multi_set",
    Exists pre_exists post_exists "exists",
    Increment pre_increment post_increment "increment",
    Delete pre_delete post_delete "delete",
    Expire pre_expire post_expire "expire",
    Clear pre_clear post_clear "clear",
    Keys pre_keys post_keys "keys",
    Raw pre_raw post_raw "raw",
    Close pre_close post_close "close",
}

/// Runs the pre hooks of `plugins`, catching panics.
pub(crate) fn run_pre(plugins: &[std::sync::Arc<dyn Plugin>], call: &Call<'_>) {
    for plugin in plugins {
        if catch_unwind(AssertUnwindSafe(|| dispatch_pre(&**plugin, call))).is_err() {
            tracing::error!(
                command = call.command.name(),
                "a cache plugin panicked in its pre hook; ignored"
            );
        }
    }
}

/// Runs the post hooks of `plugins`, catching panics.
pub(crate) fn run_post(plugins: &[std::sync::Arc<dyn Plugin>], call: &Call<'_>, done: &Done<'_>) {
    for plugin in plugins {
        if catch_unwind(AssertUnwindSafe(|| dispatch_post(&**plugin, call, done))).is_err() {
            tracing::error!(
                command = call.command.name(),
                "a cache plugin panicked in its post hook; ignored"
            );
        }
    }
}

/// Counts hits and misses of `get` and `multi_get` (each key of a `multi_get` counts).
///
/// Stats as in aiocache: `hits`, `total`, `hit_ratio`.
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::{Cache, HitMissRatioPlugin, Ttl};
///
/// let ratio = Arc::new(HitMissRatioPlugin::new());
/// let cache = Cache::builder().plugin_shared(ratio.clone()).build().unwrap();
/// cache.set("a", &1, Ttl::Default).unwrap();
/// let _ = cache.get::<i32>("a");
/// let _ = cache.multi_get::<i32, _>(&["a", "missing"]);
/// assert_eq!((ratio.hits(), ratio.total()), (2, 3));
/// assert_eq!(ratio.stats()["hit_ratio"], 2.0 / 3.0);
/// ```
#[derive(Debug, Default)]
pub struct HitMissRatioPlugin {
    hits: AtomicU64,
    total: AtomicU64,
}

impl HitMissRatioPlugin {
    /// Starts at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads that found their key.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// All reads.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// `hits / total`, 0 before any read.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            0.0
        } else {
            self.hits() as f64 / total as f64
        }
    }

    /// `hits`, `total` and `hit_ratio` by name.
    pub fn stats(&self) -> BTreeMap<&'static str, f64> {
        BTreeMap::from([
            ("hits", self.hits() as f64),
            ("total", self.total() as f64),
            ("hit_ratio", self.hit_ratio()),
        ])
    }

    /// Back to zero.
    pub fn reset(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
    }

    fn count(&self, hits: u64, total: u64) {
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.total.fetch_add(total, Ordering::Relaxed);
    }
}

impl Plugin for HitMissRatioPlugin {
    fn post_get(&self, _call: &Call<'_>, done: &Done<'_>) {
        match done.outcome {
            Outcome::Get { hit } => self.count(u64::from(hit), 1),
            _ => self.count(0, 1),
        }
    }

    fn post_multi_get(&self, call: &Call<'_>, done: &Done<'_>) {
        match done.outcome {
            Outcome::MultiGet { hits } => {
                let found = hits.iter().filter(|h| **h).count() as u64;
                self.count(found, hits.len() as u64);
            }
            _ => self.count(0, call.keys.len() as u64),
        }
    }
}

#[derive(Debug)]
struct CommandTiming {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    min_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Default for CommandTiming {
    fn default() -> Self {
        CommandTiming {
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            min_nanos: AtomicU64::new(u64::MAX),
            max_nanos: AtomicU64::new(0),
        }
    }
}

/// Timing of one command, from [`TimingPlugin::timing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How many calls.
    pub count: u64,
    /// Fastest call.
    pub min: Duration,
    /// Slowest call.
    pub max: Duration,
    /// Mean.
    pub avg: Duration,
}

/// Times every command: per command `<cmd>_min`, `<cmd>_max`, `<cmd>_avg` (seconds) and `<cmd>_total`
/// (number of calls, as in aiocache).
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::{Cache, Command, TimingPlugin, Ttl};
///
/// let timing = Arc::new(TimingPlugin::new());
/// let cache = Cache::builder().plugin_shared(timing.clone()).build().unwrap();
/// cache.set("a", &1, Ttl::Default).unwrap();
/// let _ = cache.get::<i32>("a");
/// let stats = timing.stats();
/// assert_eq!(stats["get_total"], 1.0);
/// assert!(stats["get_min"] <= stats["get_avg"] && stats["get_avg"] <= stats["get_max"]);
/// assert_eq!(timing.timing(Command::Set).unwrap().count, 1);
/// ```
#[derive(Debug, Default)]
pub struct TimingPlugin {
    commands: [CommandTiming; Command::ALL.len()],
}

impl TimingPlugin {
    /// Starts empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Timing of one command, `None` before its first call.
    pub fn timing(&self, command: Command) -> Option<Timing> {
        let t = &self.commands[command.index()];
        let count = t.count.load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        Some(Timing {
            count,
            min: Duration::from_nanos(t.min_nanos.load(Ordering::Relaxed)),
            max: Duration::from_nanos(t.max_nanos.load(Ordering::Relaxed)),
            avg: Duration::from_nanos(t.sum_nanos.load(Ordering::Relaxed) / count),
        })
    }

    /// Every stat by name, for commands called at least once.
    pub fn stats(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for command in Command::ALL {
            if let Some(t) = self.timing(command) {
                let name = command.name();
                out.insert(format!("{name}_total"), t.count as f64);
                out.insert(format!("{name}_min"), t.min.as_secs_f64());
                out.insert(format!("{name}_max"), t.max.as_secs_f64());
                out.insert(format!("{name}_avg"), t.avg.as_secs_f64());
            }
        }
        out
    }
}

impl Plugin for TimingPlugin {
    fn post(&self, call: &Call<'_>, done: &Done<'_>) {
        let nanos = u64::try_from(done.elapsed.as_nanos()).unwrap_or(u64::MAX);
        let t = &self.commands[call.command.index()];
        t.count.fetch_add(1, Ordering::Relaxed);
        t.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        t.min_nanos.fetch_min(nanos, Ordering::Relaxed);
        t.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }
}
