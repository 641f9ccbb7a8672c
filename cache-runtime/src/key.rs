//! Stored keys: namespacing, custom key builders and the glob patterns of `keys`.

use std::sync::Arc;

/// Builds the stored key from a key and the namespace in force: replaces the default `{namespace}:{key}`.
///
/// ```
/// use cache_runtime::Cache;
///
/// let cache = Cache::builder()
///     .namespace("app")
///     .key_builder(|key: &str, ns: Option<&str>| format!("{}/{key}", ns.unwrap_or("-")))
///     .build()
///     .unwrap();
/// assert_eq!(cache.build_key("user:1"), "app/user:1");
/// ```
pub type KeyBuilder = Arc<dyn Fn(&str, Option<&str>) -> String + Send + Sync>;

/// A stored key: the caller's key itself, `{namespace}:{key}` built on the stack when short (no allocation on
/// the hit path), or an owned string.
pub(crate) enum FullKey<'k> {
    Borrowed(&'k str),
    Inline(arrayvec::ArrayString<192>),
    Owned(String),
}

impl std::ops::Deref for FullKey<'_> {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        match self {
            FullKey::Borrowed(key) => key,
            FullKey::Inline(key) => key,
            FullKey::Owned(key) => key,
        }
    }
}

/// `{namespace}:{key}`, or the key itself without a namespace.
#[inline]
pub(crate) fn namespaced<'k>(namespace: Option<&str>, key: &'k str) -> FullKey<'k> {
    match namespace {
        None => FullKey::Borrowed(key),
        Some(ns) => {
            let mut inline = arrayvec::ArrayString::<192>::new();
            if inline.try_push_str(ns).is_ok()
                && inline.try_push(':').is_ok()
                && inline.try_push_str(key).is_ok()
            {
                return FullKey::Inline(inline);
            }
            let mut full = String::with_capacity(ns.len() + 1 + key.len());
            full.push_str(ns);
            full.push(':');
            full.push_str(key);
            FullKey::Owned(full)
        }
    }
}

/// Escapes glob metacharacters so `text` matches only itself.
///
/// ```
/// assert_eq!(cache_runtime::escape_glob("a*b[c]"), r"a\*b\[c\]");
/// ```
pub fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Redis-style glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), so `keys` means the same on every backend.
///
/// Written here rather than taken from a crate: path-oriented glob crates treat `/` and `**` specially and
/// lack Redis's `[^...]` and escape rules; this matcher backtracks only to the last `*`, so it is
/// O(pattern x text) with no exponential cases.
///
/// ```
/// use cache_runtime::glob_match;
/// assert!(glob_match("user:*", "user:42"));
/// assert!(glob_match("user:?[0-9]", "user:a7"));
/// assert!(!glob_match("user:[^0-9]", "user:7"));
/// assert!(glob_match(r"a\*", "a*"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_class(p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == b'[' {
                        // An unclosed class is a literal `[`.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                b'\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `p[start] == b'['`; returns (matched, index after `]`), or
/// `None` when the class is not closed.
fn match_class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        match p[i] {
            b']' if !first => return Some((matched != negate, i + 1)),
            b'\\' if i + 1 < p.len() => {
                matched |= p[i + 1] == c;
                i += 2;
            }
            lo if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' => {
                let hi = p[i + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                i += 3;
            }
            other => {
                matched |= other == c;
                i += 1;
            }
        }
        first = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_cases() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbbd"));
        assert!(glob_match("a*b*c", "a-b-b-c"));
        assert!(glob_match("h?llo", "hello"));
        assert!(!glob_match("h?llo", "hllo"));
        assert!(glob_match("h[ae]llo", "hallo"));
        assert!(!glob_match("h[ae]llo", "hillo"));
        assert!(glob_match("h[^e]llo", "hallo"));
        assert!(!glob_match("h[^e]llo", "hello"));
        assert!(glob_match("h[a-c]llo", "hbllo"));
        assert!(glob_match(r"ns\:x", "ns:x"));
        assert!(glob_match(
            &format!("{}:*", escape_glob("we*rd[ns]")),
            "we*rd[ns]:k"
        ));
        assert!(!glob_match(
            &format!("{}:*", escape_glob("we*rd")),
            "weXXrd:k"
        ));
        assert!(glob_match("[", "["));
        assert!(glob_match("[]]", "]"));
    }
}
