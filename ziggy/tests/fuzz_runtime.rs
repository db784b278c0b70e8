//! Property-based fuzzing of the runtime's inputs: any channel, id, key and value sequence is
//! handled without a panic, and every emitted event decodes with a valid channel.

use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set(String, i64),
    SetStr(String, String),
    Append(String, f64),
    Add(String, i64),
    Open(String, Option<String>),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let key = "[a-c0-9.\\x00]{0,6}";
    prop_oneof![
        (key, any::<i64>()).prop_map(|(k, v)| Op::Set(k, v)),
        (key, ".{0,8}").prop_map(|(k, v)| Op::SetStr(k, v)),
        (key, any::<f64>()).prop_map(|(k, v)| Op::Append(k, v)),
        (key, any::<i64>()).prop_map(|(k, v)| Op::Add(k, v)),
        ("[a-cA./_]{0,8}", proptest::option::of(".{0,300}")).prop_map(|(c, id)| Op::Open(c, id)),
        Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_calls_is_safe(ops in proptest::collection::vec(op(), 0..40)) {
        let events = ziggy::testing::capture(|| {
            let mut guards = Vec::new();
            for op in ops {
                match op {
                    Op::Set(k, v) => ziggy::set(&k, v),
                    Op::SetStr(k, v) => ziggy::set(&k, v),
                    Op::Append(k, v) => ziggy::append(&k, v),
                    Op::Add(k, v) => ziggy::add(&k, v),
                    Op::Open(c, id) => {
                        let mut ctx = ziggy::Context::new(c);
                        if let Some(id) = id {
                            ctx = ctx.id(id);
                        }
                        guards.push(ctx.enter());
                    }
                    Op::Close => {
                        guards.pop();
                    }
                }
            }
        });
        for e in events {
            prop_assert!(ziggy::channel::validate_channel_name(&e.channel).is_ok());
            prop_assert!(!e.id.is_empty() && e.id.len() <= ziggy::MAX_ID_LEN);
        }
    }
}
