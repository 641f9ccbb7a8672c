//! Every rule across arguments and the function, one function per rule. All errors are collected, each spanned
//! at the offending token.

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, UnOp};

use crate::ast::{last_segment_is, Func, Ret};
use crate::attr::{Args, Kind};

/// An accumulator of errors: report them all, not just the first.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, span: proc_macro2::Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// An error spanning every token of `tokens` (a whole type, not just its first token).
    fn over(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Runs every rule.
pub fn check(kind: Kind, args: &Args, func: &Func, errors: &mut Errors) {
    no_async(func, errors);
    no_const(func, errors);
    alias_or_cache(args, errors);
    key_or_key_builder(args, errors);
    skip_names_parameters(args, func, errors);
    noself_needs_self(args, func, errors);
    key_arguments_are_keyable(kind, args, func, errors);
    return_is_storable(func, errors);
    positive_duration(args.ttl.as_ref().map(|a| &a.value), "ttl", errors);
    positive_duration(args.lease.as_ref().map(|a| &a.value), "lease", errors);
    if kind == Kind::MultiCached {
        keys_from_attr_names_a_collection(args, func, errors);
        multi_returns_a_map(func, errors);
    }
}

fn no_async(func: &Func, errors: &mut Errors) {
    if let Some(token) = &func.item.sig.asyncness {
        errors.at(
            token.span,
            "`async fn` is not supported yet by the caching macros; memoize a sync function",
        );
    }
}

fn no_const(func: &Func, errors: &mut Errors) {
    if let Some(token) = &func.item.sig.constness {
        errors.at(
            token.span,
            "a `const fn` cannot be memoized: its calls may run at compile time",
        );
    }
}

fn alias_or_cache(args: &Args, errors: &mut Errors) {
    if let (Some(_), Some(cache)) = (&args.alias, &args.cache) {
        errors.at(
            cache.name.span(),
            "`cache` and `alias` cannot be used together: `cache = \"url\"` gives the function its own instance, \
             `alias = \"name\"` a shared one",
        );
    }
}

fn key_or_key_builder(args: &Args, errors: &mut Errors) {
    if let (Some(_), Some(builder)) = (&args.key, &args.key_builder) {
        errors.at(
            builder.name.span(),
            "`key` and `key_builder` cannot be used together: give a key expression or a function making it",
        );
    }
}

fn skip_names_parameters(args: &Args, func: &Func, errors: &mut Errors) {
    let Some(skip) = &args.skip else { return };
    for name in &skip.value {
        if name == "self" {
            errors.at(name.span(), "use `noself` to leave `self` out of the key");
        } else if func.param(name).is_none() {
            errors.at(
                name.span(),
                format!("`skip({name})` names no parameter of `{}`", func.name()),
            );
        }
    }
}

fn noself_needs_self(args: &Args, func: &Func, errors: &mut Errors) {
    if let Some(noself) = &args.noself {
        if func.receiver().is_none() {
            errors.at(
                noself.span(),
                format!("`noself` on `{}`, which takes no `self`", func.name()),
            );
        }
    }
}

fn is_skipped(args: &Args, name: &syn::Ident) -> bool {
    args.skip
        .as_ref()
        .is_some_and(|s| s.value.iter().any(|n| n == name))
}

/// With the default key every argument left in it is encoded, which `&mut` and `impl Trait` arguments cannot be
/// (or should not be: a `&mut` argument is an output, not an input).
fn key_arguments_are_keyable(kind: Kind, args: &Args, func: &Func, errors: &mut Errors) {
    if args.key.is_some() || args.key_builder.is_some() {
        return;
    }
    if let Some(receiver) = func.receiver() {
        if args.noself.is_none() && receiver.mutability.is_some() && receiver.reference.is_some() {
            errors.over(
                receiver,
                "`&mut self` cannot be part of the cache key; add `noself` or give the key with `key = ..`",
            );
        }
    }
    let keys_param = args.keys_from_attr.as_ref().map(|a| a.value.value());
    for param in &func.params {
        if is_skipped(args, &param.name) {
            continue;
        }
        if kind == Kind::MultiCached
            && keys_param.as_deref() == Some(param.name.to_string().as_str())
        {
            continue;
        }
        let name = &param.name;
        if param.is_mut_ref() {
            errors.over(
                &param.ty,
                format!(
                    "`&mut` argument `{name}` cannot be part of the cache key; add `skip({name})` or give the key \
                     with `key = ..` or `key_builder = ..`"
                ),
            );
        } else if param.is_impl_trait() {
            errors.over(
                &param.ty,
                format!(
                    "`impl Trait` argument `{name}` cannot be part of the cache key; add `skip({name})` or give \
                     the key with `key = ..` or `key_builder = ..`"
                ),
            );
        }
    }
}

fn return_is_storable(func: &Func, errors: &mut Errors) {
    if let (Ret::ImplTrait, syn::ReturnType::Type(_, ty)) = (&func.ret, &func.item.sig.output) {
        errors.over(
            ty,
            "a memoized function cannot return `impl Trait`: the cache must know the concrete type it stores",
        );
    }
}

/// `ttl = 0` or a negative literal is rejected here; a `Duration` expression is checked when the value is
/// stored (a zero TTL is then a logged error).
fn positive_duration(value: Option<&Expr>, name: &str, errors: &mut Errors) {
    let Some(value) = value else { return };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if int.base10_parse::<u64>().is_ok_and(|n| n == 0) {
                errors.at(
                    int.span(),
                    format!(
                        "`{name} = 0` is invalid; leave `{name}` out for values that never expire"
                    ),
                );
            } else if int.base10_parse::<u64>().is_err() {
                errors.at(
                    int.span(),
                    format!("`{name}` must be a number of seconds that fits `u64`"),
                );
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(float),
            ..
        }) if float
            .base10_parse::<f64>()
            .is_ok_and(|f| f <= 0.0 || !f.is_finite()) =>
        {
            errors.at(
                float.span(),
                format!("`{name}` must be a positive number of seconds"),
            );
        }
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => {
            errors.at(
                value.span(),
                format!("`{name}` must be a positive number of seconds"),
            );
        }
        _ => {}
    }
}

