//! The attribute arguments: `#[cached(alias = "x", ttl = 60, skip(conn), ...)]`.
//!
//! Parsed by hand, one comma-separated item at a time, so one bad item does not hide the errors of the others.
//! Values stay tokens (`Expr`, `Path`, `LitStr`) with their spans.

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, Ident, LitBool, LitStr, Path, Token};

use crate::valid::Errors;

/// Which macro is expanding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Cached,
    MultiCached,
    Stampede,
}

impl Kind {
    pub fn attr_name(self) -> &'static str {
        match self {
            Kind::Cached => "cached",
            Kind::MultiCached => "multi_cached",
            Kind::Stampede => "cached_stampede",
        }
    }

    /// The argument names this macro takes.
    fn accepted(self) -> &'static [&'static str] {
        match self {
            Kind::Cached => &[
                "alias",
                "cache",
                "ttl",
                "namespace",
                "key",
                "key_builder",
                "skip",
                "noself",
                "serializer",
                "plugins",
                "skip_cache_func",
                "companions",
                "crate",
            ],
            Kind::MultiCached => &[
                "keys_from_attr",
                "alias",
                "cache",
                "ttl",
                "namespace",
                "key_builder",
                "skip",
                "noself",
                "serializer",
                "plugins",
                "skip_cache_func",
                "companions",
                "crate",
            ],
            Kind::Stampede => &[
                "lease",
                "alias",
                "cache",
                "ttl",
                "namespace",
                "key",
                "key_builder",
                "skip",
                "noself",
                "serializer",
                "plugins",
                "skip_cache_func",
                "companions",
                "crate",
            ],
        }
    }
}

/// One argument: the name token (for spans) and its value.
pub struct Arg<T> {
    pub name: Ident,
    pub value: T,
}

/// Every argument given, as tokens.
#[derive(Default)]
pub struct Args {
    pub alias: Option<Arg<LitStr>>,
    pub cache: Option<Arg<LitStr>>,
    pub ttl: Option<Arg<Expr>>,
    pub namespace: Option<Arg<Expr>>,
    pub key: Option<Arg<Expr>>,
    pub key_builder: Option<Arg<Expr>>,
    pub skip: Option<Arg<Vec<Ident>>>,
    pub noself: Option<Ident>,
    pub serializer: Option<Arg<Expr>>,
    pub plugins: Option<Arg<Vec<Expr>>>,
    pub skip_cache_func: Option<Arg<Expr>>,
    pub krate: Option<Arg<Path>>,
    pub keys_from_attr: Option<Arg<LitStr>>,
    pub lease: Option<Arg<Expr>>,
    /// `companions = false`: only the function itself (a trait impl takes no extra items).
    pub companions: Option<Arg<LitBool>>,
}

impl Args {
    /// Parses every item; errors are collected in `errors` and the items that parsed are kept.
    pub fn parse(kind: Kind, tokens: TokenStream, errors: &mut Errors) -> Args {
        let mut args = Args::default();
        for item in split_top_level_commas(tokens) {
            let parsed = (|input: ParseStream<'_>| parse_item(kind, input, &mut args)).parse2(item);
            if let Err(e) = parsed {
                errors.push(e);
            }
        }
        args
    }

    /// True when `companions = false` was given.
    pub fn companions_off(&self) -> bool {
        self.companions.as_ref().is_some_and(|a| !a.value.value)
    }

    /// The path generated code reaches the runtime through.
    pub fn runtime(&self) -> TokenStream {
        match &self.krate {
            Some(arg) => {
                let path = &arg.value;
                quote::quote!(#path)
            }
            None => quote::quote!(::cache_runtime),
        }
    }
}

/// Splits at the commas that start a new argument, dropping empty items (a trailing comma).
///
/// A comma outside groups splits only when an argument follows it: an identifier followed by `=`, `(`, `,` or
/// the end. Commas inside a value that are not in a group stay in it: closure parameters
/// (`key_builder = |a: &u32, b: &u32| ..`) and generic arguments (`serializer = Foo::<A, B>::new()`).
fn split_top_level_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let starts_argument = |at: usize| {
        matches!(tokens.get(at), Some(TokenTree::Ident(_)))
            && match tokens.get(at + 1) {
                None => true,
                Some(TokenTree::Punct(p)) => {
                    (p.as_char() == '=' && p.spacing() == proc_macro2::Spacing::Alone)
                        || p.as_char() == ','
                }
                Some(TokenTree::Group(g)) => g.delimiter() == proc_macro2::Delimiter::Parenthesis,
                Some(_) => false,
            }
    };
    let mut items = vec![TokenStream::new()];
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Punct(p)
                if p.as_char() == ',' && (i + 1 == tokens.len() || starts_argument(i + 1)) =>
            {
                items.push(TokenStream::new());
            }
            _ => items.last_mut().expect("never empty").extend([tt.clone()]),
        }
    }
    items.retain(|item| !item.is_empty());
    items
}

