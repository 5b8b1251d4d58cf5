//! What `tea-pgcloud check` costs per key of an agent file: the library's check path (read
//! the file, YAML, locate the catalog, validate, plan) on generated agent files of 1k, 10k and
//! 100k keys outside the catalog, in three shapes: plain keys; anchored mappings that hold an
//! anchored scalar, never aliased (the anchors cost nothing until an alias copies them); and
//! 3,000 keys aliasing one mapping (within `MAX_ALIAS_NODES`), the rest plain.
//!
//! Throughput is counted in keys, so criterion reports a per-key rate: it should stay flat
//! from 1k to 100k keys (loading is linear). Compare rows of one run; absolute times on a
//! shared machine mean little.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tea_pgcloud::config::{MAX_CONFIG_BYTES, load_file};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;

const KEYS: [usize; 3] = [1_000, 10_000, 100_000];

const CATALOG: &str = "name: bench\nsettings:\n  ltm:\n    catalog:\n      type: postgres\n      host: db.internal\n      sslmode: verify-full\n      sslrootcert: system\n";

/// An agent file holding the catalog and `keys` more keys under `nodes`, shaped by `shape`.
fn agent_file(shape: &str, keys: usize) -> String {
    let mut text = format!("{CATALOG}nodes:\n");
    if shape == "aliases" {
        text.push_str("  base: &base {x: 1}\n");
    }
    for i in 0..keys {
        let line = match shape {
            // Short lines: 100k keys of any shape stay within `MAX_CONFIG_BYTES`.
            "anchored" => format!("  k{i:06}: &a{i} {{x: &s{i} 1}}\n"),
            // The alias budget allows a few thousand: the rest of the keys are plain.
            "aliases" if i < 3_000 => format!("  k{i:06}: *base\n"),
            _ => format!("  k{i:06}: v{i}\n"),
        };
        text.push_str(&line);
    }
    text
}

fn check(c: &mut Criterion) {
    let env = MapEnv::new();
    let dir = tempfile::tempdir().expect("a temp dir");
    let limit = usize::try_from(MAX_CONFIG_BYTES).expect("the limit fits in memory");
    for shape in ["plain", "anchored", "aliases"] {
        let mut group = c.benchmark_group(format!("check/{shape}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for keys in KEYS {
            let path = dir.path().join(format!("{shape}-{keys}.yaml"));
            let text = agent_file(shape, keys);
            assert!(text.len() <= limit, "{shape}/{keys} is over the size limit");
            std::fs::write(&path, text).expect("the file is written");
            let path = path.to_str().expect("a UTF-8 temp path").to_string();
            group.throughput(Throughput::Elements(keys as u64));
            group.bench_with_input(BenchmarkId::from_parameter(keys), &path, |b, path| {
                b.iter(|| {
                    let config = load_file(black_box(path), &env).expect("a valid agent file");
                    plan(&config, &env).expect("a plannable catalog")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, check);
criterion_main!(benches);
