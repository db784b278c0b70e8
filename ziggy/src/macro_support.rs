//! What the expansions of `#[ziggy::context]`'s options call (`fields`, `args`, `err`, `ret`),
//! re-exported through `ziggy::__private`; not a public API.
//!
//! Every writer here first checks that the innermost context of this thread is open and active
//! ([`recording`]): while ziggy is off, or inside a context sampled out, nothing is serialised or
//! formatted. Which formatting a value gets (`Serialize` > `Debug` for arguments, `Display` >
//! `Debug` for errors, the `Ok` value of a `Result` for `ret`) is chosen at compile time by autoref
//! specialisation: the expansion calls a method on `&&&Wrapper(&value)`, and method resolution
//! picks the first impl, by number of references, whose bounds the type meets.

use std::fmt::{self, Debug, Display};

use serde::Serialize;

use crate::stack::with_stack;

/// True when ziggy is on and the innermost context of this thread is active (not sampled out):
/// the only case in which the options' values are worth computing.
#[inline]
pub fn recording() -> bool {
    crate::switch::enabled() && with_stack(|s| s.last().is_some_and(|f| f.active)).unwrap_or(false)
}

/// `set(key, value)` with the value serialised as it is (`fields(k = v)`, `ret(Serialize)`).
#[inline]
pub fn set_serialize<T: Serialize + ?Sized>(key: &str, value: &T) {
    crate::set(key, value);
}

/// `set(key, format!("{value:?}"))`, formatted only when recording (`fields(k = ?v)`, `ret`).
#[inline]
pub fn set_debug<T: Debug + ?Sized>(key: &str, value: &T) {
    if recording() {
        crate::set(key, format!("{value:?}"));
    }
}

/// `set(key, value.to_string())`, formatted only when recording (`fields(k = %v)`, `ret(Display)`).
#[inline]
pub fn set_display<T: Display + ?Sized>(key: &str, value: &T) {
    if recording() {
        crate::set(key, value.to_string());
    }
}

/// An argument to record with `args`: `(&&&Arg(&x)).ziggy_record_arg("x")` records it as a
/// structured value when it is `Serialize`, as its `{:?}` string when it is only `Debug`, and
/// is a compile error (naming `skip`) otherwise.
pub struct Arg<'a, T: ?Sized>(pub &'a T);

/// First choice of [`Arg`]: `Serialize`.
pub trait ArgSerialize {
    /// Records the argument under `key`.
    fn ziggy_record_arg(&self, key: &str);
}
impl<T: Serialize + ?Sized> ArgSerialize for &&Arg<'_, T> {
    #[inline]
    fn ziggy_record_arg(&self, key: &str) {
        crate::set(key, self.0);
    }
}

/// Second choice of [`Arg`]: `Debug`.
pub trait ArgDebug {
    /// Records the argument's `{:?}` under `key`.
    fn ziggy_record_arg(&self, key: &str);
}
impl<T: Debug + ?Sized> ArgDebug for &Arg<'_, T> {
    #[inline]
    fn ziggy_record_arg(&self, key: &str) {
        set_debug(key, self.0);
    }
}

/// Last choice of [`Arg`]: neither; calling it fails on the `Recordable` bound, at the argument.
pub trait ArgNeither<T: ?Sized> {
    /// Never compiles: `T` is neither `Serialize` nor `Debug`.
    fn ziggy_record_arg(&self, _key: &str)
    where
        T: Recordable,
    {
    }
}
impl<T: ?Sized> ArgNeither<T> for Arg<'_, T> {}

/// Implemented by no type: the bound that makes an unrecordable argument a compile error.
#[diagnostic::on_unimplemented(
    message = "`args` cannot record this argument: `{Self}` is neither `serde::Serialize` nor `Debug`",
    label = "neither `Serialize` nor `Debug`",
    note = "leave it out with `skip(name)` in #[ziggy::context(..)], or derive `Debug` or `Serialize` for it"
)]
pub trait Recordable {}

/// An error to record in `body.error`, not formatted until it is written.
pub enum ErrorText<'a> {
    /// Recorded via `Display`.
    Display(&'a dyn Display),
    /// Recorded via `Debug`.
    Debug(&'a dyn Debug),
}

impl Display for ErrorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorText::Display(e) => Display::fmt(e, f),
            ErrorText::Debug(e) => Debug::fmt(e, f),
        }
    }
}

/// The returned value, for the `Err` recorded without an `err` option:
/// `(&&&ErrOf(&result)).ziggy_error_of()` is the `Err` via `Display` if it has one, else via
/// `Debug`, else nothing; and nothing for a value that is not a `Result`.
pub struct ErrOf<'a, R: ?Sized>(pub &'a R);

