//! The offline core's cost: YAML to plan for each of the story's examples, and libpq
//! connection-string parsing and rendering. Report ratios between rows of one run; absolute
//! times on a shared machine mean little.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tea_pgcloud::config::load_str;
use tea_pgcloud::conninfo::ConnInfo;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;

fn examples(c: &mut Criterion) {
    let env = MapEnv::new()
        .with_var("POSTGRES_HOST", "db.internal")
        .with_var("POSTGRES_DB", "ltm")
        .with_var(
            "POSTGRES_CONNECTION_STRING",
            "postgresql://app:s3cr%40t@db1:5432,db2:5433/ltm?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
        );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/examples");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures/examples exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    paths.sort();
    let mut group = c.benchmark_group("yaml_to_plan");
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable example");
        let name = path
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = load_str(black_box(&text), "bench.yaml", &env).expect("valid example");
                plan(&config, &env).expect("plannable example")
            })
        });
    }
    group.finish();
}

fn conninfo(c: &mut Criterion) {
    let kv = "host=db1,db2 port=5432,5433 dbname=ltm user=app password='p@ss w\\'rd' sslmode=verify-full sslrootcert=/etc/ssl/ca.pem application_name=tea";
    let uri = "postgresql://app:p%40ss%20w%27rd@db1:5432,db2:5433/ltm?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fca.pem&application_name=tea";
    let parsed = ConnInfo::parse(kv).expect("valid");
    let mut group = c.benchmark_group("conninfo");
    group.bench_function("parse_keyword_value", |b| {
        b.iter(|| ConnInfo::parse(black_box(kv)))
    });
    group.bench_function("parse_uri", |b| b.iter(|| ConnInfo::parse(black_box(uri))));
    group.bench_function("render_keyword_value", |b| {
        b.iter(|| black_box(&parsed).to_keyword_value())
    });
    group.bench_function("render_uri", |b| b.iter(|| black_box(&parsed).to_uri()));
    group.finish();
}

criterion_group!(benches, examples, conninfo);
criterion_main!(benches);
