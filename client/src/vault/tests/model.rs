//! Model-based test: random sequences of puts, deletes, transactions, reopens and
//! compactions against a `BTreeMap`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Put(u8, u16, u8),
    Delete(u8),
    Transaction(Vec<(u8, Option<(u16, u8)>)>, bool),
    Reopen,
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..12, 0u16..3000, any::<u8>()).prop_map(|(k, len, b)| Step::Put(k, len, b)),
        2 => (0u8..12).prop_map(Step::Delete),
        2 => (
            prop::collection::vec((0u8..12, prop::option::of((0u16..500, any::<u8>()))), 0..6),
            any::<bool>()
        )
            .prop_map(|(changes, commit)| Step::Transaction(changes, commit)),
        1 => Just(Step::Reopen),
        1 => Just(Step::Compact),
    ]
}

fn key(k: u8) -> String {
    format!("key/{k:02}")
}

fn check(vault: &Vault, model: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(vault.len(), model.len());
    for k in 0..12u8 {
        assert_eq!(
            value(vault, &key(k)).as_ref(),
            model.get(&key(k)),
            "{}",
            key(k)
        );
    }
    let keys: Vec<Vec<u8>> = vault
        .keys_with_prefix("key/")
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    let expected: Vec<Vec<u8>> = model.keys().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(keys, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn vault_behaves_like_a_map(steps in prop::collection::vec(step(), 1..40)) {
        let dir = TempDir::new();
        let mut vault = create(dir.path());
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Put(k, len, b) => {
                    let v = vec![b; usize::from(len)];
                    vault.put(key(k), &v).unwrap();
                    model.insert(key(k), v);
                }
                Step::Delete(k) => {
                    vault.delete(key(k)).unwrap();
                    model.remove(&key(k));
                }
                Step::Transaction(changes, commit) => {
                    let mut tx = vault.begin();
                    let mut staged = model.clone();
                    for (k, change) in changes {
                        match change {
                            Some((len, b)) => {
                                let v = vec![b; usize::from(len)];
                                tx.put(key(k), &v).unwrap();
                                staged.insert(key(k), v);
                            }
                            None => {
                                tx.delete(key(k)).unwrap();
                                staged.remove(&key(k));
                            }
                        }
                    }
                    if commit {
                        tx.commit().unwrap();
                        model = staged;
                    }
                }
                Step::Reopen => {
                    vault.close();
                    vault = open(dir.path());
                }
                Step::Compact => vault.compact().unwrap(),
            }
            check(&vault, &model);
        }
        vault.close();
        check(&open(dir.path()), &model);
        prop_assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    }
}
