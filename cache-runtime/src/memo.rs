//! Runtime support of `#[cached]`, `#[multi_cached]` and `#[cached_stampede]`: reached by generated code through
//! `cache_runtime::__private`, never named by users.
//!
//! - [`MemoCell`]: where a decorated function's cache comes from (an alias, followed across `set_config`, or an
//!   instance owned by the function), resolved with one atomic load per call.
//! - [`KeyBuf`]: the default key, `{path}({arg},{arg},..)` with every argument in JSON, built on the caller's
//!   stack (up to 128 bytes; longer keys continue on the heap), so a hit allocates nothing and recursion is safe.
//! - Fail-open lookups and stores: a cache error is logged through `tracing` and treated as a miss.
//! - [`stampede`]: an in-process single flight per key, plus a [`RedLock`] on the cache across processes.
//! - [`KeyCollection`] and [`MemoMap`]: the collections and maps `#[multi_cached]` works with.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::thread::LocalKey;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use once_cell::sync::{Lazy, OnceCell};
use parking_lot::{Condvar, Mutex};

use crate::cache::{Cache, Cacheable};
use crate::caches::{self, AliasCell};
use crate::error::{Error, Result};
use crate::lock::RedLock;
use crate::plugin::Plugin;
use crate::serializer::Serializer;
use crate::ttl::Ttl;

/// Turns an alias's instance into the function's own (namespace, serializer or plugins overridden).
pub type Setup = fn(&Cache) -> Result<Cache>;

struct Derived {
    generation: u64,
    /// The alias instance it was derived from: while the alias keeps it, the derived cache (and the state of
    /// its plugins) is kept too, whatever else changes in the table.
    base: Cache,
    cache: Cache,
}

/// A thread's copy of a function's resolved cache, tagged with the alias-table generation it was resolved in.
///
/// Generated code declares one per function in a `thread_local!`; it lets a hit find the cache without any
/// atomic read-modify-write, so threads calling the same function share no written cache line.
pub struct LocalCache(RefCell<Option<(u64, Cache)>>);

impl LocalCache {
    /// Empty until the thread's first call.
    pub const fn new() -> Self {
        LocalCache(RefCell::new(None))
    }
}

impl Default for LocalCache {
    fn default() -> Self {
        Self::new()
    }
}

/// What every cell of one decorated function shares: the macro emits a cell in the function and one in each
/// companion (a cell is a `static` nested in a function body, so it works in a module and in an `impl` alike),
/// and they must act as one cache: one derived instance (one set of plugins counting every call), one instance
/// built from a URL, one single flight per key.
#[derive(Default)]
struct Site {
    derived: ArcSwapOption<Derived>,
    /// Held while `derived` is rebuilt (on a change of the alias table, never on a hit).
    building: Mutex<()>,
    owned: OnceCell<Cache>,
}

/// Every [`Site`], by the site id the macro generates (unique per macro invocation). Entries are never removed:
/// there is one per decorated function in the program.
static SITES: Lazy<Mutex<HashMap<&'static str, Arc<Site>>>> = Lazy::new(Default::default);

/// The cache of one decorated function, kept in a `static`.
///
/// - An alias without overrides resolves through [`AliasCell`], an alias with overrides through the derived
///   instance of the current table generation; either way each thread keeps its own copy in a [`LocalCache`],
///   so a call costs one thread-local access and one atomic load of the table generation. A later
///   `caches::set_config` changes the generation and is picked up on the next call.
/// - A URL (`cache = "redis://.."`) builds an instance owned by the function on first use; while it does not
///   build, each call logs the error, runs the function uncached, and the next call tries again.
///
/// Cells made with the same `site` share that state through a process-wide registry, looked up once per cell.
pub struct MemoCell {
    site_id: &'static str,
    alias: AliasCell,
    url: Option<&'static str>,
    setup: Option<Setup>,
    local: Option<&'static LocalKey<LocalCache>>,
    site: OnceCell<Arc<Site>>,
    /// This cell's handle on the site's URL-built instance: a call reads one `OnceCell`, not two.
    owned: OnceCell<Cache>,
}

impl MemoCell {
    /// The function's cache is the alias's instance, changed by `setup` when given.
    pub const fn alias(
        site: &'static str,
        alias: &'static str,
        setup: Option<Setup>,
        local: &'static LocalKey<LocalCache>,
    ) -> Self {
        MemoCell {
            site_id: site,
            alias: AliasCell::new(alias),
            url: None,
            setup,
            local: Some(local),
            site: OnceCell::new(),
            owned: OnceCell::new(),
        }
    }

    /// The function owns an instance built from `url`, changed by `setup` when given.
    pub const fn url(site: &'static str, url: &'static str, setup: Option<Setup>) -> Self {
        MemoCell {
            site_id: site,
            alias: AliasCell::new("default"),
            url: Some(url),
            setup,
            local: None,
            site: OnceCell::new(),
            owned: OnceCell::new(),
        }
    }

    /// The state shared with the other cells of the same site.
    fn site(&self) -> &Arc<Site> {
        self.site
            .get_or_init(|| SITES.lock().entry(self.site_id).or_default().clone())
    }

    /// Calls `f` with the function's current cache, or the error resolving it.
    ///
    /// `f` is `FnMut` (it runs once) so it is called in place: moving a closure that was just built into an
    /// `Option` and out again costs a store-forwarding stall on the hot path.
    #[inline]
    pub fn with<R>(&self, f: impl FnMut(Result<&Cache>) -> R) -> R {
        self.with_in(self.local, f)
    }