fn parse_item(kind: Kind, input: ParseStream<'_>, args: &mut Args) -> syn::Result<()> {
    let name = Ident::parse_any(input)?;
    let text = name.to_string();
    if !kind.accepted().contains(&text.as_str()) {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "unknown argument `{text}` of `#[{}]`; expected one of: {}",
                kind.attr_name(),
                kind.accepted().join(", ")
            ),
        ));
    }
    match text.as_str() {
        "noself" => {
            if !input.is_empty() {
                return Err(input.error("`noself` takes no value"));
            }
            set_once(&mut args.noself, name.clone(), &name)?;
        }
        "skip" => {
            let content;
            syn::parenthesized!(content in input);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            if !input.is_empty() {
                return Err(input.error("expected `skip(name, ..)`"));
            }
            let value = names.into_iter().collect();
            set_arg(&mut args.skip, &name, value)?;
        }
        _ => {
            input.parse::<Token![=]>()?;
            match text.as_str() {
                "alias" => value(input, &name, &mut args.alias)?,
                "cache" => value(input, &name, &mut args.cache)?,
                "keys_from_attr" => value(input, &name, &mut args.keys_from_attr)?,
                "ttl" => value(input, &name, &mut args.ttl)?,
                "lease" => value(input, &name, &mut args.lease)?,
                "namespace" => value(input, &name, &mut args.namespace)?,
                "key" => value(input, &name, &mut args.key)?,
                "key_builder" => value(input, &name, &mut args.key_builder)?,
                "serializer" => value(input, &name, &mut args.serializer)?,
                "skip_cache_func" => value(input, &name, &mut args.skip_cache_func)?,
                "companions" => {
                    let value = input.parse::<LitBool>().map_err(|e| {
                        syn::Error::new(e.span(), "`companions` takes `true` or `false`")
                    })?;
                    set_arg(&mut args.companions, &name, value)?;
                }
                "crate" => {
                    let path = Path::parse_mod_style(input)?;
                    set_arg(&mut args.krate, &name, path)?;
                }
                "plugins" => {
                    let array: ExprArray = input.parse()?;
                    let value = array.elems.into_iter().collect();
                    set_arg(&mut args.plugins, &name, value)?;
                }
                _ => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("unknown argument `{text}`"),
                    ))
                }
            }
            if !input.is_empty() {
                return Err(input.error("expected `,` after the argument's value"));
            }
        }
    }
    Ok(())
}

fn value<T: syn::parse::Parse>(
    input: ParseStream<'_>,
    name: &Ident,
    slot: &mut Option<Arg<T>>,
) -> syn::Result<()> {
    set_arg(slot, name, input.parse()?)
}

/// Records argument `name` with its value, once.
fn set_arg<T>(slot: &mut Option<Arg<T>>, name: &Ident, value: T) -> syn::Result<()> {
    set_once(
        slot,
        Arg {
            name: name.clone(),
            value,
        },
        name,
    )
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            name.span(),
            format!("duplicate argument `{name}`"),
        ));
    }
    *slot = Some(value);
    Ok(())
}