const COLLECTIONS: &[&str] = &["Vec", "HashSet", "BTreeSet"];

fn keys_from_attr_names_a_collection(args: &Args, func: &Func, errors: &mut Errors) {
    let Some(arg) = &args.keys_from_attr else {
        errors.at(
            proc_macro2::Span::call_site(),
            "`#[multi_cached]` needs `keys_from_attr = \"param\"`: the parameter holding the keys",
        );
        return;
    };
    let name = arg.value.value();
    let Some(param) = func.params.iter().find(|p| p.name == name) else {
        errors.at(
            arg.value.span(),
            format!(
                "`keys_from_attr = \"{name}\"` names no parameter of `{}`",
                func.name()
            ),
        );
        return;
    };
    if is_skipped(args, &param.name) {
        errors.at(
            arg.value.span(),
            format!("`{name}` holds the keys and cannot be skipped"),
        );
    }
    let (ty, by_ref) = param.deref_type();
    let is_collection = match ty {
        syn::Type::Slice(_) => by_ref,
        syn::Type::Path(path) => COLLECTIONS.iter().any(|c| last_segment_is(&path.path, c)),
        _ => false,
    };
    if !is_collection {
        errors.over(
            &param.ty,
            format!(
                "`{name}` is not a collection of keys: `multi_cached` takes a `Vec<K>`, `HashSet<K>`, \
                 `BTreeSet<K>` or `&[K]` (or a reference to one)"
            ),
        );
    }
}

fn multi_returns_a_map(func: &Func, errors: &mut Errors) {
    let ok = match &func.ret {
        Ret::Value(syn::Type::Path(path)) => {
            last_segment_is(&path.path, "HashMap") || last_segment_is(&path.path, "BTreeMap")
        }
        _ => false,
    };
    if !ok {
        let tokens = match &func.item.sig.output {
            syn::ReturnType::Default => func.name().to_token_stream(),
            syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
        };
        errors.over(
            tokens,
            "a `#[multi_cached]` function must return a `HashMap<K, V>` or `BTreeMap<K, V>` from its keys to values",
        );
    }
}