    /// [`with`](MemoCell::with) through `local`, the cell's own thread-local copy named by the caller: generated
    /// code names its `thread_local!` directly, so the access compiles to a static one.
    #[inline]
    pub fn with_in<R>(
        &self,
        local: Option<&'static LocalKey<LocalCache>>,
        mut f: impl FnMut(Result<&Cache>) -> R,
    ) -> R {
        let Some(local) = local else {
            let url = self.url.unwrap_or("memory://");
            // A failed build is not remembered: a store that was briefly unavailable (a directory not
            // mounted yet, a server not up) is picked up by a later call instead of never.
            let owned = self.owned.get_or_try_init(|| {
                self.site()
                    .owned
                    .get_or_try_init(|| self.build_owned(url))
                    .cloned()
            });
            return match owned {
                Ok(cache) => f(Ok(cache)),
                Err(e) => f(Err(e)),
            };
        };
        let generation = caches::generation();
        let fast = local.try_with(|local| {
            let slot = local.0.try_borrow().ok()?;
            let (resolved_in, cache) = slot.as_ref()?;
            if *resolved_in != generation {
                return None;
            }
            Some(f(Ok(cache)))
        });
        if let Ok(Some(result)) = fast {
            return result;
        }
        self.with_shared(|cache| {
            if let Ok(cache) = &cache {
                let _ = local.try_with(|local| {
                    if let Ok(mut slot) = local.0.try_borrow_mut() {
                        *slot = Some((generation, (*cache).clone()));
                    }
                });
            }
            f(cache)
        })
    }

    fn build_owned(&self, url: &str) -> Result<Cache> {
        let cache = Cache::from_url(url)?;
        match self.setup {
            Some(setup) => setup(&cache),
            None => Ok(cache),
        }
    }

    /// The alias's instance (or the derived one) shared by every thread.
    fn with_shared<R>(&self, f: impl FnOnce(Result<&Cache>) -> R) -> R {
        let Some(setup) = self.setup else {
            return self.alias.with(f);
        };
        let site = self.site();
        let generation = caches::generation();
        {
            let guard = site.derived.load();
            if let Some(derived) = guard.as_ref() {
                if derived.generation == generation {
                    return f(Ok(&derived.cache));
                }
            }
        }
        match self.derive_for(site, setup, generation) {
            Ok(derived) => f(Ok(&derived.cache)),
            Err(e) => f(Err(e)),
        }
    }

    /// The site's derived instance for `generation`, built once: cells resolving together (the function on one
    /// thread, a companion on another) must not each build one, or each thread would keep its own plugins.
    fn derive_for(&self, site: &Site, setup: Setup, generation: u64) -> Result<Arc<Derived>> {
        let _one_builder = site.building.lock();
        let current = site.derived.load_full();
        if let Some(derived) = current.as_ref().filter(|d| d.generation == generation) {
            return Ok(derived.clone());
        }
        let base = caches::get(self.alias.alias())?;
        let kept = current
            .as_ref()
            .filter(|derived| derived.base.same_instance(&base))
            .map(|derived| derived.cache.clone());
        let cache = match kept {
            Some(cache) => cache,
            None => setup(&base)?,
        };
        let derived = Arc::new(Derived {
            generation,
            base,
            cache,
        });
        site.derived.store(Some(derived.clone()));
        Ok(derived)
    }

    /// The function's cache (a clone of the handle).
    pub fn cache(&self) -> Result<Cache> {
        self.with(|cache| cache.cloned())
    }
}

/// The instance a function uses when it overrides the alias's namespace, serializer or plugins.
pub fn derive(
    cache: &Cache,
    namespace: Option<Arc<str>>,
    serializer: Option<Arc<dyn Serializer>>,
    plugins: Option<Vec<Arc<dyn Plugin>>>,
) -> Result<Cache> {
    let cache = match (serializer, plugins) {
        (None, None) => cache.clone(),
        (serializer, plugins) => cache.derive(serializer, plugins)?,
    };
    Ok(match namespace {
        Some(namespace) => cache.with_namespace(namespace),
        None => cache,
    })
}

/// Shares a serializer given to `serializer = ..`.
pub fn serializer(serializer: impl Serializer) -> Arc<dyn Serializer> {
    Arc::new(serializer)
}

/// Shares a plugin given to `plugins = [..]`.
pub fn plugin(plugin: impl Plugin) -> Arc<dyn Plugin> {
    Arc::new(plugin)
}

/// The TTL of `ttl = <float>` or `lease = <float>`.
pub fn secs_f64(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `ttl = <Duration or Ttl expression>`.
pub fn ttl(ttl: impl Into<Ttl>) -> Ttl {
    ttl.into()
}

/// `lease = <Duration expression>`.
pub fn lease(lease: impl Into<Duration>) -> Duration {
    lease.into()
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

/// What can be part of a default key: anything `serde::Serialize`, written as compact JSON exactly as
/// `serde_json::to_string` writes it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the default cache key: it does not implement `serde::Serialize`",
    label = "this argument is part of the default cache key",
    note = "leave the argument out of the key with `skip(..)` (or `noself` for `self`), or give the key yourself \
            with `key = ..` or `key_builder = ..`"
)]
pub trait KeyArg {
    /// Appends the JSON text of `self`; on error `out` is left as it was.
    fn write_key(&self, out: &mut KeyText) -> std::result::Result<(), String>;
}

impl<T: serde::Serialize + ?Sized> KeyArg for T {
    #[inline(always)]
    fn write_key(&self, out: &mut KeyText) -> std::result::Result<(), String> {
        let start = out.len();
        match self.serialize(ScalarJson { out: &mut *out }) {
            Ok(()) => Ok(()),
            Err(NotScalar::Compound) => {
                // Sequences, maps, structs, floats and bytes: serde_json itself.
                out.truncate(start);
                let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
                out.push_str(&json);
                Ok(())
            }
            Err(NotScalar::Custom(message)) => {
                out.truncate(start);
                Err(message)
            }
        }
    }
}

/// One argument of a default key as the macros pass it: `(&KeyPart(&arg)).put(&mut key)`.
///
/// Method resolution picks [`KeyDirect`] for the usual argument types (integers, `bool`, `char`, `String`,
/// `&str`): their JSON is written by code that is always inlined, so building a hit's key makes no call. Any
/// other type, and every type in generic code, goes through [`KeySerde`] to serde. Both write the same bytes.
pub struct KeyPart<'a, T: ?Sized>(pub &'a T);

/// The inlined writers of [`KeyPart`] for common argument types.
pub trait KeyDirect {
    /// Appends the argument to `key`.
    fn put(&self, key: &mut KeyBuf);
}

