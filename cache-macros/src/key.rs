//! Key-expression code generation: statements that write one call's key into `__cache_key` (a `KeyBuf`).
//!
//! The default key is `{path}({arg},{arg},..)`: the function's path (`module::fn`, or `Type::method` with the
//! type as `std::any::type_name` prints it), `::<T,..>` for generic functions, then every argument in the key as
//! JSON. `key = expr` and `key_builder = f` replace it whole.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::GenericParam;

use crate::ast::Func;
use crate::attr::{Args, Kind};

/// What the key is built from.
pub struct KeyGen<'a> {
    pub rt: &'a TokenStream,
    pub args: &'a Args,
    pub func: &'a Func,
    pub kind: Kind,
    /// The name of the generated function the key is written in (the decorated function or a companion):
    /// the site struct declared there has a path ending in `::{within}::__CacheSite`.
    pub within: String,
}

impl KeyGen<'_> {
    fn skipped(&self, name: &syn::Ident) -> bool {
        self.args
            .skip
            .as_ref()
            .is_some_and(|s| s.value.iter().any(|n| n == name))
    }

    fn is_keys_param(&self, name: &syn::Ident) -> bool {
        self.kind == Kind::MultiCached
            && self
                .args
                .keys_from_attr
                .as_ref()
                .is_some_and(|a| name == &a.value.value())
    }

    fn self_in_key(&self) -> bool {
        self.func.receiver().is_some() && self.args.noself.is_none()
    }

    /// Statements writing the function's path for keys.
    fn path(&self) -> TokenStream {
        let tail = format!("::{}", self.func.plain_name());
        if !uses_site(self.args, self.func) {
            quote! {
                __cache_key.push(::core::any::type_name::<Self>());
                __cache_key.push(#tail);
            }
        } else {
            let rt = self.rt;
            let suffix = format!("::{}::__CacheSite", self.within);
            quote! {
                __cache_key.push(#rt::__private::site_path(
                    ::core::any::type_name::<__CacheSite>(),
                    #suffix,
                    ::core::module_path!(),
                ));
                __cache_key.push(#tail);
            }
        }
    }

    fn generic_args(&self) -> TokenStream {
        let params = self.func.type_and_const_params();
        if params.is_empty() {
            return TokenStream::new();
        }
        let writes = params.iter().enumerate().map(|(i, param)| {
            let sep = (i > 0).then(|| quote!(__cache_key.push(",");));
            match param {
                GenericParam::Type(t) => {
                    let ident = &t.ident;
                    quote!(#sep __cache_key.push(::core::any::type_name::<#ident>());)
                }
                GenericParam::Const(c) => {
                    let ident = &c.ident;
                    quote!(#sep __cache_key.custom(&#ident);)
                }
                GenericParam::Lifetime(_) => TokenStream::new(),
            }
        });
        quote! {
            __cache_key.push("::<");
            #(#writes)*
            __cache_key.push(">");
        }
    }

    /// Statements writing the key of one call (the collection parameter of `multi_cached` replaced by the
    /// element `__cache_elem: &K`).
    pub fn write(&self) -> TokenStream {
        if let Some(key) = &self.args.key {
            let expr = &key.value;
            return quote_spanned!(expr.span()=> __cache_key.custom(&(#expr));).into_token_stream();
        }
        if let Some(builder) = &self.args.key_builder {
            let f = &builder.value;
            if self.kind == Kind::MultiCached {
                return quote_spanned!(f.span()=> __cache_key.custom(&(#f)(__cache_elem));)
                    .into_token_stream();
            }
            let receiver = self.self_in_key().then(|| quote!(&self,));
            let params = self
                .func
                .params
                .iter()
                .filter(|p| !self.skipped(&p.name))
                .map(|p| &p.binding);
            return quote_spanned!(f.span()=> __cache_key.custom(&(#f)(#receiver #(&#params),*));)
                .into_token_stream();
        }
        let path = self.path();
        let generics = self.generic_args();
        let rt = self.rt;
        // `(&KeyPart(&arg)).put(..)`: an inlined writer for the usual types, serde for the rest (see
        // `KeyPart`), spanned at the argument so a type that cannot be in the key is reported there.
        let put = |arg: TokenStream, span: Span| quote_spanned!(span=> (&#rt::__private::KeyPart(#arg)).put(&mut __cache_key););
        let receiver = self
            .func
            .receiver()
            .filter(|_| self.self_in_key())
            .map(|r| put(quote!(&self), r.span()));
        let params = self
            .func
            .params
            .iter()
            .filter(|p| !self.skipped(&p.name))
            .map(|p| {
                if self.is_keys_param(&p.name) {
                    put(quote!(__cache_elem), Span::call_site())
                } else {
                    let binding = &p.binding;
                    put(quote!(&#binding), p.span())
                }
            });
        quote! {
            #path
            #generics
            __cache_key.open();
            {
                #[allow(unused_imports)]
                use #rt::__private::{KeyDirect as _, KeySerde as _};
                #receiver
                #(#params)*
            }
            __cache_key.close();
        }
    }

    /// Statements declaring `__cache_key`, the `KeyBuf` of one call, written in place: the key text lives on
    /// the stack, and a block returning it would copy it right after writing it (a copy that, reading bytes
    /// still in the store buffer, costs more than the writing).
    pub fn declare(&self) -> TokenStream {
        let rt = self.rt;
        let write = self.write();
        quote! {
            let mut __cache_key = #rt::__private::KeyBuf::new();
            #write
        }
    }

    /// A block evaluating to the `KeyBuf` of one call.
    pub fn build(&self) -> TokenStream {
        let rt = self.rt;
        let write = self.write();
        quote! {{
            let mut __cache_key = #rt::__private::KeyBuf::new();
            #write
            __cache_key
        }}
    }
}

/// Whether the default key's path is read from the site struct ([`site_struct`]): a function not known to be in
/// an `impl`, with no `key` or `key_builder` of its own.
fn uses_site(args: &Args, func: &Func) -> bool {
    !func.in_impl && args.key.is_none() && args.key_builder.is_none()
}

/// The site struct, declared first in every generated function body that writes a key (never inside a
/// closure, whose name would be part of its path). `type_name` of an item nested in a function prints the path
/// Rust gives that function: `crate::module::fun` for a free function, `crate::module::Type::fun` in an `impl`.
/// That is how the key of an associated function that neither takes `self` nor mentions `Self` gets its type,
/// which the macro cannot see.
pub fn site_struct(args: &Args, func: &Func) -> TokenStream {
    if uses_site(args, func) {
        quote! {
            #[allow(dead_code)]
            struct __CacheSite;
        }
    } else {
        TokenStream::new()
    }
}