/// First choice of [`ErrOf`]: a `Result` whose error is `Display`.
pub trait ErrDisplay<'a> {
    /// The `Err`, if any.
    fn ziggy_error_of(&self) -> Option<ErrorText<'a>>;
}
impl<'a, T, E: Display> ErrDisplay<'a> for &&ErrOf<'a, Result<T, E>> {
    #[inline]
    fn ziggy_error_of(&self) -> Option<ErrorText<'a>> {
        self.0.as_ref().err().map(|e| ErrorText::Display(e))
    }
}

/// Second choice of [`ErrOf`]: a `Result` whose error is only `Debug`.
pub trait ErrDebug<'a> {
    /// The `Err`, if any.
    fn ziggy_error_of(&self) -> Option<ErrorText<'a>>;
}
impl<'a, T, E: Debug> ErrDebug<'a> for &ErrOf<'a, Result<T, E>> {
    #[inline]
    fn ziggy_error_of(&self) -> Option<ErrorText<'a>> {
        self.0.as_ref().err().map(|e| ErrorText::Debug(e))
    }
}

/// Last choice of [`ErrOf`]: anything else records nothing.
pub trait ErrNone<'a> {
    /// Always `None`.
    #[inline]
    fn ziggy_error_of(&self) -> Option<ErrorText<'a>> {
        None
    }
}
impl<'a, R: ?Sized> ErrNone<'a> for ErrOf<'a, R> {}

/// What `err` / `err(Display)` accepts.
#[diagnostic::on_unimplemented(
    message = "`err` records the `Err` of a `Result` via `Display`, but the fn returns `{Self}`",
    label = "needs the fn to return `Result<_, E>` with `E: Display`",
    note = "for an error type that is only `Debug`, write `err(Debug)`"
)]
pub trait ResultDisplay {
    /// The `Err`, if any.
    fn ziggy_err_display(&self) -> Option<ErrorText<'_>>;
}
impl<T, E: Display> ResultDisplay for Result<T, E> {
    #[inline]
    fn ziggy_err_display(&self) -> Option<ErrorText<'_>> {
        self.as_ref().err().map(|e| ErrorText::Display(e))
    }
}

/// What `err(Debug)` accepts.
#[diagnostic::on_unimplemented(
    message = "`err(Debug)` records the `Err` of a `Result` via `Debug`, but the fn returns `{Self}`",
    label = "needs the fn to return `Result<_, E>` with `E: Debug`"
)]
pub trait ResultDebug {
    /// The `Err`, if any.
    fn ziggy_err_debug(&self) -> Option<ErrorText<'_>>;
}
impl<T, E: Debug> ResultDebug for Result<T, E> {
    #[inline]
    fn ziggy_err_debug(&self) -> Option<ErrorText<'_>> {
        self.as_ref().err().map(|e| ErrorText::Debug(e))
    }
}

/// `err` / `err(Display)`: the `Err` via `Display`.
#[inline]
pub fn err_display<R: ResultDisplay>(result: &R) -> Option<ErrorText<'_>> {
    result.ziggy_err_display()
}

/// `err(Debug)`: the `Err` via `Debug`.
#[inline]
pub fn err_debug<R: ResultDebug>(result: &R) -> Option<ErrorText<'_>> {
    result.ziggy_err_debug()
}

/// Sets `body.error` of the innermost active context (the `Err` path of async fns); formats
/// only when recording.
#[inline]
pub fn record_error_text(error: Option<ErrorText<'_>>) {
    if let Some(error) = error
        && recording()
    {
        crate::write::record_error_innermost(error.to_string());
    }
}

/// The returned value, for `ret`: `(&&RetOf(&value)).ziggy_ret()` is the `Ok` value of a
/// `Result` (nothing on `Err`), or the value itself for any other type.
pub struct RetOf<'a, R: ?Sized>(pub &'a R);

/// First choice of [`RetOf`]: a `Result`'s `Ok` value.
pub trait RetOk<'a> {
    /// The recorded value's type.
    type Value: ?Sized + 'a;
    /// The value to record, if any.
    fn ziggy_ret(&self) -> Option<&'a Self::Value>;
}
impl<'a, T: 'a, E> RetOk<'a> for &RetOf<'a, Result<T, E>> {
    type Value = T;
    #[inline]
    fn ziggy_ret(&self) -> Option<&'a T> {
        self.0.as_ref().ok()
    }
}

/// Last choice of [`RetOf`]: the value itself.
pub trait RetWhole<'a> {
    /// The recorded value's type.
    type Value: ?Sized + 'a;
    /// The value to record.
    fn ziggy_ret(&self) -> Option<&'a Self::Value>;
}
impl<'a, R: ?Sized + 'a> RetWhole<'a> for RetOf<'a, R> {
    type Value = R;
    #[inline]
    fn ziggy_ret(&self) -> Option<&'a R> {
        Some(self.0)
    }
}
