//! Encoding one pull page of 1,000 records (name, e-mail and address authorized), after the
//! records are opened: projecting each visitor onto the authorized fields and writing the
//! response body. `encode_direct` is what a pull does; `json_tree` is the baseline in the same
//! run — the same projection built as a `serde_json::Value` tree per record first, then
//! serialized, which is how pulls encoded pages until session 11.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use steward_transfers::fields;
use steward_transfers::pull::{encode_record, PullPage};
use steward_visitors::{Address, Pii};

const PAGE: usize = 1000;

fn visitors() -> Vec<(String, Pii)> {
    (0..PAGE)
        .map(|i| {
            let pii = Pii {
                name: Some(format!("Visitor Number {i}")),
                email: Some(format!("visitor{i}@example.com")),
                phone: Some(format!("+44207123{i:04}")),
                address: Some(Address {
                    line1: format!("{i} Example Street"),
                    line2: None,
                    city: "London".into(),
                    region: None,
                    postal_code: Some("N1 9GU".into()),
                    country: "GB".into(),
                }),
                attributes: None,
            };
            (format!("vis_01JD{i:022}"), pii)
        })
        .collect()
}

fn page(items: Vec<Box<serde_json::value::RawValue>>) -> PullPage {
    PullPage {
        items,
        next_cursor: Some("vis_01JD0000000000000000000999".into()),
        transfer_id: "trf_01JD0000000000000000000000".into(),
    }
}

fn bench(c: &mut Criterion) {
    let visitors = visitors();
    let authorized = fields::normalize(&["name".into(), "email".into(), "address".into()]).unwrap();
    let updated_at: DateTime<Utc> = "2026-12-03T12:00:00.123456Z".parse().unwrap();

    let mut group = c.benchmark_group("pull_page_encode");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("encode_direct", |b| {
        b.iter(|| {
            let items = visitors
                .iter()
                .map(|(id, pii)| {
                    let projection = fields::project(pii, &authorized);
                    encode_record(id, updated_at, &projection).unwrap()
                })
                .collect();
            serde_json::to_vec(black_box(&page(items))).unwrap()
        })
    });
    group.bench_function("json_tree", |b| {
        b.iter(|| {
            let items: Vec<Value> = visitors
                .iter()
                .map(|(id, pii)| {
                    let projection = fields::project(pii, &authorized);
                    let mut value = serde_json::to_value(&projection).unwrap();
                    let map = value.as_object_mut().unwrap();
                    map.insert("id".into(), Value::String(id.clone()));
                    map.insert(
                        "updated_at".into(),
                        serde_json::to_value(updated_at).unwrap(),
                    );
                    value
                })
                .collect();
            let body = serde_json::json!({
                "items": items,
                "next_cursor": "vis_01JD0000000000000000000999",
                "transfer_id": "trf_01JD0000000000000000000000",
            });
            serde_json::to_vec(black_box(&body)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
