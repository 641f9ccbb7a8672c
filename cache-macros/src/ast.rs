//! A model of the annotated function: receiver, parameters, generics, asyncness and the shape of its return.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Ident, ItemFn, Pat, PatIdent, Receiver, ReturnType, Type};

/// The annotated function.
pub struct Func {
    pub item: ItemFn,
    pub params: Vec<Param>,
    pub ret: Ret,
    /// Known to be inside an `impl` block: it has a receiver or mentions `Self` (the macro cannot see the block
    /// itself). Only the default key and doc links depend on it; the generated items are the same either way.
    pub in_impl: bool,
}

impl Func {
    pub fn from_item(item: ItemFn) -> Func {
        let params = item
            .sig
            .inputs
            .iter()
            .filter_map(|input| match input {
                FnArg::Typed(typed) => Some(typed),
                FnArg::Receiver(_) => None,
            })
            .enumerate()
            .map(|(i, typed)| Param::new(i, &typed.pat, &typed.ty))
            .collect();
        let ret = Ret::of(&item.sig.output);
        let in_impl = item.sig.receiver().is_some()
            || mentions_self(item.sig.to_token_stream())
            || block_mentions_self(&item.block);
        Func {
            item,
            params,
            ret,
            in_impl,
        }
    }

    pub fn name(&self) -> &Ident {
        &self.item.sig.ident
    }

    /// The name without `r#`: how companions are named and how `type_name` prints it.
    pub fn plain_name(&self) -> String {
        self.name().unraw().to_string()
    }

    pub fn receiver(&self) -> Option<&Receiver> {
        self.item.sig.receiver()
    }

    pub fn param(&self, name: &Ident) -> Option<&Param> {
        self.params.iter().find(|p| p.name == *name)
    }

    /// Type and const parameters, in order: what the key names.
    pub fn type_and_const_params(&self) -> Vec<&GenericParam> {
        self.item
            .sig
            .generics
            .params
            .iter()
            .filter(|p| !matches!(p, GenericParam::Lifetime(_)))
            .collect()
    }
}

/// One typed parameter.
pub struct Param {
    /// The name arguments refer to (`skip(name)`, `keys_from_attr = "name"`).
    pub name: Ident,
    /// The name generated code uses: the parameter's own identifier, or `__cache_argN` for a pattern or an
    /// `_unused` name (which lints would flag once generated code passes it on).
    pub binding: Ident,
    /// The pattern as written (restored inside the body, and kept on `_uncached`).
    pub pat: Pat,
    pub ty: Type,
}

impl Param {
    fn new(index: usize, pat: &Pat, ty: &Type) -> Param {
        let generated = || format_ident!("__cache_arg{}", index, span = Span::call_site());
        let (name, binding) = match pat {
            Pat::Ident(PatIdent {
                ident,
                subpat: None,
                by_ref: None,
                ..
            }) if ident.to_string().starts_with('_') => (ident.clone(), generated()),
            Pat::Ident(PatIdent {
                ident,
                subpat: None,
                by_ref: None,
                ..
            }) => (ident.clone(), ident.clone()),
            _ => (generated(), generated()),
        };
        Param {
            name,
            binding,
            pat: pat.clone(),
            ty: ty.clone(),
        }
    }

    pub fn span(&self) -> Span {
        self.pat.span()
    }

    pub fn is_mut_ref(&self) -> bool {
        matches!(&self.ty, Type::Reference(r) if r.mutability.is_some())
    }

    pub fn is_impl_trait(&self) -> bool {
        contains_impl_trait(&self.ty)
    }

    /// The type without one leading `&` (the collection of a `multi_cached` parameter), and whether there was one.
    pub fn deref_type(&self) -> (&Type, bool) {
        match &self.ty {
            Type::Reference(r) => (&r.elem, true),
            other => (other, false),
        }
    }
}

/// What the function returns.
pub enum Ret {
    Unit,
    /// A value cached as it is (`Option<T>` included: `None` is cached).
    Value(Type),
    /// A type whose last path segment is `Result`: only `Ok` values are cached.
    Result(Type),
    /// `impl Trait`: not storable.
    ImplTrait,
}

impl Ret {
    fn of(output: &ReturnType) -> Ret {
        let ty = match output {
            ReturnType::Default => return Ret::Unit,
            ReturnType::Type(_, ty) => &**ty,
        };
        if contains_impl_trait(ty) {
            return Ret::ImplTrait;
        }
        match ty {
            Type::Path(path) if path.qself.is_none() && last_segment_is(&path.path, "Result") => {
                Ret::Result(ty.clone())
            }
            _ => Ret::Value(ty.clone()),
        }
    }

    /// The return type as tokens (`()` for none).
    pub fn ty(&self) -> TokenStream {
        match self {
            Ret::Unit | Ret::ImplTrait => quote::quote!(()),
            Ret::Value(ty) | Ret::Result(ty) => ty.to_token_stream(),
        }
    }
}

pub fn last_segment_is(path: &syn::Path, name: &str) -> bool {
    path.segments.last().is_some_and(|s| s.ident == name)
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Reference(r) => contains_impl_trait(&r.elem),
        Type::Paren(p) => contains_impl_trait(&p.elem),
        Type::Group(g) => contains_impl_trait(&g.elem),
        Type::Slice(s) => contains_impl_trait(&s.elem),
        Type::Array(a) => contains_impl_trait(&a.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.iter().any(|a| match a {
                syn::GenericArgument::Type(t) => contains_impl_trait(t),
                _ => false,
            }),
            _ => false,
        }),
        _ => false,
    }
}

/// Whether the body names `Self`, not counting items nested in it (an `impl` inside a free function names its
/// own `Self`).
fn block_mentions_self(block: &syn::Block) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_item(&mut self, _nested: &'ast syn::Item) {}
        fn visit_ident(&mut self, ident: &'ast Ident) {
            self.0 |= ident == "Self";
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            self.visit_path(&mac.path);
            self.0 |= mentions_self(mac.tokens.clone());
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_block(&mut finder, block);
    finder.0
}

fn mentions_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => mentions_self(group.stream()),
        _ => false,
    })
}
