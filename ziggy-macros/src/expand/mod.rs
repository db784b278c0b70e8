//! Expansion of `#[ziggy::context]` and `#[ziggy::timeit]` into the runtime's guard code; what
//! the recording options add is in `record`.

mod record;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, ItemFn, LitStr, ReturnType, Type};

use crate::attr::{ContextArgs, TimeitArgs};
use crate::mangle;
use crate::valid;

/// On error: the error, plus the user's item unchanged so the IDE keeps analysing it.
fn with_error(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut out = error.into_compile_error();
    out.extend(item);
    out
}

/// Parses the annotated item as a fn with a body, or explains what it is instead.
fn parse_fn(item: &TokenStream, attr_name: &str) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        let what = match syn::parse2::<syn::Item>(item.clone()) {
            Ok(syn::Item::Struct(_)) => "a struct",
            Ok(syn::Item::Enum(_)) => "an enum",
            Ok(syn::Item::Impl(_)) => "an impl block (annotate its methods instead)",
            Ok(syn::Item::Mod(_)) => "a module",
            Ok(syn::Item::Trait(_)) => "a trait",
            Ok(syn::Item::Const(_)) => "a const",
            Ok(syn::Item::Static(_)) => "a static",
            Ok(syn::Item::Type(_)) => "a type alias",
            _ if item.to_string().trim_end().ends_with(';') => {
                "a fn declaration without one (give the trait method a default body, or annotate each impl)"
            }
            _ => "something that is not a fn",
        };
        let span = item
            .clone()
            .into_iter()
            .next()
            .map_or(Span::call_site(), |t| t.span());
        syn::Error::new(
            span,
            format!("#[ziggy::{attr_name}] goes on a fn with a body, not on {what}"),
        )
    })
}

fn reject_const(func: &ItemFn, attr_name: &str) -> syn::Result<()> {
    match &func.sig.constness {
        Some(c) => Err(syn::Error::new_spanned(
            c,
            format!(
                "#[ziggy::{attr_name}] cannot instrument a `const fn`: events are recorded at run time; \
                 remove `const` or the attribute"
            ),
        )),
        None => Ok(()),
    }
}

/// True when `attr` is `#[timeit]`, `#[ziggy::timeit]` or `#[::ziggy::timeit]`.
fn is_timeit_attr(attr: &Attribute) -> bool {
    is_ziggy_attr(attr, "timeit")
}

fn is_ziggy_attr(attr: &Attribute, name: &str) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    matches!(segments.as_slice(), [n] if n == name)
        || matches!(segments.as_slice(), [z, n] if z == "ziggy" && n == name)
}

/// The key of a `#[timeit]` attribute: its argument, or `<fn name>_time`.
fn timer_key(args: &TimeitArgs, func: &ItemFn) -> LitStr {
    args.key.clone().unwrap_or_else(|| {
        LitStr::new(
            &format!("{}_time", func.sig.ident.unraw_str()),
            func.sig.ident.span(),
        )
    })
}

trait UnrawStr {
    fn unraw_str(&self) -> String;
}

impl UnrawStr for syn::Ident {
    fn unraw_str(&self) -> String {
        let s = self.to_string();
        s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
    }
}

fn parse_timeit_attr(attr: &Attribute) -> syn::Result<TimeitArgs> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok(TimeitArgs { key: None }),
        _ => attr.parse_args(),
    }
}

