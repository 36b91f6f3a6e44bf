//! Rendering a 16 KiB PowerShell startup script with 30 fields: pre-parsed, and parse+render.
//! `benches/render_vs_cpython.py` runs this and CPython's `str.format` on the same text and
//! variables, and prints the ratios.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kasm_scale::template::{Template, format};

const SCRIPT: &str = include_str!("data/script-16k.ps1");
const VARS: &str = include_str!("data/vars.json");

fn bench(c: &mut Criterion) {
    let vars: HashMap<String, String> = serde_json::from_str(VARS).expect("benches/data/vars.json");
    let template = Template::parse(SCRIPT).expect("the bench script parses");
    assert_eq!(template.field_names().count(), 8);
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Bytes(SCRIPT.len() as u64));
    group.bench_function("prepared", |b| {
        b.iter(|| template.render(black_box(&vars)).unwrap())
    });
    group.bench_function("parse_and_render", |b| {
        b.iter(|| format(black_box(SCRIPT), black_box(&vars)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