/// The serde writer of [`KeyPart`], for every other argument type.
pub trait KeySerde<T: ?Sized> {
    /// Appends the argument to `key`.
    fn put(&self, key: &mut KeyBuf)
    where
        T: KeyArg;
}

impl<T: ?Sized> KeySerde<T> for &KeyPart<'_, T> {
    #[inline(always)]
    fn put(&self, key: &mut KeyBuf)
    where
        T: KeyArg,
    {
        key.arg(self.0);
    }
}

macro_rules! key_direct {
    ($($t:ty => |$v:ident, $out:ident| $write:expr;)*) => {
        $(impl KeyDirect for KeyPart<'_, $t> {
            #[inline(always)]
            fn put(&self, key: &mut KeyBuf) {
                key.next_arg();
                let ($v, $out) = (self.0, &mut key.text);
                $write
            }
        })*
    };
}

key_direct! {
    u8 => |v, out| out.push_u64(u64::from(*v));
    u16 => |v, out| out.push_u64(u64::from(*v));
    u32 => |v, out| out.push_u64(u64::from(*v));
    u64 => |v, out| out.push_u64(*v);
    usize => |v, out| out.push_u64(*v as u64);
    i8 => |v, out| out.push_i64(i64::from(*v));
    i16 => |v, out| out.push_i64(i64::from(*v));
    i32 => |v, out| out.push_i64(i64::from(*v));
    i64 => |v, out| out.push_i64(*v);
    isize => |v, out| out.push_i64(*v as i64);
    bool => |v, out| out.push_str(if *v { "true" } else { "false" });
    char => |v, out| push_json_str(out, v.encode_utf8(&mut [0; 4]));
    String => |v, out| push_json_str(out, v);
    &str => |v, out| push_json_str(out, v);
    &String => |v, out| push_json_str(out, v);
}

/// Why [`ScalarJson`] gave up.
#[derive(Debug)]
enum NotScalar {
    /// A value it leaves to serde_json.
    Compound,
    /// The value's `Serialize` failed.
    Custom(String),
}

impl std::fmt::Display for NotScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotScalar::Compound => f.write_str("not a scalar"),
            NotScalar::Custom(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for NotScalar {}

impl serde::ser::Error for NotScalar {
    fn custom<T: Display>(msg: T) -> Self {
        NotScalar::Custom(msg.to_string())
    }
}

/// Writes the JSON of scalars (integers, booleans, strings, chars, unit, options, unit and newtype variants)
/// straight into the key, byte for byte as serde_json does; everything else is [`NotScalar::Compound`].
struct ScalarJson<'a> {
    out: &'a mut KeyText,
}

impl ScalarJson<'_> {
    #[inline(always)]
    fn unsigned(self, v: u64) -> std::result::Result<(), NotScalar> {
        self.out.push_u64(v);
        Ok(())
    }

    #[inline(always)]
    fn signed(self, v: i64) -> std::result::Result<(), NotScalar> {
        self.out.push_i64(v);
        Ok(())
    }

    fn wide(self, v: impl itoa::Integer) -> std::result::Result<(), NotScalar> {
        self.out.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }
}

/// Appends `text` as a JSON string with serde_json's escapes.
#[inline(always)]
fn push_json_str(out: &mut KeyText, text: &str) {
    // The check runs over every byte without branching per byte, so short keys take a few instructions and
    // long ones vectorize.
    let escape = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    out.push_byte(b'"');
    if escape {
        push_escaped(out, text);
    } else {
        out.push_str(text);
    }
    out.push_byte(b'"');
}