/// The body of an `async fn` as an `async move` block whose output type is pinned to the declared
/// return type (so `?` inside converts into it), unless that type cannot be named (`impl Trait`).
fn async_body(output: &ReturnType, block: &impl ToTokens) -> TokenStream {
    match nameable_return(output) {
        Some(ty) => quote! { ::ziggy::__private::typed::<#ty, _>(async move #block) },
        None => quote! { async move #block },
    }
}

/// The declared return type, when it is one the expansion may name in a type position.
fn nameable_return(output: &ReturnType) -> Option<&Type> {
    match output {
        ReturnType::Type(_, ty) if !crate::valid::contains_impl_trait(ty) => Some(ty),
        _ => None,
    }
}

/// Whether the return type is spelled `Result<..>` or `something::Result<..>` (or an alias whose
/// name ends in `Result`): only then does the expansion look for an `Err` to record.
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match ty.as_ref() {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident.to_string().ends_with("Result")),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

pub fn context(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_context(args, &item) {
        Ok(out) => out,
        Err(e) => with_error(e, item),
    }
}

fn try_context(args: TokenStream, item: &TokenStream) -> syn::Result<TokenStream> {
    let mut errors = valid::Errors::default();
    let func = parse_fn(item, "context");
    let args = syn::parse2::<ContextArgs>(args);
    let (mut func, args) = match (func, args) {
        (Ok(f), Ok(a)) => (f, a),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(mut e1), Err(e2)) => {
            e1.combine(e2);
            return Err(e1);
        }
    };
    if let Err(e) = reject_const(&func, "context") {
        errors.push(e);
    }
    if let Err(e) = valid::context_args(&args) {
        errors.push(e);
    }
    if let Err(e) = valid::context_options(&args, &func.sig) {
        errors.push(e);
    }
    // A `#[ziggy::timeit]` below this attribute is taken over, so the timer runs inside the context.
    let mut timer = None;
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut func.attrs) {
        if is_timeit_attr(&attr) && timer.is_none() {
            match parse_timeit_attr(&attr) {
                Ok(t) => timer = Some(timer_key(&t, &func)),
                Err(e) => errors.push(e),
            }
        } else {
            kept.push(attr);
        }
    }
    func.attrs = kept;
    errors.finish()?;
    Ok(expand_context(&args, func, timer))
}

/// `mut self` → `self` in the emitted signature.
fn strip_receiver_mut(sig: &mut syn::Signature) {
    if let Some(syn::FnArg::Receiver(receiver)) = sig.inputs.first_mut() {
        receiver.mutability = None;
    }
}

