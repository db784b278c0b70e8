//! The code the recording options add to `#[ziggy::context]`: the arguments (`args`, `skip`) and
//! `fields` right after the context opens, the `Err` (`err`, or the default) and the returned
//! value (`ret`) when the body returns. The runtime side is `ziggy::__private` (macro_support.rs).
//!
//! Everything here runs only once the context is open and active: the entry code under
//! `__private::recording()`, the exit code through setters that check it before formatting.
//! Tokens that can fail to type-check carry the location of the user's token they come from (the
//! argument's name, the field's value, `err`, `ret`) with call-site hygiene, so rustc's error
//! points there.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Signature};

use crate::attr::{ContextArgs, Format, unraw};
use crate::params::bound_names;

/// A span at `token`'s place that resolves names as the expansion's own code does.
fn at(token: Span) -> Span {
    Span::call_site().located_at(token)
}

fn setter(format: Format, span: Span) -> Ident {
    let name = match format {
        Format::Serialize => "set_serialize",
        Format::Debug => "set_debug",
        Format::Display => "set_display",
    };
    Ident::new(name, span)
}

/// The parameters `args` records: every bound name but the skipped ones (none without `args`).
fn recorded_params(args: &ContextArgs, sig: &Signature) -> Vec<Ident> {
    if args.args.is_none() {
        return Vec::new();
    }
    let skipped: Vec<String> = args
        .skip
        .iter()
        .flat_map(|s| s.names.iter().map(unraw))
        .collect();
    bound_names(sig)
        .into_iter()
        .filter(|p| !skipped.contains(&unraw(p)))
        .collect()
}

/// Records the arguments, then sets the fields, when the innermost context records; `None`
/// when there is nothing to record at entry.
pub fn entry(args: &ContextArgs, sig: &Signature) -> Option<TokenStream> {
    let params = recorded_params(args, sig);
    if params.is_empty() && args.fields.is_empty() {
        return None;
    }
    let arguments = params.iter().map(|p| {
        let key = LitStr::new(&unraw(p), p.span());
        quote_spanned! {at(p.span())=>
            (&&&::ziggy::__private::Arg(&#p)).ziggy_record_arg(#key);
        }
    });
    let fields = args.fields.iter().map(|f| {
        let key = LitStr::new(&f.key, f.key_span);
        let expr = &f.value.expr;
        let set = setter(f.value.format, at(expr.span()));
        quote_spanned! {at(expr.span())=>
            ::ziggy::__private::#set(#key, &(#expr));
        }
    });
    let imports = (!params.is_empty()).then(|| {
        quote! {
            #[allow(unused_imports)]
            use ::ziggy::__private::{ArgDebug as _, ArgNeither as _, ArgSerialize as _};
        }
    });
    Some(quote! {
        if ::ziggy::__private::recording() {
            #imports
            #(#arguments)*
            #(#fields)*
        }
    })
}

/// An expression of type `Option<ErrorText>`, the `Err` of `__ziggy_result` to record in
/// `body.error`: via the format `err` names (which then requires a `Result`), or, without `err`
/// and for a return type spelled `Result`, via `Display`, else `Debug`, else nothing.
pub fn error_of(args: &ContextArgs, spelled_result: bool) -> Option<TokenStream> {
    match &args.err {
        Some(err) => {
            let name = match err.format {
                Format::Debug => "err_debug",
                _ => "err_display",
            };
            let check = Ident::new(name, at(err.span()));
            Some(quote_spanned! {at(err.span())=>
                ::ziggy::__private::#check(&__ziggy_result)
            })
        }
        None if spelled_result => Some(quote! {
            {
                #[allow(unused_imports)]
                use ::ziggy::__private::{ErrDebug as _, ErrDisplay as _, ErrNone as _};
                (&&&::ziggy::__private::ErrOf(&__ziggy_result)).ziggy_error_of()
            }
        }),
        None => None,
    }
}

/// Records `__ziggy_result` (its `Ok` value if it is a `Result`) under `return`, for `ret`.
pub fn returned(args: &ContextArgs) -> Option<TokenStream> {
    let ret = args.ret.as_ref()?;
    let set = setter(ret.format, at(ret.span()));
    Some(quote_spanned! {at(ret.span())=>
        {
            #[allow(unused_imports)]
            use ::ziggy::__private::{RetOk as _, RetWhole as _};
            if let ::core::option::Option::Some(__ziggy_value) =
                (&&::ziggy::__private::RetOf(&__ziggy_result)).ziggy_ret()
            {
                ::ziggy::__private::#set("return", __ziggy_value);
            }
        }
    })
}
