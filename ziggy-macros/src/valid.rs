//! Semantic checks of parsed arguments, collecting every error so the user sees all at once.

use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, ReturnType, Signature, UnOp};

use crate::attr::ContextArgs;
use crate::attr::unraw;
use crate::channel_rule::{is_self_or_ancestor, validate_channel_name};
use crate::params::bound_names;
use ziggy_proto::fields::is_valid_body_key;

/// Accumulates errors and turns them into one `syn::Error`.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Checks a channel literal against the naming rule.
pub fn channel_literal(lit: &LitStr, what: &str, errors: &mut Errors) -> bool {
    match validate_channel_name(&lit.value()) {
        Ok(()) => true,
        Err(e) => {
            errors.push(syn::Error::new_spanned(
                lit,
                format!(
                    "invalid {what} {:?}: {e}; write e.g. \"request.sql\"",
                    lit.value()
                ),
            ));
            false
        }
    }
}

/// The value of a rate given as a (possibly negated) numeric literal, if it is one.
pub fn literal_rate(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<i64>().ok().map(|v| v as f64),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => literal_rate(expr).map(|v| -v),
        Expr::Paren(p) => literal_rate(&p.expr),
        Expr::Group(g) => literal_rate(&g.expr),
        _ => None,
    }
}

pub fn context_args(args: &ContextArgs) -> syn::Result<()> {
    let mut errors = Errors::default();
    let channel_ok = channel_literal(&args.channel, "channel name", &mut errors);
    if let Some(sample) = &args.sample {
        let target_ok = channel_literal(&sample.target, "sample target", &mut errors);
        if channel_ok
            && target_ok
            && !is_self_or_ancestor(&sample.target.value(), &args.channel.value())
        {
            errors.push(syn::Error::new_spanned(
                &sample.target,
                format!(
                    "sample target {:?} is neither the channel {:?} nor one of its ancestors; \
                     sample on the channel itself or on a parent such as {:?}",
                    sample.target.value(),
                    args.channel.value(),
                    args.channel.value().split('.').next().unwrap_or_default(),
                ),
            ));
        }
        if let Some(rate) = literal_rate(&sample.rate)
            && !(0.0..=1.0).contains(&rate)
        {
            errors.push(syn::Error::new_spanned(
                    &sample.rate,
                    format!("sample rate {rate:?} is outside 0.0..=1.0: give the fraction of events to keep, e.g. 0.25"),
                ));
        }
    }
    errors.finish()
}

/// Checks the recording options against the fn they annotate.
pub fn context_options(args: &ContextArgs, sig: &Signature) -> syn::Result<()> {
    let mut errors = Errors::default();
    let params = bound_names(sig);
    check_skip(args, sig, &params, &mut errors);
    check_keys(args, &params, &mut errors);
    let returns_nothing = matches!(sig.output, ReturnType::Default);
    if let Some(err) = &args.err {
        if returns_nothing {
            errors.push(syn::Error::new_spanned(
                &err.keyword,
                "`err` records the `Err` of a fn returning `Result`, but this fn returns nothing: \
                 remove `err`",
            ));
        } else if contains_impl_trait_return(&sig.output) {
            errors.push(syn::Error::new_spanned(
                &err.keyword,
                "`err` records the `Err` of a fn returning `Result`, but this fn returns `impl Trait`, \
                 which is not one: return a `Result<_, E>`, or remove `err`",
            ));
        }
    }
    if let Some(ret) = &args.ret
        && returns_nothing
    {
        errors.push(syn::Error::new_spanned(
            &ret.keyword,
            "`ret` records the returned value, but this fn returns nothing: remove `ret`",
        ));
    }
    errors.finish()
}

