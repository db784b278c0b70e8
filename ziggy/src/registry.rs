//! The catalogue of declared channels and instrumented functions, gathered with `inventory` from
//! every crate linked into the program.

/// A channel declared by `ziggy::channels!`.
#[derive(Debug)]
pub struct DeclaredChannel {
    /// The full dotted name.
    pub name: &'static str,
    /// `module_path!()` of the declaring crate root.
    pub declared_in: &'static str,
}

/// A function annotated with `#[ziggy::context]`.
#[derive(Debug)]
pub struct InstrumentedFn {
    /// The channel its context opens.
    pub channel: &'static str,
    /// `module::path::fn_name`.
    pub function: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// `(target, rate)` when the context is sampled with a literal rate.
    pub sample: Option<(&'static str, f64)>,
}

inventory::collect!(DeclaredChannel);
inventory::collect!(InstrumentedFn);

/// One channel of the catalogue, with the functions that open it.
#[derive(Debug)]
pub struct ChannelEntry {
    /// The full dotted name.
    pub name: &'static str,
    /// Crates (module paths) that declared it.
    pub declared_in: Vec<&'static str>,
    /// Functions annotated with this channel, by path.
    pub functions: Vec<&'static InstrumentedFn>,
}

/// Every declared channel and every instrumented function of the program, sorted by channel name.
///
/// ```
/// for channel in ziggy::channels() {
///     println!("{} ({} functions)", channel.name, channel.functions.len());
/// }
/// ```
pub fn channels() -> Vec<ChannelEntry> {
    let mut entries: std::collections::BTreeMap<&'static str, ChannelEntry> = Default::default();
    for declared in inventory::iter::<DeclaredChannel> {
        entries
            .entry(declared.name)
            .or_insert_with(|| ChannelEntry {
                name: declared.name,
                declared_in: Vec::new(),
                functions: Vec::new(),
            })
            .declared_in
            .push(declared.declared_in);
    }
    for f in inventory::iter::<InstrumentedFn> {
        entries
            .entry(f.channel)
            .or_insert_with(|| ChannelEntry {
                name: f.channel,
                declared_in: Vec::new(),
                functions: Vec::new(),
            })
            .functions
            .push(f);
    }
    let mut out: Vec<ChannelEntry> = entries.into_values().collect();
    for e in &mut out {
        e.declared_in.sort_unstable();
        e.declared_in.dedup();
        e.functions.sort_by_key(|f| (f.function, f.line));
    }
    out
}
