//! Semantic checks of parsed arguments, collecting every error so the user sees all at once.

use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, UnOp};

use crate::attr::ContextArgs;
use crate::channel_rule::{is_self_or_ancestor, validate_channel_name};

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