/// `skip` needs `args`; `skip_all` contradicts it; every skipped name is a parameter, once.
fn check_skip(args: &ContextArgs, sig: &Signature, params: &[Ident], errors: &mut Errors) {
    if let (Some(skip_all), Some(_)) = (&args.skip_all, &args.args) {
        errors.push(syn::Error::new_spanned(
            skip_all,
            "`skip_all` contradicts `args`: `args` records the arguments, `skip_all` none (the default); \
             keep one, or write `args, skip(a, ..)` to leave some out",
        ));
    }
    let Some(skip) = &args.skip else { return };
    if args.args.is_none() {
        errors.push(syn::Error::new_spanned(
            &skip.keyword,
            "`skip` leaves arguments out of `args`, but `args` is not given and no argument is recorded \
             unless asked: write `args, skip(..)` to record the others, or remove `skip`",
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for name in &skip.names {
        let text = name.to_string();
        if seen.contains(&text) {
            errors.push(syn::Error::new_spanned(
                name,
                format!("`{text}` is skipped twice: name it once"),
            ));
            continue;
        }
        seen.push(text.clone());
        if text == "self" {
            if sig.receiver().is_none() {
                errors.push(syn::Error::new_spanned(
                    name,
                    "this fn has no `self` parameter (and `args` never records `self`): remove it",
                ));
            }
            continue;
        }
        if !params.iter().any(|p| unraw(p) == unraw(name)) {
            let listed = if params.is_empty() {
                "this fn has no named parameter".to_owned()
            } else {
                format!(
                    "the parameters are {}",
                    params
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            errors.push(syn::Error::new_spanned(
                name,
                format!("no parameter named `{text}` to skip: {listed}"),
            ));
        }
    }
}

/// Every `fields` key follows the body-key rule and is written once: no key is repeated, nor
/// nested under another key recorded by the same attribute (the later write would replace it).
fn check_keys(args: &ContextArgs, params: &[Ident], errors: &mut Errors) {
    // Keys recorded before the fields: the arguments.
    let mut written: Vec<(String, String)> = Vec::new();
    if args.args.is_some() {
        let skipped: Vec<String> = args
            .skip
            .iter()
            .flat_map(|s| s.names.iter().map(unraw))
            .collect();
        for p in params {
            let key = unraw(p);
            if !skipped.contains(&key) {
                written.push((
                    key.clone(),
                    format!("the argument `{key}` recorded by `args`"),
                ));
            }
        }
    }
    let ret_key = args.ret.as_ref().map(|_| "return".to_owned());
    for field in &args.fields {
        if !is_valid_body_key(&field.key) {
            errors.push(syn::Error::new_spanned(
                &field.key_tokens,
                format!(
                    "invalid key {:?}: a body key must not be empty nor hold a NUL byte",
                    field.key
                ),
            ));
            continue;
        }
        let clash = written
            .iter()
            .map(|(k, what)| (k.as_str(), what.as_str()))
            .chain(
                ret_key
                    .as_deref()
                    .map(|k| (k, "the returned value recorded by `ret`")),
            )
            .find(|(k, _)| overlaps(k, &field.key));
        if let Some((key, what)) = clash {
            let how = if key == field.key {
                format!("key {key:?} is already {what}")
            } else {
                format!(
                    "key {:?} overlaps {key:?}, {what}: one write would replace the other",
                    field.key
                )
            };
            errors.push(syn::Error::new_spanned(
                &field.key_tokens,
                format!("{how}; give each value its own key"),
            ));
            continue;
        }
        written.push((field.key.clone(), "set earlier in `fields`".to_owned()));
    }
}

/// Equal keys, or one nested under the other (`a` and `a.b`).
fn overlaps(a: &str, b: &str) -> bool {
    let nested = |outer: &str, inner: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'.'
    };
    a == b || nested(a, b) || nested(b, a)
}

/// Whether the fn returns `impl Trait` (or a type containing one).
fn contains_impl_trait_return(output: &syn::ReturnType) -> bool {
    matches!(output, syn::ReturnType::Type(_, ty) if contains_impl_trait(ty))
}

/// Whether `ty` is or contains `impl Trait` (the expansion cannot name such a type).
pub(crate) fn contains_impl_trait(ty: &syn::Type) -> bool {
    use quote::ToTokens;
    ty.to_token_stream()
        .into_iter()
        .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "impl"))
}