fn expand_context(args: &ContextArgs, func: ItemFn, timer: Option<LitStr>) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
        ..
    } = func;
    let channel = &args.channel;
    let channel_value = channel.value();
    let check_ident = mangle::const_ident(&channel_value, channel.span());
    let module = format_ident!("{}", mangle::MODULE, span = channel.span());
    let check = quote_spanned! {channel.span()=>
        #[allow(clippy::let_unit_value)]
        let _ = crate::#module::#check_ident;
    };
    let id = args.id.as_ref().map(|e| quote! { .id(#e) });
    let (sample, rate_assert, registered_sample) = match &args.sample {
        Some(s) => {
            let target = &s.target;
            let rate = &s.rate;
            let literal = valid::literal_rate(rate);
            let assert = literal.is_none().then(|| {
                quote_spanned! {rate.span()=>
                    const _: () = ::core::assert!(
                        (#rate) as f64 >= 0.0 && (#rate) as f64 <= 1.0,
                        "ziggy: sample rate must be within 0.0..=1.0"
                    );
                }
            });
            let registered = match literal {
                Some(r) => quote! { ::core::option::Option::Some((#target, #r)) },
                None => quote! { ::core::option::Option::None },
            };
            (
                Some(quote! { .sample(#target, (#rate) as f64) }),
                assert,
                registered,
            )
        }
        None => (None, None, quote! { ::core::option::Option::None }),
    };
    let fn_name = sig.ident.unraw_str();
    let register = quote! {
        ::ziggy::__private::inventory::submit! {
            ::ziggy::__private::InstrumentedFn::__new(
                #channel,
                ::core::concat!(::core::module_path!(), "::", #fn_name),
                ::core::file!(),
                ::core::line!(),
                #registered_sample,
            )
        }
    };
    // The name was checked above, at compile time: the runtime need not check it per call.
    let builder = quote! { ::ziggy::Context::__declared(#channel) #id #sample };
    let entry = record::entry(args, &sig);
    let error_of = record::error_of(args, returns_result(&sig.output));
    let returned = record::returned(args);
    let body = if sig.asyncness.is_some() {
        // The arguments are moved into the body: it records them itself, first thing when polled
        // inside the context, if the context was opened.
        let (opened, typed_body) = match &entry {
            Some(entry) => (
                Some(quote! { let __ziggy_opened = __ziggy_context.is_some(); }),
                async_body(
                    &sig.output,
                    &quote! {{
                        if __ziggy_opened {
                            #entry
                        }
                        #block
                    }},
                ),
            ),
            None => (None, async_body(&sig.output, &block)),
        };
        let timed = match &timer {
            Some(key) => quote! { ::ziggy::__private::timed(#key, __ziggy_body).await },
            None => quote! { __ziggy_body.await },
        };
        let record_error = error_of.map(|e| quote! { ::ziggy::__private::record_error_text(#e); });
        quote! {
            let __ziggy_context = if ::ziggy::enabled() {
                ::core::option::Option::Some(#builder)
            } else {
                ::core::option::Option::None
            };
            #opened
            let __ziggy_body = #typed_body;
            match __ziggy_context {
                ::core::option::Option::Some(__ziggy_context) => {
                    ::ziggy::in_context(__ziggy_context, async move {
                        let __ziggy_result = #timed;
                        #record_error
                        #returned
                        __ziggy_result
                    })
                    .await
                }
                ::core::option::Option::None => __ziggy_body.await,
            }
        }
    } else {
        let timer = timer.map(|key| quote! { let __ziggy_timer = ::ziggy::timeit(#key); });
        let run = if error_of.is_some() || returned.is_some() {
            // `impl Trait` cannot be a closure's return type: the closure's is inferred then.
            let ret = match nameable_return(&sig.output) {
                Some(ty) => quote! { -> #ty },
                None => quote! {},
            };
            let call = match sig.receiver().map(|r| r.mutability.is_some()) {
                // The body gets the receiver as an argument (with `self` renamed inside it): a
                // closure capturing `self` could not return a borrow of it (`Result<&mut T, E>`
                // from `&mut self`).
                Some(by_mut_value) => {
                    // `mut self` (by value): the closure's parameter is the one mutated, so the
                    // fn's own needs no `mut` (it would be an unused `mut`).
                    let param = if by_mut_value {
                        strip_receiver_mut(&mut sig);
                        quote! { mut __ziggy_self }
                    } else {
                        quote! { __ziggy_self }
                    };
                    let mut renamed = block.clone();
                    crate::self_rename::rename_self(&mut renamed);
                    quote! {
                        ::ziggy::__private::call_with(self, move |#param| #ret #renamed)
                    }
                }
                None => quote! { (|| #ret #block)() },
            };
            let record_error = error_of.map(|e| {
                quote! {
                    if let ::core::option::Option::Some(__ziggy_error) = #e {
                        __ziggy_guard.record_error(&__ziggy_error);
                    }
                }
            });
            // Only if the context was opened: a context opened since (ziggy switched on during
            // the call) is not this fn's.
            let record_returned = returned.map(|r| quote! { if __ziggy_opened { #r } });
            quote! {
                #[allow(clippy::redundant_closure_call)]
                let __ziggy_result = #call;
                #record_error
                #record_returned
                __ziggy_result
            }
        } else {
            quote! { #block }
        };
        let (opened, enabled) = if args.ret.is_some() {
            (
                Some(quote! { let __ziggy_opened = ::ziggy::enabled(); }),
                quote! { __ziggy_opened },
            )
        } else {
            (None, quote! { ::ziggy::enabled() })
        };
        let enter = match entry {
            Some(entry) => quote! {{
                let __ziggy_guard = #builder.enter();
                #entry
                __ziggy_guard
            }},
            None => quote! { #builder.enter() },
        };
        quote! {
            #opened
            let __ziggy_guard = if #enabled {
                #enter
            } else {
                ::ziggy::ContextGuard::inert()
            };
            #timer
            #run
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #check
            #rate_assert
            #register
            #body
        }
    }
}

pub fn timeit(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_timeit(args.clone(), &item) {
        Ok(out) => out,
        Err(e) => with_error(e, item),
    }
}

fn try_timeit(args: TokenStream, item: &TokenStream) -> syn::Result<TokenStream> {
    let func = parse_fn(item, "timeit")?;
    let parsed: TimeitArgs = syn::parse2(args.clone())?;
    reject_const(&func, "timeit")?;
    // `#[ziggy::timeit]` above `#[ziggy::context]`: put the timer back below it, where the context
    // macro takes it over and times inside its own context.
    if let Some(pos) = func.attrs.iter().position(|a| is_ziggy_attr(a, "context")) {
        let mut func = func;
        let timeit_attr: Attribute = if args.is_empty() {
            syn::parse_quote!(#[::ziggy::timeit])
        } else {
            syn::parse_quote!(#[::ziggy::timeit(#args)])
        };
        func.attrs.insert(pos + 1, timeit_attr);
        return Ok(func.into_token_stream());
    }
    let key = timer_key(&parsed, &func);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = func;
    let body = if sig.asyncness.is_some() {
        let typed_body = async_body(&sig.output, &block);
        quote! { ::ziggy::__private::timed(#key, #typed_body).await }
    } else {
        quote! {
            let __ziggy_timer = ::ziggy::timeit(#key);
            #block
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}
