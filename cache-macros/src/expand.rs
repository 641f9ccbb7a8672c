//! Code generation from the validated model. Infallible: every rule was checked by `valid`.
//!
//! For `fn fib(n: u64) -> u64` this emits, in a module and in an `impl` alike:
//! - `fn fib(n)`: build the key, look it up, on a miss run the user's body (inline, as a typed closure, so
//!   `return` and `?` keep their meaning) and store its result;
//! - the sibling companions `fib_cache_key`, `fib_cache_get`, `fib_cache_set`, `fib_cache_invalidate`,
//!   `fib_cache_refresh`, `fib_cache` and `fib_uncached` (which holds the user's body), unless
//!   `companions = false`.
//!
//! No generated function names another by path: the macro cannot tell a module from an `impl` (an associated
//! function need not mention `Self`), and a trait impl takes no extra items. So each function that needs the cache
//! declares its own `MemoCell` in a `static` nested in its body; the cells of one function share their state
//! through the site id (module, name, file, line, column of the macro invocation).

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, FnArg, Ident, Lit, Pat, PatIdent, Signature, Token};

use crate::ast::{Func, Param, Ret};
use crate::attr::{Args, Kind};
use crate::key::{self, KeyGen};
use crate::valid::{self, Errors};

/// The whole pipeline: parse, model, validate, expand. On any error the function is emitted unchanged with
/// every error next to it.
pub fn run(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse(kind, attr, &mut errors);
    let item_fn: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!(
                    "`#[{}]` applies to a function with a body",
                    kind.attr_name()
                ),
            ));
            let error = errors.finish().err().map(|e| e.to_compile_error());
            return quote!(#item #error);
        }
    };
    let func = Func::from_item(item_fn);
    valid::check(kind, &args, &func, &mut errors);
    match errors.finish() {
        Ok(()) => Gen::new(kind, &args, &func).expand(),
        Err(e) => {
            let item = &func.item;
            let error = e.to_compile_error();
            quote!(#item #error)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Key,
    Get,
    Set,
    Invalidate,
    Refresh,
    Cache,
    Uncached,
}

struct Gen<'a> {
    kind: Kind,
    args: &'a Args,
    func: &'a Func,
    rt: TokenStream,
}

impl<'a> Gen<'a> {
    fn new(kind: Kind, args: &'a Args, func: &'a Func) -> Self {
        Gen {
            kind,
            args,
            func,
            rt: args.runtime(),
        }
    }

    /// The key writer for code in the generated function named `within`.
    fn keys(&self, within: impl ToString) -> KeyGen<'_> {
        KeyGen {
            rt: &self.rt,
            args: self.args,
            func: self.func,
            kind: self.kind,
            within: within.to_string(),
        }
    }

    fn name(&self) -> String {
        self.func.plain_name()
    }

    /// The generated item's name for `op`.
    fn item_name(&self, op: Op) -> Ident {
        let name = self.name();
        let text = match op {
            Op::Key => format!("{name}_cache_key"),
            Op::Get => format!("{name}_cache_get"),
            Op::Set => format!("{name}_cache_set"),
            Op::Invalidate => format!("{name}_cache_invalidate"),
            Op::Refresh => format!("{name}_cache_refresh"),
            Op::Cache => format!("{name}_cache"),
            Op::Uncached => format!("{name}_uncached"),
        };
        Ident::new(&text, Span::call_site())
    }

    fn label(&self) -> TokenStream {
        let name = self.name();
        quote!(::core::concat!(::core::module_path!(), "::", #name))
    }

    /// The site id shared by every cell this invocation emits: unique per macro invocation.
    fn site(&self) -> TokenStream {
        let name = self.name();
        quote! {
            ::core::concat!(
                ::core::module_path!(), "::", #name, "@",
                ::core::file!(), ":", ::core::line!(), ":", ::core::column!()
            )
        }
    }

    fn keys_param(&self) -> Option<&'a Param> {
        let name = self.args.keys_from_attr.as_ref()?.value.value();
        self.func.params.iter().find(|p| p.name == name)
    }

    /// The user's body as a closure of no arguments returning the function's type, to be called once, with
    /// `replace` standing in for the keys parameter of `multi_cached` (a typed `let` shadows it first).
    /// Parameters written as patterns, `mut` or `_name` get their pattern back from the plain binding.
    fn body_closure(&self, replace: Option<TokenStream>) -> TokenStream {
        let keys = self.keys_param();
        let shadow = match (replace, keys) {
            (Some(replacement), Some(keys)) => {
                let binding = &keys.binding;
                let ty = erase_lifetimes(&keys.ty);
                Some(quote!(let #binding: #ty = #replacement;))
            }
            _ => None,
        };
        let patterns = self.func.params.iter().filter_map(|p| {
            let plain = matches!(
                &p.pat,
                Pat::Ident(PatIdent { ident, by_ref: None, mutability: None, subpat: None, .. })
                    if *ident == p.binding
            );
            if plain {
                return None;
            }
            let (pat, binding) = (&p.pat, &p.binding);
            // `_name` is bound for a body that may still read it; clippy flags a binding nothing reads.
            let unread = matches!(pat, Pat::Ident(i) if i.ident.to_string().starts_with('_'))
                .then(|| quote!(#[allow(clippy::no_effect_underscore_binding)]));
            Some(quote!(#unread let #pat = #binding;))
        });
        let output = match self.func.ret {
            Ret::Unit => TokenStream::new(),
            _ => {
                let ret = self.func.ret.ty();
                quote!(-> #ret)
            }
        };
        let block = &self.func.item.block;
        quote! {
            move || #output {
                #shadow
                #(#patterns)*
                #block
            }
        }
    }

    /// A statement binding `result` (of type `ty` when given) to one run of the user's body.
    fn run_body(
        &self,
        result: TokenStream,
        ty: Option<TokenStream>,
        replace: Option<TokenStream>,
    ) -> TokenStream {
        let closure = self.body_closure(replace);
        let ty = ty.map(|ty| quote!(: #ty));
        quote! {
            #[allow(clippy::redundant_closure_call)]
            let #result #ty = (#closure)();
        }
    }

    fn ttl(&self) -> TokenStream {
        let rt = &self.rt;
        match self.args.ttl.as_ref().map(|a| &a.value) {
            None => quote!(#rt::__private::Ttl::Default),
            Some(expr) => {
                let duration = self.duration(expr);
                match expr {
                    Expr::Lit(_) => quote!(#rt::__private::Ttl::After(#duration)),
                    _ => quote!(#rt::__private::ttl(#expr)),
                }
            }
        }
    }

    fn lease(&self) -> TokenStream {
        let rt = &self.rt;
        match self.args.lease.as_ref().map(|a| &a.value) {
            None => quote!(#rt::__private::Duration::from_secs(2)),
            Some(expr @ Expr::Lit(_)) => self.duration(expr),
            Some(expr) => quote!(#rt::__private::lease(#expr)),
        }
    }

    /// A `Duration` from a number of seconds (integer or float literal).
    fn duration(&self, expr: &Expr) -> TokenStream {
        let rt = &self.rt;
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => {
                let secs: u64 = int.base10_parse().unwrap_or(1);
                quote!(#rt::__private::Duration::from_secs(#secs))
            }
            Expr::Lit(ExprLit {
                lit: Lit::Float(float),
                ..
            }) => {
                let secs: f64 = float.base10_parse().unwrap_or(1.0);
                quote!(#rt::__private::secs_f64(#secs))
            }
            other => quote!(#other),
        }
    }

    /// The type a call stores: the `Ok` type of a `Result`, the value of a `multi_cached` map, else the return.
    fn stored_type(&self) -> TokenStream {
        let rt = &self.rt;
        let ret = self.func.ret.ty();
        match (&self.func.ret, self.kind) {
            (_, Kind::MultiCached) => quote!(<#ret as #rt::__private::MemoMap>::Value),
            (Ret::Result(_), _) => quote!(<#ret as #rt::__private::ResultParts>::Ok),
            _ => ret,
        }
    }

    /// `Option<&Stored>` of the result `__cache_result` (a reference): what gets cached.
    fn stored_of(&self, result: TokenStream) -> TokenStream {
        let rt = &self.rt;
        let base = match self.func.ret {
            Ret::Result(_) => quote!(#rt::__private::ResultParts::ok_part(#result)),
            _ => quote!(::core::option::Option::Some(#result)),
        };
        self.filtered(base)
    }

    fn filtered(&self, option: TokenStream) -> TokenStream {
        match &self.args.skip_cache_func {
            Some(skip) => {
                let skip = &skip.value;
                quote!(#option.filter(|__cache_v| !(#skip)(*__cache_v)))
            }
            None => option,
        }
    }

    /// Turns a cached value `__cache_hit` into what the function returns.
    fn wrap_hit(&self) -> TokenStream {
        match self.func.ret {
            Ret::Result(_) => quote!(::core::result::Result::Ok(__cache_hit)),
            _ => quote!(__cache_hit),
        }
    }

    fn expand(&self) -> TokenStream {
        let main = self.main_fn();
        if self.args.companions_off() {
            return main;
        }
        let companions = self.companions();
        quote!(#main #(#companions)*)
    }

    /// The function's signature with parameters bound to plain names (patterns and `mut` are restored inside the
    /// body). A by-value `mut self` keeps its `mut` only when `with_body`: `self` cannot be rebound.
    fn plain_signature(&self, name: Ident, with_body: bool) -> Signature {
        let mut sig = self.func.item.sig.clone();
        sig.ident = name;
        let mut params = self.func.params.iter();
        for input in &mut sig.inputs {
            match input {
                FnArg::Typed(typed) => {
                    if let Some(param) = params.next() {
                        *typed.pat = Pat::Ident(PatIdent {
                            attrs: Vec::new(),
                            by_ref: None,
                            mutability: None,
                            ident: param.binding.clone(),
                            subpat: None,
                        });
                    }
                }
                FnArg::Receiver(receiver) => {
                    if receiver.reference.is_none() && !with_body {
                        receiver.mutability = None;
                    }
                }
            }
        }
        sig
    }

    /// The plain signature with another return type and extra trailing parameters.
    fn companion_signature(
        &self,
        op: Op,
        output: TokenStream,
        extra: Option<TokenStream>,
    ) -> Signature {
        let mut sig = self.plain_signature(self.item_name(op), op == Op::Refresh);
        sig.output = syn::parse2(quote!(-> #output)).unwrap_or(syn::ReturnType::Default);
        if let Some(extra) = extra {
            if let Ok(arg) = syn::parse2::<FnArg>(extra) {
                sig.inputs.push(arg);
            }
        }
        sig
    }

    /// The signature of a per-element companion of `multi_cached`: the keys parameter becomes one element.
    fn element_signature(
        &self,
        op: Op,
        output: TokenStream,
        extra: Option<TokenStream>,
    ) -> Signature {
        let mut sig = self.companion_signature(op, output, extra);
        let rt = &self.rt;
        if let Some(keys) = self.keys_param() {
            let (coll, _) = keys.deref_type();
            let item = self.fresh_name("item");
            let new_inputs: Punctuated<FnArg, Token![,]> = sig
                .inputs
                .iter()
                .map(|input| match input {
                    FnArg::Typed(t) if matches!(&*t.pat, Pat::Ident(p) if p.ident == keys.binding) => {
                        syn::parse2(quote!(#item: <#coll as #rt::__private::KeyCollection>::Elem))
                            .unwrap_or_else(|_| input.clone())
                    }
                    other => other.clone(),
                })
                .collect();
            sig.inputs = new_inputs;
        }
        sig
    }

    /// A parameter name not used by the function.
    fn fresh_name(&self, base: &str) -> Ident {
        let mut name = base.to_string();
        while self
            .func
            .params
            .iter()
            .any(|p| p.name == name.as_str() || p.binding == name.as_str())
        {
            name = format!("cache_{name}");
        }
        Ident::new(&name, Span::call_site())
    }

    fn lint_attrs(&self, with_expect: bool) -> Vec<&Attribute> {
        self.func
            .item
            .attrs
            .iter()
            .filter(|a| {
                let path = a.path();
                path.is_ident("cfg")
                    || path.is_ident("cfg_attr")
                    || path.is_ident("allow")
                    || path.is_ident("warn")
                    || path.is_ident("deny")
                    // Not `forbid`: companions carry `allow`s of their own, which a `forbid` would reject.
                    || (with_expect && path.is_ident("expect"))
            })
            .collect()
    }

    fn main_fn(&self) -> TokenStream {
        let attrs = &self.func.item.attrs;
        let vis = &self.func.item.vis;
        let sig = self.plain_signature(self.func.name().clone(), true);
        let body = match self.kind {
            Kind::Cached => self.cached_body(),
            Kind::Stampede => self.stampede_body(),
            Kind::MultiCached => self.multi_body(),
        };
        let cell = self.cell_items();
        quote! {
            #(#attrs)*
            #vis #sig {
                #cell
                #body
            }
        }
    }

    fn cached_body(&self) -> TokenStream {
        let hit = self.return_on_hit();
        let run_and_store = self.run_and_store();
        quote! {
            #hit
            #run_and_store
        }
    }

    /// Statements of the main function of `#[cached]` and `#[cached_stampede]` up to a miss: `__cache_cell`,
    /// `__cache_key`, and a return on a hit.
    fn return_on_hit(&self) -> TokenStream {
        let rt = &self.rt;
        let local = self.local_arg();
        let label = self.label();
        let key = self.keys(self.name()).declare();
        let wrap = self.wrap_hit();
        quote! {
            let __cache_cell = &__CACHE_CELL;
            #key
            if let ::core::option::Option::Some(__cache_hit) = #rt::__private::lookup(__cache_cell, #local, #label, &__cache_key) {
                return #wrap;
            }
        }
    }

    /// Statements after a miss of `#[cached]` (and in its `refresh`): run the body, store what may be stored
    /// under `__cache_key`, evaluate to the result.
    fn run_and_store(&self) -> TokenStream {
        let rt = &self.rt;
        let label = self.label();
        let run = self.run_body(quote!(__cache_result), None, None);
        let stored = self.stored_of(quote!(&__cache_result));
        let ttl = self.ttl();
        quote! {
            #run
            if let ::core::option::Option::Some(__cache_value) = #stored {
                #rt::__private::store(__cache_cell, #label, &__cache_key, __cache_value, #ttl);
            }
            __cache_result
        }
    }

    fn stampede_body(&self) -> TokenStream {
        let rt = &self.rt;
        let label = self.label();
        let hit = self.return_on_hit();
        let wrap = self.wrap_hit();
        let closure = self.body_closure(None);
        let stored = self.stored_of(quote!(__cache_result));
        let ttl = self.ttl();
        let lease = self.lease();
        quote! {
            #hit
            match #rt::__private::stampede(
                __cache_cell,
                #label,
                &__cache_key,
                #lease,
                #ttl,
                #closure,
                |__cache_result| #stored,
            ) {
                #rt::__private::Flight::Ran(__cache_result) => __cache_result,
                #rt::__private::Flight::Joined(__cache_hit) => #wrap,
            }
        }
    }

    /// Statements of `multi_cached` up to the keys of every element: `__cache_cell`, `__cache_elems`,
    /// `__cache_keys`, in the generated function named `within`.
    fn multi_prelude(&self, within: impl ToString) -> TokenStream {
        let rt = &self.rt;
        let Some(keys) = self.keys_param() else {
            return TokenStream::new();
        };
        let binding = &keys.binding;
        let (_, by_ref) = keys.deref_type();
        let collection = if by_ref {
            quote!(#binding)
        } else {
            quote!(&#binding)
        };
        let build = self.keys(within).build();
        quote! {
            let __cache_cell = &__CACHE_CELL;
            let __cache_elems = #rt::__private::KeyCollection::memo_elems(#collection);
            let __cache_keys: ::std::vec::Vec<#rt::__private::KeyBuf> = __cache_elems
                .iter()
                .map(|&__cache_elem| #build)
                .collect();
        }
    }

    /// Statements of `multi_cached` running the body for the elements at `__cache_missing_at`, storing what
    /// it returned in one `multi_set`, and merging it into `__cache_out`, which they evaluate to.
    fn multi_fill(&self) -> TokenStream {
        let rt = &self.rt;
        let Some(keys) = self.keys_param() else {
            return TokenStream::new();
        };
        let (coll, by_ref) = keys.deref_type();
        let ret = self.func.ret.ty();
        let label = self.label();
        let ttl = self.ttl();
        let (owned_ty, pass) = if by_ref {
            (
                quote!(<#coll as #rt::__private::KeyCollection>::Owned),
                quote!(&__cache_missing),
            )
        } else {
            (coll.to_token_stream(), quote!(__cache_missing))
        };
        let run = self.run_body(quote!(__cache_fresh), Some(ret), Some(pass));
        let value = self.filtered(
            quote!(#rt::__private::MemoMap::memo_get(&__cache_fresh, __cache_elems[__cache_i])),
        );
        quote! {
            let __cache_missing: #owned_ty = __cache_missing_at
                .iter()
                .map(|&__cache_i| ::core::clone::Clone::clone(__cache_elems[__cache_i]))
                .collect();
            #run
            let __cache_pairs: ::std::vec::Vec<(&#rt::__private::KeyBuf, _)> = __cache_missing_at
                .iter()
                .filter_map(|&__cache_i| {
                    #value.map(|__cache_v| (&__cache_keys[__cache_i], __cache_v))
                })
                .collect();
            #rt::__private::multi_store(__cache_cell, #label, &__cache_pairs, #ttl);
            for (__cache_k, __cache_v) in __cache_fresh {
                #rt::__private::MemoMap::memo_insert(&mut __cache_out, __cache_k, __cache_v);
            }
            __cache_out
        }
    }

    fn multi_body(&self) -> TokenStream {
        let rt = &self.rt;
        let prelude = self.multi_prelude(self.name());
        let fill = self.multi_fill();
        let label = self.label();
        let ret = self.func.ret.ty();
        let stored = self.stored_type();
        quote! {
            #prelude
            let mut __cache_out: #ret = ::core::default::Default::default();
            if __cache_elems.is_empty() {
                return __cache_out;
            }
            let __cache_found = #rt::__private::multi_lookup::<#stored>(__cache_cell, #label, &__cache_keys);
            let mut __cache_missing_at = ::std::vec::Vec::new();
            for (__cache_i, __cache_hit) in __cache_found.into_iter().enumerate() {
                match __cache_hit {
                    ::core::option::Option::Some(__cache_v) => #rt::__private::MemoMap::memo_insert(
                        &mut __cache_out,
                        ::core::clone::Clone::clone(__cache_elems[__cache_i]),
                        __cache_v,
                    ),
                    ::core::option::Option::None => __cache_missing_at.push(__cache_i),
                }
            }
            if __cache_missing_at.is_empty() {
                return __cache_out;
            }
            #fill
        }
    }

    /// A doc line naming the function: a link through `Self` when the function is known to be in an `impl`,
    /// plain code otherwise (an associated function that does not mention `Self` looks free).
    fn doc(&self, text: &str) -> TokenStream {
        let name = if self.func.in_impl {
            format!("[`Self::{}`]", self.name())
        } else {
            format!("`{}`", self.name())
        };
        let text = text.replace("{f}", &name);
        quote!(#[doc = #text])
    }

    fn companions(&self) -> Vec<TokenStream> {
        let rt = &self.rt;
        let vis = &self.func.item.vis;
        let stored = self.stored_type();
        let ret = self.func.ret.ty();
        let cfgs = self.lint_attrs(false);
        let per_item = self.kind == Kind::MultiCached;
        let sig = |op: Op, output: TokenStream, extra: Option<TokenStream>| {
            if per_item {
                self.element_signature(op, output, extra)
            } else {
                self.companion_signature(op, output, extra)
            }
        };
        // The key of the arguments (one element of the keys parameter for `multi_cached`) in companion `op`.
        let key = |op: Op| {
            let build = self.keys(self.item_name(op)).build();
            match self.keys_param() {
                Some(_) if per_item => {
                    let item = self.fresh_name("item");
                    quote!({ let __cache_elem = &#item; #build })
                }
                _ => build,
            }
        };
        let value = self.fresh_name("value");
        let cell = self.cell_items();
        let mut items = Vec::new();

        let s = sig(
            Op::Key,
            quote!(#rt::__private::Result<::std::string::String>),
            None,
        );
        let doc = self.doc(if per_item {
            "The cache key of one key of {f} (with the other arguments)."
        } else {
            "The cache key of {f} for these arguments."
        });
        let key_key = key(Op::Key);
        // The one companion without the cell: it declares the site struct itself.
        let site_struct = key::site_struct(self.args, self.func);
        items.push(quote! {
            #doc
            #(#cfgs)*
            #[allow(dead_code, unused_variables)]
            #vis #s {
                #site_struct
                #rt::__private::key_string(#key_key)
            }
        });

        let s = sig(
            Op::Get,
            quote!(#rt::__private::Result<::core::option::Option<#stored>>),
            None,
        );
        let doc = self.doc(
            "The cached value of {f} for these arguments, without running it (`None`: not cached).",
        );
        let key_get = key(Op::Get);
        items.push(quote! {
            #doc
            #(#cfgs)*
            #[allow(dead_code, unused_variables)]
            #vis #s {
                #cell
                #rt::__private::get(&__CACHE_CELL, &#key_get)
            }
        });

        let ttl = self.ttl();
        let s = sig(
            Op::Set,
            quote!(#rt::__private::Result<()>),
            Some(quote!(#value: &#stored)),
        );
        let doc = self.doc(
            "Stores `value` as the result of {f} for these arguments, with the function's TTL.",
        );
        let key_set = key(Op::Set);
        items.push(quote! {
            #doc
            #(#cfgs)*
            #[allow(dead_code, unused_variables)]
            #vis #s {
                #cell
                #rt::__private::set(&__CACHE_CELL, &#key_set, #value, #ttl)
            }
        });

        let s = sig(Op::Invalidate, quote!(#rt::__private::Result<bool>), None);
        let doc = self
            .doc("Deletes the cached result of {f} for these arguments; true if there was one.");
        let key_invalidate = key(Op::Invalidate);
        items.push(quote! {
            #doc
            #(#cfgs)*
            #[allow(dead_code, unused_variables)]
            #vis #s {
                #cell
                #rt::__private::invalidate(&__CACHE_CELL, &#key_invalidate)
            }
        });

        let s = self.companion_signature(Op::Refresh, ret, None);
        let doc = self.doc("Runs {f} uncached, stores its result (failing open) and returns it.");
        let refresh_body = self.refresh_body();
        // It holds the user's body, so it carries the function's `expect`s too.
        let body_lints = self.lint_attrs(true);
        items.push(quote! {
            #doc
            #(#body_lints)*
            #[allow(dead_code)]
            #vis #s {
                #cell
                #refresh_body
            }
        });

        let name = self.item_name(Op::Cache);
        let doc = self.doc("The cache {f} uses (its alias's current instance, or its own).");
        items.push(quote! {
            #doc
            #(#cfgs)*
            #[allow(dead_code)]
            #vis fn #name() -> #rt::__private::Result<#rt::__private::Cache> {
                #cell
                __CACHE_CELL.cache()
            }
        });

        items.push(self.uncached_fn());
        items
    }

    /// The hit path's thread-local copy of the cache, named at the call site so the thread-local access is
    /// resolved statically (through the cell it would be an indirect call): `Some(&__CACHE_LOCAL)` for an
    /// alias, `None` for a function's own URL instance.
    fn local_arg(&self) -> TokenStream {
        if self.has_local() {
            quote!(::core::option::Option::Some(&__CACHE_LOCAL))
        } else {
            quote!(::core::option::Option::None)
        }
    }

    /// Whether the cell has a thread-local copy of its cache: an alias's cell does, a URL-built instance (one per
    /// function, nothing to resolve) does not.
    fn has_local(&self) -> bool {
        self.args.cache.is_none()
    }

    /// Items declaring the function's `MemoCell` as `__CACHE_CELL`, to be put first in a function body. Every copy
    /// is its own `static` with the same site id, so all of them share one state. With them, the struct whose
    /// path the key reads (see [`key::site_struct`]).
    fn cell_items(&self) -> TokenStream {
        let rt = &self.rt;
        let site = self.site();
        let namespace = self.args.namespace.as_ref().map(|a| &a.value);
        let serializer = self.args.serializer.as_ref().map(|a| &a.value);
        let plugins = self.args.plugins.as_ref().map(|a| &a.value);
        let setup = if namespace.is_some() || serializer.is_some() || plugins.is_some() {
            let namespace = match namespace {
                Some(ns) => quote!(::core::option::Option::Some(::core::convert::Into::into(#ns))),
                None => quote!(::core::option::Option::None),
            };
            let serializer = match serializer {
                Some(s) => quote!(::core::option::Option::Some(#rt::__private::serializer(#s))),
                None => quote!(::core::option::Option::None),
            };
            let plugins = match plugins {
                Some(list) => {
                    quote!(::core::option::Option::Some(
                        ::std::vec![#(#rt::__private::plugin(#list)),*]
                    ))
                }
                None => quote!(::core::option::Option::None),
            };
            Some(quote! {
                fn __cache_setup(
                    __cache: &#rt::__private::Cache,
                ) -> #rt::__private::Result<#rt::__private::Cache> {
                    #rt::__private::derive(__cache, #namespace, #serializer, #plugins)
                }
            })
        } else {
            None
        };
        let setup_arg = if setup.is_some() {
            quote!(::core::option::Option::Some(__cache_setup))
        } else {
            quote!(::core::option::Option::None)
        };
        let source = match (&self.args.cache, &self.args.alias) {
            (Some(url), _) => {
                let url = &url.value;
                quote!(#rt::__private::MemoCell::url(#site, #url, #setup_arg))
            }
            (None, alias) => {
                let alias = alias
                    .as_ref()
                    .map_or_else(|| quote!("default"), |a| a.value.to_token_stream());
                quote!(#rt::__private::MemoCell::alias(#site, #alias, #setup_arg, &__CACHE_LOCAL))
            }
        };
        let local = self.has_local().then(|| {
            quote! {
                ::std::thread_local! {
                    static __CACHE_LOCAL: #rt::__private::LocalCache = const { #rt::__private::LocalCache::new() };
                }
            }
        });
        let site_struct = key::site_struct(self.args, self.func);
        quote! {
            #site_struct
            #setup
            #local
            static __CACHE_CELL: #rt::__private::MemoCell = #source;
        }
    }

    fn refresh_body(&self) -> TokenStream {
        if self.kind == Kind::MultiCached {
            let prelude = self.multi_prelude(self.item_name(Op::Refresh));
            let fill = self.multi_fill();
            let ret = self.func.ret.ty();
            return quote! {
                #prelude
                let mut __cache_out: #ret = ::core::default::Default::default();
                let __cache_missing_at: ::std::vec::Vec<usize> = (0..__cache_elems.len()).collect();
                #fill
            };
        }
        let key = self.keys(self.item_name(Op::Refresh)).declare();
        let run_and_store = self.run_and_store();
        quote! {
            let __cache_cell = &__CACHE_CELL;
            #key
            #run_and_store
        }
    }

    fn uncached_fn(&self) -> TokenStream {
        let mut sig = self.func.item.sig.clone();
        sig.ident = self.item_name(Op::Uncached);
        let vis = &self.func.item.vis;
        let block = &self.func.item.block;
        let attrs = self.lint_attrs(true);
        let doc = self.doc("The body of {f}, run without the cache.");
        quote! {
            #doc
            #(#attrs)*
            #[allow(dead_code)]
            #vis #sig #block
        }
    }
}

/// The type with every lifetime inferred (`'_`): a `let` in the body cannot name the function's lifetime
/// parameters for a value the function itself made.
fn erase_lifetimes(ty: &syn::Type) -> syn::Type {
    struct Eraser;
    impl syn::visit_mut::VisitMut for Eraser {
        fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
            *lifetime = syn::Lifetime::new("'_", lifetime.span());
        }
    }
    let mut ty = ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut Eraser, &mut ty);
    ty
}