#[cold]
fn push_escaped(out: &mut KeyText, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0C => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1F => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push_byte(HEX[usize::from(b >> 4)]);
            out.push_byte(HEX[usize::from(b & 0xF)]);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

impl serde::Serializer for ScalarJson<'_> {
    type Ok = ();
    type Error = NotScalar;
    type SerializeSeq = serde::ser::Impossible<(), NotScalar>;
    type SerializeTuple = serde::ser::Impossible<(), NotScalar>;
    type SerializeTupleStruct = serde::ser::Impossible<(), NotScalar>;
    type SerializeTupleVariant = serde::ser::Impossible<(), NotScalar>;
    type SerializeMap = serde::ser::Impossible<(), NotScalar>;
    type SerializeStruct = serde::ser::Impossible<(), NotScalar>;
    type SerializeStructVariant = serde::ser::Impossible<(), NotScalar>;

    #[inline(always)]
    fn serialize_bool(self, v: bool) -> std::result::Result<(), NotScalar> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> std::result::Result<(), NotScalar> {
        self.signed(i64::from(v))
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> std::result::Result<(), NotScalar> {
        self.signed(i64::from(v))
    }
    #[inline(always)]
    fn serialize_i32(self, v: i32) -> std::result::Result<(), NotScalar> {
        self.signed(i64::from(v))
    }
    #[inline(always)]
    fn serialize_i64(self, v: i64) -> std::result::Result<(), NotScalar> {
        self.signed(v)
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> std::result::Result<(), NotScalar> {
        self.wide(v)
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> std::result::Result<(), NotScalar> {
        self.unsigned(u64::from(v))
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> std::result::Result<(), NotScalar> {
        self.unsigned(u64::from(v))
    }
    #[inline(always)]
    fn serialize_u32(self, v: u32) -> std::result::Result<(), NotScalar> {
        self.unsigned(u64::from(v))
    }
    #[inline(always)]
    fn serialize_u64(self, v: u64) -> std::result::Result<(), NotScalar> {
        self.unsigned(v)
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> std::result::Result<(), NotScalar> {
        self.wide(v)
    }
    fn serialize_f32(self, v: f32) -> std::result::Result<(), NotScalar> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> std::result::Result<(), NotScalar> {
        // serde_json writes NaN and both infinities as `null`, which would give `f(NAN)`, `f(INFINITY)` and
        // `f(None)` one key; bare `NaN`/`inf`/`-inf` are never JSON, so they cannot collide with anything.
        // Finite floats are serde_json's own text.
        let token = if v.is_nan() {
            "NaN"
        } else if v == f64::INFINITY {
            "inf"
        } else if v == f64::NEG_INFINITY {
            "-inf"
        } else {
            return Err(NotScalar::Compound);
        };
        self.out.push_str(token);
        Ok(())
    }
    #[inline(always)]
    fn serialize_char(self, v: char) -> std::result::Result<(), NotScalar> {
        push_json_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    #[inline(always)]
    fn serialize_str(self, v: &str) -> std::result::Result<(), NotScalar> {
        push_json_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> std::result::Result<(), NotScalar> {
        Err(NotScalar::Compound)
    }
    #[inline]
    fn serialize_none(self) -> std::result::Result<(), NotScalar> {
        self.out.push_str("null");
        Ok(())
    }
    #[inline]
    fn serialize_some<T: serde::Serialize + ?Sized>(
        self,
        value: &T,
    ) -> std::result::Result<(), NotScalar> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> std::result::Result<(), NotScalar> {
        self.serialize_none()
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> std::result::Result<(), NotScalar> {
        self.serialize_none()
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> std::result::Result<(), NotScalar> {
        push_json_str(self.out, variant);
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> std::result::Result<(), NotScalar> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> std::result::Result<(), NotScalar> {
        self.out.push_byte(b'{');
        push_json_str(self.out, variant);
        self.out.push_byte(b':');
        value.serialize(ScalarJson {
            out: &mut *self.out,
        })?;
        self.out.push_byte(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> std::result::Result<Self::SerializeSeq, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_tuple(self, _: usize) -> std::result::Result<Self::SerializeTuple, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeTupleStruct, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeTupleVariant, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_map(self, _: Option<usize>) -> std::result::Result<Self::SerializeMap, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeStruct, NotScalar> {
        Err(NotScalar::Compound)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeStructVariant, NotScalar> {
        Err(NotScalar::Compound)
    }
}

/// How many bytes of a key are kept on the stack before it moves to the heap.
const KEY_INLINE: usize = 128;

/// The text of a key: on the stack up to [`KEY_INLINE`] bytes, so building a usual key allocates nothing and
/// touches no thread-local state; longer keys continue on the heap.
///
/// Kept as bytes and written with plain stores (no per-byte UTF-8 encoding, no `memcpy` call for short
/// pieces). Only whole `&str` pieces and ASCII are ever appended, so the bytes are always UTF-8.
pub struct KeyText {
    inline: [u8; KEY_INLINE],
    /// Bytes used in `inline` while the key is there.
    len: usize,
    /// The whole key once it outgrew `inline` (`on_heap`).
    heap: Vec<u8>,
    on_heap: bool,
}

/// Two decimal digits for each of 0..100.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Copies a short piece with at most two overlapping moves of one width; longer ones go to `memcpy`.
#[inline(always)]
fn copy_piece(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n != dst.len() {
        return; // callers pass equal lengths
    }
    if n >= 8 {
        if n > 16 {
            dst.copy_from_slice(src);
            return;
        }
        let (head, tail) = (word::<8>(src, 0), word::<8>(src, n - 8));
        dst[..8].copy_from_slice(&head);
        dst[n - 8..].copy_from_slice(&tail);
    } else if n >= 4 {
        let (head, tail) = (word::<4>(src, 0), word::<4>(src, n - 4));
        dst[..4].copy_from_slice(&head);
        dst[n - 4..].copy_from_slice(&tail);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

#[inline(always)]
fn word<const W: usize>(src: &[u8], at: usize) -> [u8; W] {
    let mut out = [0; W];
    out.copy_from_slice(&src[at..at + W]);
    out
}

impl KeyText {
    #[inline]
    fn new() -> KeyText {
        KeyText {
            inline: [0; KEY_INLINE],
            len: 0,
            heap: Vec::new(),
            on_heap: false,
        }
    }

    /// Appends `text`.
    #[inline(always)]
    pub fn push_str(&mut self, text: &str) {
        self.push_utf8(text.as_bytes());
    }

    /// Appends bytes that are UTF-8 on their own (a whole `&str`, or ASCII).
    #[inline(always)]
    fn push_utf8(&mut self, bytes: &[u8]) {
        if !self.on_heap {
            let end = self.len + bytes.len();
            if let Some(dst) = self.inline.get_mut(self.len..end) {
                copy_piece(dst, bytes);
                self.len = end;
                return;
            }
        }
        self.push_heap(bytes);
    }

    /// Appends one ASCII byte.
    #[inline(always)]
    fn push_byte(&mut self, byte: u8) {
        debug_assert!(byte.is_ascii());
        if !self.on_heap {
            if let Some(slot) = self.inline.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
                return;
            }
        }
        self.push_heap(&[byte]);
    }

    /// Appends `v` in decimal, written straight into place two digits at a time.
    #[inline(always)]
    fn push_u64(&mut self, v: u64) {
        let count = v.checked_ilog10().unwrap_or(0) as usize + 1;
        if !self.on_heap {
            let end = self.len + count;
            if let Some(dst) = self.inline.get_mut(self.len..end) {
                write_digits(dst, v);
                self.len = end;
                return;
            }
        }
        let mut digits = [0; 20];
        write_digits(&mut digits[..count], v);
        self.push_heap(&digits[..count]);
    }

    /// Appends `v` in decimal, `-` first when negative.
    #[inline(always)]
    fn push_i64(&mut self, v: i64) {
        if v < 0 {
            self.push_byte(b'-');
        }
        self.push_u64(v.unsigned_abs());
    }

    #[cold]
    fn push_heap(&mut self, bytes: &[u8]) {
        if !self.on_heap {
            self.heap.reserve(self.len + bytes.len());
            self.heap.extend_from_slice(&self.inline[..self.len]);
            self.on_heap = true;
        }
        self.heap.extend_from_slice(bytes);
    }

    /// The bytes so far.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        if self.on_heap {
            &self.heap
        } else {
            &self.inline[..self.len]
        }
    }

    /// The text so far (checked to be UTF-8, which it always is; see [`KeyText`]).
    pub fn as_str(&self) -> std::result::Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(self.as_bytes())
    }

    /// Its length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether nothing was written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cuts the text back to `len` bytes (a length it had before).
    fn truncate(&mut self, len: usize) {
        if self.on_heap {
            self.heap.truncate(len);
        } else {
            self.len = self.len.min(len);
        }
    }
}

/// Writes the decimal digits of `v` into `dst`, which is exactly as long as the number.
#[inline(always)]
fn write_digits(dst: &mut [u8], mut v: u64) {
    let mut pos = dst.len();
    while v >= 100 && pos >= 2 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        pos -= 2;
        dst[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 && pos >= 2 {
        let pair = v as usize * 2;
        dst[pos - 2..pos].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else if pos >= 1 {
        dst[pos - 1] = b'0' + v as u8;
    }
}

impl std::fmt::Write for KeyText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// A key under construction, on the caller's stack.
///
/// Recursion is safe: every call builds its own.
pub struct KeyBuf {
    text: KeyText,
    args: usize,
    error: Option<Box<str>>,
}

impl KeyBuf {
    /// An empty key.
    #[inline(always)]
    pub fn new() -> KeyBuf {
        KeyBuf {
            text: KeyText::new(),
            args: 0,
            error: None,
        }
    }

    /// Appends text as it is.
    #[inline(always)]
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Starts the argument list.
    #[inline(always)]
    pub fn open(&mut self) {
        self.text.push_byte(b'(');
    }

    /// Ends the argument list.
    #[inline(always)]
    pub fn close(&mut self) {
        self.text.push_byte(b')');
    }

    /// Appends one argument as JSON, comma-separated from the previous one.
    #[inline(always)]
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        self.next_arg();
        if let Err(e) = value.write_key(&mut self.text) {
            self.fail(e);
        }
    }

    /// The comma before every argument but the first.
    #[inline(always)]
    fn next_arg(&mut self) {
        if self.args > 0 {
            self.text.push_byte(b',');
        }
        self.args += 1;
    }

    /// Appends a key given with `key = ..` or made by `key_builder = ..`.
    #[inline]
    pub fn custom<T: Display + ?Sized>(&mut self, key: &T) {
        use std::fmt::Write as _;
        if let Err(e) = write!(self.text, "{key}") {
            self.fail(e.to_string());
        }
    }

    #[cold]
    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message.into());
    }

    /// The key, or why it could not be built.
    #[inline]
    pub fn as_str(&self) -> Result<&str> {
        match &self.error {
            None => self.text.as_str().map_err(|e| key_error(&e.to_string())),
            Some(message) => Err(key_error(message)),
        }
    }

    /// The key's UTF-8 bytes (the hit path hands these to the cache unchecked), or why it could not be built.
    #[inline(always)]
    pub fn as_bytes(&self) -> Result<&[u8]> {
        match &self.error {
            None => Ok(self.text.as_bytes()),
            Some(message) => Err(key_error(message)),
        }
    }

    /// The key as an owned string.
    pub fn into_string(self) -> Result<String> {
        self.as_str().map(str::to_owned)
    }
}

impl Default for KeyBuf {
    fn default() -> Self {
        Self::new()
    }
}

#[cold]
fn key_error(message: &str) -> Error {
    Error::serialize("json", format!("cannot build the cache key: {message}"))
}

// ---------------------------------------------------------------------------------------------------------------
// Fail-open lookups and stores

#[cold]
#[inline(never)]
fn log_error(function: &str, action: &str, error: &Error) {
    if matches!(error, Error::Deserialize { .. }) {
        tracing::warn!(
            function,
            action,
            %error,
            "cached value does not decode; treated as a miss and rewritten"
        );
    } else {
        tracing::warn!(function, action, %error, "cache unavailable; the function runs uncached");
    }
}

/// The cached value for `key`, or `None` on a miss or any cache error (logged). `local` is the cell's
/// thread-local copy (see [`MemoCell::with_in`]).
#[inline(always)]
pub fn lookup<T: Cacheable>(
    cell: &MemoCell,
    local: Option<&'static LocalKey<LocalCache>>,
    function: &str,
    key: &KeyBuf,
) -> Option<T> {
    let key = match key.as_bytes() {
        Ok(key) => key,
        Err(e) => {
            log_error(function, "key", &e);
            return None;
        }
    };
    cell.with_in(local, |cache| {
        match cache.and_then(|cache| cache.get_key_bytes::<T>(key)) {
            Ok(found) => found,
            Err(e) => {
                log_error(function, "get", &e);
                None
            }
        }
    })
}

/// Stores `value` under `key`; a cache error is logged and otherwise ignored.
#[inline]
pub fn store<T: Cacheable>(cell: &MemoCell, function: &str, key: &KeyBuf, value: &T, ttl: Ttl) {
    let Ok(key) = key.as_str() else {
        return; // already logged by the lookup
    };
    cell.with(|cache| {
        if let Err(e) = cache.and_then(|cache| cache.set(key, value, ttl)) {
            log_error(function, "set", &e);
        }
    });
}

/// The stored part of a `Result` return: only `Ok` values are cached.
pub trait ResultParts {
    /// The `Ok` type.
    type Ok;
    /// The `Ok` value, if any.
    fn ok_part(&self) -> Option<&Self::Ok>;
}

impl<T, E> ResultParts for std::result::Result<T, E> {
    type Ok = T;
    #[inline]
    fn ok_part(&self) -> Option<&T> {
        self.as_ref().ok()
    }
}

/// The path a key starts with, without the function's name: `site` (the `type_name` of a struct declared in
/// the generated function) without `suffix` (`::{generated function}::__CacheSite`). That is `crate::module`
/// for a free function and `crate::module::Type` in an `impl`. Should `type_name` ever print it otherwise,
/// `module` (`module_path!()`) stands in. Inlined, the strings are constants and the check folds away.
#[inline(always)]
pub fn site_path(site: &'static str, suffix: &str, module: &'static str) -> &'static str {
    site.strip_suffix(suffix).unwrap_or(module)
}

// Companion API: errors are returned, not swallowed.

/// The key as a string (the `*_cache_key` companion).
pub fn key_string(key: KeyBuf) -> Result<String> {
    key.into_string()
}

/// Reads without running the function (the `*_cache_get` companion).
pub fn get<T: Cacheable>(cell: &MemoCell, key: &KeyBuf) -> Result<Option<T>> {
    let key = key.as_str()?;
    cell.with(|cache| cache?.get::<T>(key))
}

/// Writes a value for the arguments (the `*_cache_set` companion).
pub fn set<T: Cacheable>(cell: &MemoCell, key: &KeyBuf, value: &T, ttl: Ttl) -> Result<()> {
    let key = key.as_str()?;
    cell.with(|cache| cache?.set(key, value, ttl))
}

/// Deletes the entry of the arguments (the `*_cache_invalidate` companion); true if there was one.
pub fn invalidate(cell: &MemoCell, key: &KeyBuf) -> Result<bool> {
    let key = key.as_str()?;
    cell.with(|cache| cache?.delete(key).map(|n| n > 0))
}

// ---------------------------------------------------------------------------------------------------------------
// Stampede protection

/// How a [`stampede`] call got its value.
pub enum Flight<R, T> {
    /// This call ran the function.
    Ran(R),
    /// Another call (in this process or another) computed the value.
    Joined(T),
}

struct Slot {
    done: Mutex<Option<Option<Arc<dyn std::any::Any + Send + Sync>>>>,
    ready: Condvar,
    /// The thread running the body: a call from inside it for the same key must not wait for itself.
    leader: std::thread::ThreadId,
}

type FlightKey = (usize, Box<str>);

static FLIGHTS: Lazy<Mutex<HashMap<FlightKey, Arc<Slot>>>> = Lazy::new(Default::default);

/// Completes a flight when dropped, also when the function panics, so waiters never hang.
struct Leader {
    key: FlightKey,
    slot: Arc<Slot>,
    value: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        FLIGHTS.lock().remove(&self.key);
        *self.slot.done.lock() = Some(self.value.take());
        self.slot.ready.notify_all();
    }
}

/// Runs `run` once for concurrent misses of `key`: callers in this process wait for the one that runs it, and
/// across processes the runner holds a [`RedLock`] on the key (held at most `lease`) while others wait for it
/// and re-read the cache. No lock is held while `run` runs except that distributed lease.
///
/// `stored` picks the value to cache from the result (`None`: an error or `skip_cache_func` said no); waiters
/// of a run that stored nothing try again themselves.
pub fn stampede<T: Cacheable, R>(
    cell: &MemoCell,
    function: &str,
    key: &KeyBuf,
    lease: Duration,
    ttl: Ttl,
    run: impl FnOnce() -> R,
    stored: impl FnOnce(&R) -> Option<&T>,
) -> Flight<R, T> {
    let Ok(text) = key.as_str() else {
        return Flight::Ran(run());
    };
    // By site, not by cell: the function and its `refresh` companion have cells of their own.
    let flight_key: FlightKey = (Arc::as_ptr(cell.site()) as usize, text.into());
    // Either join the flight already under way for this key, or register this call as its leader.
    enum Role {
        Join(Arc<Slot>),
        Lead(Arc<Slot>),
    }
    let role = {
        let mut flights = FLIGHTS.lock();
        match flights.get(&flight_key) {
            // The body re-entered the function with its own key (recursion through `skip`, a fixed `key`,
            // a normalising `key_builder`): waiting would deadlock, so this inner call runs uncached.
            Some(slot) if slot.leader == std::thread::current().id() => {
                drop(flights);
                return Flight::Ran(run());
            }
            Some(slot) => Role::Join(slot.clone()),
            None => {
                let slot = Arc::new(Slot {
                    done: Mutex::new(None),
                    ready: Condvar::new(),
                    leader: std::thread::current().id(),
                });
                flights.insert(flight_key.clone(), slot.clone());
                Role::Lead(slot)
            }
        }
    };
    let slot = match role {
        Role::Lead(slot) => slot,
        Role::Join(slot) => {
            // Wait at most the lease, as other processes do for the RedLock; a leader stuck longer than that
            // must not hang every caller of the key, so they then run the body themselves.
            let deadline = std::time::Instant::now() + lease;
            let mut done = slot.done.lock();
            while done.is_none() {
                if slot.ready.wait_until(&mut done, deadline).timed_out() && done.is_none() {
                    drop(done);
                    return Flight::Ran(run());
                }
            }
            if let Some(Some(value)) = done.as_ref() {
                if let Some(value) = value.downcast_ref::<T>() {
                    return Flight::Joined(value.clone());
                }
            }
            // The leader stored nothing (error, panic or skip): the value may still have been cached meanwhile.
            drop(done);
            if let Some(value) = lookup::<T>(cell, cell.local, function, key) {
                return Flight::Joined(value);
            }
            // Otherwise run the body here, alongside the other waiters, rather than queueing behind a new leader
            // one at a time (a function that keeps failing would make the last caller wait for all the others).
            let result = run();
            if let Some(value) = stored(&result) {
                store(cell, function, key, value, ttl);
            }
            return Flight::Ran(result);
        }
    };
    let mut leader = Leader {
        key: flight_key,
        slot,
        value: None,
    };
    // Another leader may have finished between our miss and our registration.
    if let Some(value) = lookup::<T>(cell, cell.local, function, key) {
        leader.value = Some(Arc::new(value.clone()));
        return Flight::Joined(value);
    }
    let lock = cell.with(|cache| cache.and_then(|cache| RedLock::new(cache, text, lease)));
    let lock = match lock {
        Ok(lock) => Some(lock),
        Err(e) => {
            log_error(function, "lock", &e);
            None
        }
    };
    let guard = match &lock {
        Some(lock) => match lock.acquire(lease) {
            Ok(Some(guard)) => Some(guard),
            Ok(None) => {
                // Another process held the lock for the whole lease: take its value if it stored one.
                if let Some(value) = lookup::<T>(cell, cell.local, function, key) {
                    leader.value = Some(Arc::new(value.clone()));
                    return Flight::Joined(value);
                }
                None
            }
            Err(e) => {
                log_error(function, "lock", &e);
                None
            }
        },
        None => None,
    };
    if guard.is_some() {
        // Another process may have stored the value while we waited for its lock.
        if let Some(value) = lookup::<T>(cell, cell.local, function, key) {
            leader.value = Some(Arc::new(value.clone()));
            return Flight::Joined(value);
        }
    }
    let result = run();
    if let Some(value) = stored(&result) {
        store(cell, function, key, value, ttl);
        leader.value = Some(Arc::new(value.clone()));
    }
    drop(guard);
    drop(leader);
    Flight::Ran(result)
}

// ---------------------------------------------------------------------------------------------------------------
// multi_cached

/// A collection of keys `#[multi_cached(keys_from_attr = ..)]` can take: `Vec`, `HashSet`, `BTreeSet`, slices.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a collection of keys `multi_cached` can split",
    note = "use a `Vec<K>`, `HashSet<K>`, `BTreeSet<K>` or `&[K]`"
)]
pub trait KeyCollection {
    /// The key type.
    type Elem: Clone;
    /// The owned collection a subset is built into (`Vec<K>` for a slice).
    type Owned: FromIterator<Self::Elem>;
    /// The elements in iteration order.
    fn memo_elems(&self) -> Vec<&Self::Elem>;
}

impl<K: Clone> KeyCollection for [K] {
    type Elem = K;
    type Owned = Vec<K>;
    fn memo_elems(&self) -> Vec<&K> {
        self.iter().collect()
    }
}

impl<K: Clone> KeyCollection for Vec<K> {
    type Elem = K;
    type Owned = Vec<K>;
    fn memo_elems(&self) -> Vec<&K> {
        self.iter().collect()
    }
}

impl<K: Clone + Eq + Hash, S: BuildHasher + Default> KeyCollection for HashSet<K, S> {
    type Elem = K;
    type Owned = HashSet<K, S>;
    fn memo_elems(&self) -> Vec<&K> {
        self.iter().collect()
    }
}

impl<K: Clone + Ord> KeyCollection for BTreeSet<K> {
    type Elem = K;
    type Owned = BTreeSet<K>;
    fn memo_elems(&self) -> Vec<&K> {
        self.iter().collect()
    }
}

/// A map a `#[multi_cached]` function returns: `HashMap` or `BTreeMap` from keys to values.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a map `multi_cached` can merge",
    note = "return a `HashMap<K, V>` or `BTreeMap<K, V>`"
)]
pub trait MemoMap:
    Default + IntoIterator<Item = (<Self as MemoMap>::Key, <Self as MemoMap>::Value)>
{
    /// The key type.
    type Key;
    /// The value type (what is cached per key).
    type Value;
    /// The value of `key`, if present.
    fn memo_get(&self, key: &Self::Key) -> Option<&Self::Value>;
    /// Inserts a value.
    fn memo_insert(&mut self, key: Self::Key, value: Self::Value);
}

impl<K: Eq + Hash, V, S: BuildHasher + Default> MemoMap for HashMap<K, V, S> {
    type Key = K;
    type Value = V;
    fn memo_get(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn memo_insert(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
}

impl<K: Ord, V> MemoMap for BTreeMap<K, V> {
    type Key = K;
    type Value = V;
    fn memo_get(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn memo_insert(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
}

/// One `multi_get` of every key; a cache error (logged) or a key that did not build counts as a miss.
pub fn multi_lookup<V: Cacheable>(
    cell: &MemoCell,
    function: &str,
    keys: &[KeyBuf],
) -> Vec<Option<V>> {
    let parsed: Vec<Result<&str>> = keys.iter().map(KeyBuf::as_str).collect();
    if let Some(Err(e)) = parsed.iter().find(|text| text.is_err()) {
        log_error(function, "key", e);
    }
    let texts: Vec<Option<&str>> = parsed.into_iter().map(Result::ok).collect();
    let valid: Vec<&str> = texts.iter().flatten().copied().collect();
    if valid.is_empty() {
        return texts.iter().map(|_| None).collect();
    }
    let found = cell.with(|cache| cache.and_then(|cache| cache.multi_get::<V, _>(&valid)));
    let mut found = match found {
        Ok(found) => found.into_iter(),
        Err(e) => {
            log_error(function, "multi_get", &e);
            return texts.iter().map(|_| None).collect();
        }
    };
    texts
        .iter()
        .map(|text| text.and_then(|_| found.next().flatten()))
        .collect()
}

/// One `multi_set` of the computed values (each cloned once, into the store); a cache error is logged and
/// otherwise ignored.
pub fn multi_store<V: Cacheable>(
    cell: &MemoCell,
    function: &str,
    pairs: &[(&KeyBuf, &V)],
    ttl: Ttl,
) {
    let pairs: Vec<(&str, &V)> = pairs
        .iter()
        .filter_map(|(key, value)| key.as_str().ok().map(|key| (key, *value)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    cell.with(|cache| {
        if let Err(e) = cache.and_then(|cache| cache.multi_set_refs(&pairs, ttl)) {
            log_error(function, "multi_set", &e);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_of_one_site_share_one_state() {
        static FUNCTION: MemoCell = MemoCell::url("memo::tests::f@memo.rs:1:1", "memory://", None);
        static COMPANION: MemoCell = MemoCell::url("memo::tests::f@memo.rs:1:1", "memory://", None);
        static OTHER: MemoCell = MemoCell::url("memo::tests::g@memo.rs:2:1", "memory://", None);
        FUNCTION
            .cache()
            .unwrap()
            .set("k", &1u32, Ttl::Default)
            .unwrap();
        assert_eq!(COMPANION.cache().unwrap().get::<u32>("k").unwrap(), Some(1));
        assert_eq!(OTHER.cache().unwrap().get::<u32>("k").unwrap(), None);
        assert!(Arc::ptr_eq(FUNCTION.site(), COMPANION.site()));
        assert!(!Arc::ptr_eq(FUNCTION.site(), OTHER.site()));
    }

    #[test]
    fn keys_are_json_arguments_in_parentheses() {
        let mut key = KeyBuf::new();
        key.push("app::f");
        key.open();
        key.arg("a,b");
        key.arg(&7u64);
        key.arg(&Some(vec![1, 2]));
        key.close();
        assert_eq!(key.as_str().unwrap(), r#"app::f("a,b",7,[1,2])"#);
    }

    #[test]
    fn non_finite_floats_and_none_have_distinct_keys() {
        let key = |f: &dyn Fn(&mut KeyBuf)| {
            let mut k = KeyBuf::new();
            f(&mut k);
            k.into_string().unwrap()
        };
        let nan = key(&|k| k.arg(&f64::NAN));
        let inf = key(&|k| k.arg(&f64::INFINITY));
        let neg = key(&|k| k.arg(&f64::NEG_INFINITY));
        let none = key(&|k| k.arg(&None::<f64>));
        let some_nan = key(&|k| k.arg(&Some(f32::NAN)));
        assert_eq!(
            (nan.as_str(), inf.as_str(), neg.as_str()),
            ("NaN", "inf", "-inf")
        );
        assert_eq!(none, "null");
        assert_eq!(some_nan, "NaN");
        assert_eq!(
            key(&|k| k.arg(&1.5f64)),
            "1.5",
            "finite floats stay serde_json's text"
        );
    }

    #[test]
    fn long_keys_move_to_the_heap_whole() {
        let long = "x".repeat(3 * KEY_INLINE);
        let mut key = KeyBuf::new();
        key.push("app::f");
        key.open();
        key.arg(&long);
        key.arg(&1u8);
        key.close();
        assert_eq!(key.as_str().unwrap(), format!("app::f(\"{long}\",1)"));
    }

    #[test]
    fn nested_keys_use_their_own_buffer() {
        let mut outer = KeyBuf::new();
        outer.push("outer");
        {
            let mut inner = KeyBuf::new();
            inner.push("inner");
            assert_eq!(inner.as_str().unwrap(), "inner");
        }
        assert_eq!(outer.as_str().unwrap(), "outer");
    }

    #[test]
    fn scalar_keys_are_byte_for_byte_serde_json() {
        #[derive(serde::Serialize)]
        enum Shape {
            Dot,
            Circle(u32),
            Pair(u8, u8),
            Rect { w: u32 },
        }
        #[derive(serde::Serialize)]
        struct Id(u64);
        #[derive(serde::Serialize)]
        struct User {
            name: &'static str,
        }
        fn check<T: serde::Serialize + ?Sized>(value: &T) {
            // Short and long prefixes: the text stays on the stack, or moves to the heap part-way.
            for prefix in ["prefix".to_string(), "p".repeat(KEY_INLINE - 3)] {
                let mut key = KeyText::new();
                key.push_str(&prefix);
                value.write_key(&mut key).unwrap();
                assert_eq!(
                    &key.as_str().unwrap()[prefix.len()..],
                    serde_json::to_string(value).unwrap()
                );
            }
        }
        let all_bytes: String = (0u8..128).map(char::from).collect();
        check(&all_bytes);
        check("plain");
        check("quote\" and \\ backslash, tab\t, é, 日本, emoji 🎉");
        check(&'"');
        check(&'\u{1}');
        check(&u64::MAX);
        check(&i64::MIN);
        check(&u128::MAX);
        check(&i128::MIN);
        check(&-1i8);
        check(&true);
        check(&());
        check(&None::<u8>);
        check(&Some("x"));
        check(&Some(Some(3u8)));
        check(&Shape::Dot);
        check(&Shape::Circle(2));
        check(&Shape::Pair(1, 2));
        check(&Shape::Rect { w: 1 });
        check(&Id(9));
        check(&User { name: "ann" });
        check(&vec![1, 2]);
        check(&(1, "a"));
        check(&1.5f64);
        // Non-finite floats differ from serde_json on purpose: see `non_finite_floats_and_none_have_distinct_keys`.
        check(&std::collections::BTreeMap::from([("k", 1)]));
        check(&Some(vec![Some(1), None]));
    }

    #[test]
    fn direct_key_writers_match_serde_byte_for_byte() {
        fn both<T: serde::Serialize>(value: T)
        where
            for<'a> KeyPart<'a, T>: KeyDirect,
        {
            // Two arguments, so the separator is covered; a long prefix, so the heap spill is too.
            for prefix in ["p".to_string(), "p".repeat(KEY_INLINE - 2)] {
                let mut direct = KeyBuf::new();
                direct.push(&prefix);
                KeyDirect::put(&KeyPart(&value), &mut direct);
                KeyDirect::put(&KeyPart(&value), &mut direct);
                let mut serde = KeyBuf::new();
                serde.push(&prefix);
                serde.arg(&value);
                serde.arg(&value);
                assert_eq!(direct.as_str().unwrap(), serde.as_str().unwrap());
                assert_eq!(
                    &direct.as_str().unwrap()[prefix.len()..],
                    format!(
                        "{},{}",
                        serde_json::to_string(&value).unwrap(),
                        serde_json::to_string(&value).unwrap()
                    )
                );
            }
        }
        for v in [0u64, 1, 9, 10, 99, 100, 12_345, u64::MAX / 7, u64::MAX] {
            both(v);
        }
        for v in [0i64, -1, -10, 99, i64::MIN, i64::MAX] {
            both(v);
        }
        both(u8::MAX);
        both(u16::MAX);
        both(u32::MAX);
        both(usize::MAX);
        both(i8::MIN);
        both(i16::MIN);
        both(i32::MIN);
        both(isize::MIN);
        both(true);
        both(false);
        both('"');
        both('\u{1}');
        both('日');
        both(String::new());
        both("quote\" \\ tab\t é 🎉".to_string());
        both("plain");
        let owned = "by ref".to_string();
        both(&owned);
    }

    #[test]
    fn unserializable_arguments_fail_the_key() {
        let mut key = KeyBuf::new();
        let mut map = HashMap::new();
        map.insert(vec![1u8], 1u8); // JSON object keys must be strings
        key.arg(&map);
        assert!(key.as_str().is_err());
    }
}
